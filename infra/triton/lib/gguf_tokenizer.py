"""Writes a Hugging Face tokenizer.json from a GGUF file's own tokenizer
(GPT-2-style byte-level BPE: `tokenizer.ggml.model` = `gpt2`), so the
gateway can count a GGUF chat model's tokens exactly (the `tokenizers`
crate reads the file).

    python gguf_tokenizer.py MODEL.gguf OUT.json       # needs the gguf package
    python gguf_tokenizer.py --check MODEL.gguf OUT.json TEXT_FILE...
                                                       # needs tokenizers and llama_cpp

`--check` tokenizes each text file with the written tokenizer.json and with
llama.cpp (the model's own tokenizer) and fails on any difference.

SmolLM2's pre-tokenizer (`smollm`) splits digits one by one before GPT-2's
byte-level split; other GPT-2-style pre-tokenizers are not handled.
"""

import json
import sys


def convert(gguf_path, out_path):
    import gguf

    reader = gguf.GGUFReader(gguf_path)

    def field(name):
        f = reader.fields[name]
        return [bytes(f.parts[i]).decode("utf-8") if f.types[-1] == gguf.GGUFValueType.STRING
                else f.parts[i].tolist()[0] for i in f.data]

    model = field("tokenizer.ggml.model")[0]
    pre = field("tokenizer.ggml.pre")[0] if "tokenizer.ggml.pre" in reader.fields else "default"
    if model != "gpt2" or pre not in ("smollm",):
        sys.exit(f"unsupported tokenizer: model {model}, pre-tokenizer {pre}")
    tokens = field("tokenizer.ggml.tokens")
    types = field("tokenizer.ggml.token_type")
    merges = field("tokenizer.ggml.merges")
    # Types: 1 normal, 3 control, 4 user-defined: the last two are special.
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, (t, ty) in enumerate(zip(tokens, types)) if ty in (3, 4)
    ]
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": merges,
        },
    }
    with open(out_path, "w") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
    print(f"{out_path}: {len(tokens)} tokens, {len(merges)} merges, {len(added)} special")


def check(gguf_path, tok_path, files):
    import llama_cpp
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tok_path)
    llm = llama_cpp.Llama(model_path=gguf_path, vocab_only=True, verbose=False)
    bad = 0
    total = 0
    for path in files:
        text = open(path, encoding="utf-8").read()
        for para in [text] + text.split("\n\n"):
            ours = tok.encode(para, add_special_tokens=False).ids
            theirs = llm.tokenize(para.encode("utf-8"), add_bos=False, special=False)
            total += 1
            if ours != theirs:
                bad += 1
                print(f"{path}: differs on {para[:60]!r}: {len(ours)} vs {len(theirs)} tokens")
    print(f"{total} texts, {bad} differ")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    if sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        convert(sys.argv[1], sys.argv[2])
