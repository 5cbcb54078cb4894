#!/usr/bin/env python3
"""Evaluation of a GGUF chat model on a held-out chat-format JSONL file, on
CPU with llama-cpp-python: loss and perplexity of the whole chats and of
the answers (each chat's last assistant turn), next-token accuracy on the
answers, and exact match of greedy answers generated the way serving does.

    python infra/recipes/llamacpp-cpu/evaluate.py --spec SPEC.json

SPEC: {"kind": "evaluate", "base_model": PATH, "file": PATH, "n_ctx": 512,
"threads": N, "generate_examples": 50, "max_new_tokens": 64}. The same
stdout protocol and exit codes as train.py (README.md); the result carries
metrics and no artifact.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (HERE, os.path.join(HERE, "..", "common")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from recipe_common import EXIT_OK, Events, JobError, StopFlag, existing_file, invalid  # noqa: E402
from recipe_common import is_int, load_spec, recipe_main, round_or_none  # noqa: E402


def parse(path: str) -> dict:
    spec = load_spec(path, "evaluate")
    out = {
        "base_model": existing_file(spec, "base_model", True),
        "file": existing_file(spec, "file", True),
    }
    for key, default, lo, hi in (
        ("n_ctx", 512, 32, 32768),
        ("threads", os.cpu_count() or 1, 1, 1024),
        ("generate_examples", 50, 0, 100000),
        ("max_new_tokens", 64, 1, 4096),
    ):
        v = spec.get(key)
        v = default if v is None else v
        if not is_int(v) or not lo <= v <= hi:
            raise invalid(f"spec: \"{key}\" must be an integer {lo}..{hi} (got {v!r})")
        out[key] = v
    return out


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def answer_split(chat: list[dict]) -> tuple[list[dict], dict] | None:
    """The chat up to its last assistant turn, and that turn."""
    for i in range(len(chat) - 1, -1, -1):
        if chat[i]["role"] == "assistant":
            return chat[:i], chat[i]
    return None


def run(ev: Events, stop: StopFlag, spec_path: str, t_start: float) -> int:
    spec = parse(spec_path)
    import numpy as np
    import _ggufio as gio
    from _data import ChatRenderer, DataError, load_chats
    from llama_cpp import Llama

    try:
        chats = load_chats(spec["file"], "evaluation")
        info = gio.inspect(spec["base_model"])
    except DataError as e:
        raise invalid(str(e))
    except gio.GgufError as e:
        raise invalid(f"base_model: {e}")
    if not info.chat_template:
        raise invalid("the model has no tokenizer.chat_template; chats cannot be rendered the way they are served")
    renderer = ChatRenderer(info.chat_template, info.bos_token, info.eos_token)
    try:
        llm = Llama(model_path=spec["base_model"], n_ctx=spec["n_ctx"], n_batch=spec["n_ctx"],
                    n_threads=spec["threads"], logits_all=True, verbose=False)
    except Exception as e:  # noqa: BLE001
        raise JobError(1, f"llama.cpp could not load the model: {e}")
    ev.message("info", f"evaluating {len(chats)} chats of {os.path.basename(spec['file'])} "
                       f"with {os.path.basename(spec['base_model'])} ({info.architecture})")

    def tokens(text: str) -> list[int]:
        return llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    nll_all = nll_ans = 0.0
    n_all = n_ans = correct = truncated = 0
    for k, (lineno, chat) in enumerate(chats):
        stop.check()
        split = answer_split(chat)
        where = f"evaluation file line {lineno}"
        try:
            full = tokens(renderer.render(chat[: len(split[0]) + 1] if split else chat, where))
            prompt = tokens(renderer.render(split[0], where, add_generation_prompt=True)) if split else full
        except DataError as e:
            raise invalid(str(e))
        if len(full) > spec["n_ctx"]:
            full = full[: spec["n_ctx"]]
            truncated += 1
        # The answer: the tokens after the longest prefix shared with the prompt.
        start = 0
        while start < min(len(prompt), len(full)) and prompt[start] == full[start]:
            start += 1
        llm.reset()
        llm.eval(full)
        logits = np.asarray(llm.scores[: len(full)], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        targets = np.asarray(full[1:])
        token_nll = -logp[np.arange(len(full) - 1), targets]
        nll_all += float(token_nll.sum())
        n_all += len(targets)
        lo = max(start, 1) - 1  # logits at t predict token t+1
        if lo < len(targets):
            nll_ans += float(token_nll[lo:].sum())
            n_ans += len(targets) - lo
            correct += int((logp[lo : len(full) - 1].argmax(axis=1) == targets[lo:]).sum())
        if (k + 1) % 10 == 0:
            ev.message("info", f"{k + 1}/{len(chats)} chats scored")
    if n_all == 0:
        raise invalid("the file has no tokens to score")
    if truncated:
        ev.message("warn", f"{truncated} chats longer than n_ctx {spec['n_ctx']} were cut")

    exact = generated = too_long = 0
    t_gen = time.monotonic()
    for lineno, chat in chats[: spec["generate_examples"]]:
        stop.check()
        split = answer_split(chat)
        if not split or not split[0]:
            continue
        prompt = tokens(renderer.render(split[0], f"evaluation file line {lineno}", add_generation_prompt=True))
        if len(prompt) + spec["max_new_tokens"] > spec["n_ctx"]:
            too_long += 1
            continue
        out = llm.create_chat_completion(messages=split[0], temperature=0.0, max_tokens=spec["max_new_tokens"])
        answer = out["choices"][0]["message"]["content"] or ""
        generated += 1
        exact += int(normalise(answer) == normalise(split[1]["content"]))
    if too_long:
        ev.message("warn", f"{too_long} chats were not generated: prompt and answer exceed n_ctx {spec['n_ctx']}")
    loss = nll_all / n_all
    metrics = {
        "loss": round_or_none(loss),
        "perplexity": round_or_none(math.exp(min(loss, 700.0)), 4),
        "examples": len(chats),
        "tokens": n_all,
    }
    if n_ans:
        answer_loss = nll_ans / n_ans
        metrics.update({
            "answer_loss": round_or_none(answer_loss),
            "answer_perplexity": round_or_none(math.exp(min(answer_loss, 700.0)), 4),
            "token_accuracy": round_or_none(correct / n_ans),
            "answer_tokens": n_ans,
        })
    if generated:
        metrics["exact_match"] = round_or_none(exact / generated)
        metrics["generated"] = generated
    metrics["seconds"] = round(time.monotonic() - t_start, 2)
    ev.message("info", "evaluated: " + ", ".join(f"{k}={v}" for k, v in metrics.items())
               + (f" (generation {time.monotonic() - t_gen:.1f} s)" if generated else ""))
    ev.emit({"type": "metrics", "step": 1, "data": metrics})
    ev.emit({"type": "result", "format": "none", "quantization": "none",
             "method": {"type": "evaluate"}, "metrics": metrics})
    return EXIT_OK


def main(argv=None) -> int:
    return recipe_main(run, __doc__.split("\n\n")[0], argv,
                       missing_hint=" (install the llama-cpp-python 0.3.36 wheel and requirements.txt)")


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    sys.exit(code)
