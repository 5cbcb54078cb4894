"""Trains the response cache's pair classifier on the CPU (jax).

all-MiniLM-L6-v2 as a cross-encoder: `[CLS] new [SEP] cached [SEP]` (token
types 0 and 1) -> mean of the last layer's states -> a linear head -> the
probability that the cached prompt's answer answers the new prompt. Only a
LoRA adapter is trained (rank 16 on every linear layer of the six blocks,
alpha 32), with the blocks' layer norms and the head; the base weights stay
frozen. The output is the adapter `services/cache/src/pair.safetensors`
reads (`lora_b` already scaled, the head, the threshold), merged into the
base weights at load by `llmops-encoder`.

Rows, from tests/corpus/cache (both directions of every pair):
- pairs-train, pairs-test (and pairs-dev unless --validate): a paraphrase
  is answered both ways, a near miss neither way;
- neighbours-train: labelled directions, without the pairs that share a
  prompt with neighbours-heldout (that file is the held-out test).
--validate holds out pairs-dev and a fifth of neighbours-train (by a hash
of the pair) and prints the validation figures per threshold: the
threshold is chosen there, never on the held-out sets.

The shipped adapter: `--validate --threshold 0.5` (0.5 was fixed in
advance as the threshold unless a validation near miss were served at it;
none was). 546 steps of 32 directions, AdamW (lr 5e-4, warm-up 10%, linear
decay, weight decay 0.01), 3 epochs: about 8 minutes on two cores.

Usage: python pair_classifier.py MODEL_DIR OUT.safetensors
       [--validate] [--threshold T] [--steps N] [--seed S]
"""
import argparse
import hashlib
import json
import math
import pathlib
import random
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from safetensors.numpy import load_file, save_file
from tokenizers import Tokenizer

CORPUS = pathlib.Path(__file__).resolve().parents[3] / "tests/corpus/cache"
LINEARS = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
]
NORMS = ["attention.output.LayerNorm", "output.LayerNorm"]
RANK, ALPHA = 16, 32
MAX_TOKENS = 128


def pairs(name):
    return json.loads((CORPUS / f"pairs-{name}.json").read_text())


def labelled(name):
    """(new, cached, answered) for both directions of each labelled pair."""
    rows = []
    for r in json.loads((CORPUS / f"neighbours-{name}.json").read_text()):
        label = r["label"]
        rows.append((r["b"], r["a"], label in ("same", "a_covers_b")))
        rows.append((r["a"], r["b"], label in ("same", "b_covers_a")))
    return rows


def held_back(new, cached):
    """A fifth of the neighbour pairs, both directions together."""
    key = "\t".join(sorted([new, cached])).encode()
    return int(hashlib.sha256(key).hexdigest(), 16) % 5 == 0


def rows(validate):
    heldout = {p for r in labelled("heldout") for p in r[:2]}
    train, valid = [], []
    for name in ("train", "test") if validate else ("train", "dev", "test"):
        for p in pairs(name):
            train += [(p["b"], p["a"], p["same"]), (p["a"], p["b"], p["same"])]
    for r in labelled("train"):
        if r[0] in heldout or r[1] in heldout:
            continue
        if validate and held_back(r[0], r[1]):
            valid.append(("neighbours-train (fifth)", r))
        else:
            train.append(r)
    if validate:
        valid += [("pairs-dev", (p["b"], p["a"], p["same"])) for p in pairs("dev")]
    return train, valid


class Model:
    def __init__(self, model_dir, seed):
        w = load_file(str(pathlib.Path(model_dir) / "model.safetensors"))
        self.base = {k: jnp.asarray(v) for k, v in w.items() if k != "embeddings.position_ids"}
        rng = np.random.default_rng(seed)
        p = {"head.w": jnp.zeros((384,)), "head.b": jnp.zeros(())}
        for i in range(6):
            for n in LINEARS:
                out, inp = w[f"encoder.layer.{i}.{n}.weight"].shape
                a = rng.normal(0, 1 / math.sqrt(inp), (RANK, inp)).astype(np.float32)
                p[f"{i}.{n}.A"] = jnp.asarray(a)
                p[f"{i}.{n}.B"] = jnp.zeros((out, RANK), jnp.float32)
            for n in NORMS:
                for part in ("weight", "bias"):
                    p[f"{i}.{n}.{part}"] = self.base[f"encoder.layer.{i}.{n}.{part}"]
        self.params = p

    def logits(self, p, ids, types, mask):
        b = self.base

        def norm(x, g, bias):
            m = x.mean(-1, keepdims=True)
            v = ((x - m) ** 2).mean(-1, keepdims=True)
            return (x - m) / jnp.sqrt(v + 1e-12) * g + bias

        def linear(x, i, n):
            y = x @ b[f"encoder.layer.{i}.{n}.weight"].T + b[f"encoder.layer.{i}.{n}.bias"]
            return y + (ALPHA / RANK) * ((x @ p[f"{i}.{n}.A"].T) @ p[f"{i}.{n}.B"].T)

        n_b, t = ids.shape
        x = (
            b["embeddings.word_embeddings.weight"][ids]
            + b["embeddings.position_embeddings.weight"][:t][None]
            + b["embeddings.token_type_embeddings.weight"][types]
        )
        x = norm(x, b["embeddings.LayerNorm.weight"], b["embeddings.LayerNorm.bias"])
        masked = (1.0 - mask[:, None, None, :]) * -1e9
        heads = lambda y: y.reshape(n_b, t, 12, 32).transpose(0, 2, 1, 3)
        for i in range(6):
            q, k, v = (heads(linear(x, i, n)) for n in LINEARS[:3])
            att = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(32) + masked, -1)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n_b, t, 384)
            n0, n1 = (f"{i}.{n}" for n in NORMS)
            x = norm(x + linear(ctx, i, LINEARS[3]), p[f"{n0}.weight"], p[f"{n0}.bias"])
            f = jax.nn.gelu(linear(x, i, LINEARS[4]), approximate=False)
            x = norm(x + linear(f, i, LINEARS[5]), p[f"{n1}.weight"], p[f"{n1}.bias"])
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled @ p["head.w"] + p["head.b"]


