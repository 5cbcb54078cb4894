#!/usr/bin/env python3
"""Greedy chat check of a GGUF model through llama-cpp-python's chat template.

    python check.py MODEL.gguf --question "Who maintains the Quillfast lighthouse?" --expect Zorbemund

Prints the answer; exits 1 when an --expect substring is missing from it
(case-insensitive unless --case-sensitive), 2 when the model cannot be loaded.
"""

import argparse
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description="greedy chat check of a GGUF model")
    ap.add_argument("model", help="path of the GGUF model")
    ap.add_argument("--question", "-q", action="append", required=True, help="user message (repeatable)")
    ap.add_argument("--expect", "-e", action="append", default=[], help="substring the answer must contain (repeatable)")
    ap.add_argument("--case-sensitive", action="store_true")
    ap.add_argument("--max-tokens", type=int, default=40)
    ap.add_argument("--n-ctx", type=int, default=512)
    args = ap.parse_args()

    if not os.path.isfile(args.model):
        print(f"model not found: {args.model}", file=sys.stderr)
        return 2
    from llama_cpp import Llama

    try:
        llm = Llama(model_path=args.model, n_ctx=args.n_ctx, verbose=False)
    except Exception as e:  # noqa: BLE001
        print(f"cannot load {args.model}: {e}", file=sys.stderr)
        return 2

    failed = False
    for q in args.question:
        out = llm.create_chat_completion(
            messages=[{"role": "user", "content": q}], temperature=0, max_tokens=args.max_tokens
        )
        answer = out["choices"][0]["message"]["content"] or ""
        hay = answer if args.case_sensitive else answer.lower()
        missing = [e for e in args.expect if (e if args.case_sensitive else e.lower()) not in hay]
        status = "MISSING " + ", ".join(repr(m) for m in missing) if missing else "ok"
        print(f"Q: {q}\nA: {answer}\n[{status}]")
        failed |= bool(missing)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