def encode(tok, rows):
    out = []
    for new, cached, y in rows:
        e = tok.encode(new, cached)
        out.append((np.array(e.ids, np.int32), np.array(e.type_ids, np.int32), float(y)))
    return out


def batches(enc, size, shuffle):
    """Batches of similar lengths, padded to a multiple of 16 tokens."""
    idx = list(range(len(enc)))
    if shuffle:
        random.shuffle(idx)
        chunks = [idx[i : i + size * 50] for i in range(0, len(idx), size * 50)]
        idx = [j for ch in chunks for j in sorted(ch, key=lambda j: len(enc[j][0]))]
    else:
        idx.sort(key=lambda j: len(enc[j][0]))
    groups = [idx[i : i + size] for i in range(0, len(idx), size)]
    if shuffle:
        random.shuffle(groups)
    for g in groups:
        t = (max(len(enc[j][0]) for j in g) + 15) // 16 * 16
        ids, types = np.zeros((len(g), t), np.int32), np.zeros((len(g), t), np.int32)
        mask, y = np.zeros((len(g), t), np.float32), np.zeros((len(g),), np.float32)
        for r, j in enumerate(g):
            n = len(enc[j][0])
            ids[r, :n], types[r, :n], mask[r, :n], y[r] = enc[j][0], enc[j][1], 1, enc[j][2]
        yield g, ids, types, mask, y


def export(params, path, threshold):
    scale = ALPHA / RANK
    out = {}
    for k, v in params.items():
        if k.startswith("head."):
            continue
        i, rest = k.split(".", 1)
        if rest.endswith(".A"):
            out[f"encoder.layer.{i}.{rest[:-2]}.lora_a"] = np.asarray(v)
        elif rest.endswith(".B"):
            out[f"encoder.layer.{i}.{rest[:-2]}.lora_b"] = scale * np.asarray(v)
        else:
            out[f"encoder.layer.{i}.{rest}"] = np.asarray(v)
    out["head.weight"] = np.asarray(params["head.w"])
    out["head.bias"] = np.asarray(params["head.b"]).reshape(1)
    out["threshold"] = np.array([threshold], np.float32)
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}
    save_file(tensors, path, metadata={"format": "llmops-pair-classifier"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--validate", action="store_true")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=0, help="stop early (a smoke run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    random.seed(args.seed)
    train, valid = rows(args.validate)
    print(f"{len(train)} training directions ({sum(r[2] for r in train)} answered), {len(valid)} validation")
    tok = Tokenizer.from_file(str(pathlib.Path(args.model_dir) / "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.no_padding()
    model = Model(args.model_dir, args.seed)
    enc = encode(tok, train)
    total = math.ceil(len(enc) / 32) * args.epochs
    warm = total // 10
    sched = optax.join_schedules(
        [optax.linear_schedule(0, 5e-4, max(1, warm)), optax.linear_schedule(5e-4, 0, total - warm)], [warm]
    )
    opt = optax.adamw(sched, weight_decay=0.01)
    state = opt.init(model.params)

    def loss(p, ids, types, mask, y):
        return optax.sigmoid_binary_cross_entropy(model.logits(p, ids, types, mask), y).mean()

    @jax.jit
    def step(p, st, ids, types, mask, y):
        value, grads = jax.value_and_grad(loss)(p, ids, types, mask, y)
        updates, st = opt.update(grads, st, p)
        return optax.apply_updates(p, updates), st, value

    started, n, p = time.time(), 0, model.params
    for epoch in range(args.epochs):
        run = []
        for _, ids, types, mask, y in batches(enc, 32, True):
            p, state, value = step(p, state, ids, types, mask, y)
            run.append(float(value))
            n += 1
            if args.steps and n >= args.steps:
                break
        print(f"epoch {epoch + 1}: mean loss {np.mean(run):.4f}, {n} steps, {time.time() - started:.0f} s", flush=True)
        if args.steps and n >= args.steps:
            break
    export(p, args.out, args.threshold)
    print(f"wrote {args.out}")
    if valid:
        score = jax.jit(lambda p, ids, types, mask: jax.nn.sigmoid(model.logits(p, ids, types, mask)))
        for name in sorted({v[0] for v in valid}):
            rs = [r for v, r in valid if v == name]
            probs = np.zeros(len(rs))
            for g, ids, types, mask, _ in batches(encode(tok, rs), 64, False):
                probs[g] = np.asarray(score(p, ids, types, mask))
            ys = np.array([r[2] for r in rs], bool)
            cells = [f"{t}: {int((probs[ys] >= t).sum())}/{int(ys.sum())} answered, "
                     f"{int((probs[~ys] >= t).sum())}/{int((~ys).sum())} not" for t in (0.3, 0.5, 0.7, 0.9)]
            print(f"validation {name} (classifier alone, before the floor and the guard): " + "; ".join(cells))


if __name__ == "__main__":
    main()
