"""Fast tests of the recipe's pure parts (no model, no llama.cpp compute).

    python -m unittest infra/recipes/llamacpp-cpu/test_recipe.py     (or pytest)

Needs numpy, jinja2 and gguf (requirements.txt); the llama wheel is only
needed by test_train_cli_invalid_input, which is skipped without it.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import _data  # noqa: E402
import _ggufio as gio  # noqa: E402
import train  # noqa: E402


def _write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _tiny_gguf(path):
    """A small F32/F16 GGUF written with the gguf package's writer."""
    import gguf

    w = gguf.GGUFWriter(path, "llama")
    w.add_uint32("llama.block_count", 2)
    w.add_uint32("llama.context_length", 512)
    w.add_uint32("llama.embedding_length", 32)
    w.add_string("tokenizer.chat_template", "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}")
    w.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "a", "b"])
    w.add_uint32("tokenizer.ggml.bos_token_id", 0)
    w.add_uint32("tokenizer.ggml.eos_token_id", 1)
    w.add_file_type(1)
    rng = np.random.default_rng(0)
    w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((4, 32)).astype(np.float32))
    w.add_tensor("blk.1.attn_q.weight", rng.standard_normal((4, 32)).astype(np.float16))
    w.add_tensor("output_norm.weight", rng.standard_normal(32).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


class DataTests(unittest.TestCase):
    def test_bad_line_is_named(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "t.jsonl")
            good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
            _write(p, good + "\n\n" + good + "\n{oops\n")
            with self.assertRaisesRegex(_data.DataError, "line 4"):
                _data.load_chats(p, "training")
            _write(p, good + "\n" + json.dumps({"messages": [{"role": "user", "content": "only"}]}) + "\n")
            with self.assertRaisesRegex(_data.DataError, "line 2: a chat needs at least one assistant"):
                _data.load_chats(p, "training")
            _write(p, good + "\n")
            self.assertEqual(_data.load_chats(p, "training")[0][0], 1)

    def test_content_parts(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "t.jsonl")
            row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                                {"role": "assistant", "content": "c"}]}
            _write(p, json.dumps(row) + "\n")
            self.assertEqual(_data.load_chats(p, "x")[0][1][0]["content"], "ab")

    def test_pack_windows(self):
        toks = [list(range(10)), list(range(10, 25))]
        w = _data.pack_windows(toks, 8)
        self.assertEqual(len(w), 3)  # 25 tokens: 24 (input, next-token) pairs = 3 windows of 8
        tail = _data.pack_windows([list(range(26))], 8)  # 25 pairs: the 4th window wraps around
        self.assertEqual(len(tail), 4)
        self.assertEqual(tail[3][0], [24, 25, 0, 1, 2, 3, 4, 5])
        for inp, lab in w:
            self.assertEqual(len(inp), 8)
            self.assertEqual(inp[1:], lab[:-1])
        stream = list(range(25))
        self.assertEqual(w[0][0], stream[:8])
        self.assertEqual(w[0][1], stream[1:9])
        self.assertEqual(len(_data.pack_windows([[1, 2, 3]], 8)), 1)  # short stream is repeated
        self.assertEqual(_data.pack_windows([[1]], 8), [])

    def test_renderer_matches_template(self):
        r = _data.ChatRenderer("{% for m in messages %}[{{ m.role }}]{{ m.content }}\n{% endfor %}", "<s>", "</s>")
        self.assertEqual(r.render([{"role": "user", "content": "hi"}], "x"), "[user]hi\n")
        bad = _data.ChatRenderer("{{ raise_exception('nope') }}", "", "")
        with self.assertRaisesRegex(_data.DataError, "nope"):
            bad.render([], "chat 1")


class SpecTests(unittest.TestCase):
    def _spec(self, d, **over):
        base = os.path.join(d, "base.gguf")
        train_f = os.path.join(d, "train.jsonl")
        for p in (base, train_f):
            if not os.path.exists(p):
                _write(p, "x")
        s = {"job_id": "ftjob_1", "attempt": 1, "kind": "fine_tune", "base_model": base, "training_file": train_f,
             "validation_file": None, "hyperparameters": {"n_epochs": 3, "batch_size": 1, "learning_rate": 1e-4},
             "method": {"type": "full", "trainable_blocks": 10}, "seed": 42, "n_ctx": 256, "threads": 2,
             "output_quantization": "q8_0", "cache_dir": d, "checkpoint_dir": d, "resume_from": None, "output_dir": d}
        s.update(over)
        p = os.path.join(d, "spec.json")
        _write(p, json.dumps(s))
        return p

    def test_valid(self):
        with tempfile.TemporaryDirectory() as d:
            s = train.parse_spec(self._spec(d))
            self.assertEqual((s.n_epochs, s.learning_rate, s.trainable_blocks, s.n_ctx), (3, 1e-4, 10, 256))
            self.assertEqual(s.lr_scheduler, "linear")

    def test_invalid(self):
        cases = [
            {"method": {"type": "lora", "r": 8}},
            {"method": {"type": "full", "trainable_blocks": -1}},
            {"hyperparameters": {"n_epochs": 0}},
            {"hyperparameters": {"learning_rate": "fast"}},
            {"output_quantization": "q3"},
            {"kind": "embedding"},
            {"base_model": "/nonexistent.gguf"},
            {"resume_from": {"step": 1, "epoch": 1, "path": "/nonexistent"}},
        ]
        with tempfile.TemporaryDirectory() as d:
            for over in cases:
                with self.subTest(over=over):
                    with self.assertRaises(train.JobError) as cm:
                        train.parse_spec(self._spec(d, **over))
                    self.assertEqual(cm.exception.code, train.EXIT_INVALID)

    def test_rounding_and_batch_warning(self):
        with tempfile.TemporaryDirectory() as d:
            s = train.parse_spec(self._spec(d, n_ctx=300, hyperparameters={"batch_size": 4}))
            self.assertEqual(s.n_ctx, 512)
            self.assertEqual(len(s.warnings), 2)

    def test_lr_schedules(self):
        with tempfile.TemporaryDirectory() as d:
            s = train.parse_spec(self._spec(d, hyperparameters={"learning_rate": 4e-4}))
            self.assertAlmostEqual(train.lr_at(s, 1, 28), 4e-4)
            self.assertAlmostEqual(train.lr_at(s, 28, 28), 4e-4 / 28)
            s.lr_scheduler = "constant"
            self.assertAlmostEqual(train.lr_at(s, 28, 28), 4e-4)
            s.warmup_steps = 4
            self.assertAlmostEqual(train.lr_at(s, 2, 28), 2e-4)

    def test_trainable_filter(self):
        f = train.make_trainable_filter(30, 10)
        self.assertTrue(f("blk.20.attn_q.weight"))
        self.assertFalse(f("blk.19.attn_q.weight"))
        self.assertTrue(f("output_norm.weight"))
        self.assertFalse(f("token_embd.weight"))
        self.assertTrue(train.make_trainable_filter(30, 0)("blk.0.ffn_up.weight"))


class GgufTests(unittest.TestCase):
    def test_parse_dequantize_and_rewrite(self):
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "m.gguf")
            _tiny_gguf(src)
            info = gio.inspect(src)
            self.assertEqual((info.architecture, info.block_count, info.bos_token, info.eos_token), ("llama", 2, "<s>", "</s>"))
            self.assertFalse(info.all_f32)

            f32 = os.path.join(d, "m.f32.gguf")
            gio.dequantize_to_f32(src, f32)
            g = gio.GgufFile(f32)
            self.assertTrue(g.all_f32)
            self.assertEqual(g.get("general.file_type"), 0)
            self.assertEqual(g.get("tokenizer.chat_template"), info.chat_template)
            self.assertEqual(g.string_array("tokenizer.ggml.tokens"), ["<s>", "</s>", "a", "b"])

            import gguf  # cross-check with the reference reader

            r = gguf.GGUFReader(f32)
            orig = gguf.GGUFReader(src)
            for t, o in zip(r.tensors, orig.tensors):
                np.testing.assert_array_equal(np.asarray(t.data, dtype=np.float32),
                                              np.asarray(o.data).astype(np.float32))

            out = os.path.join(d, "ckpt.gguf")
            new = np.full((4, 32), 7.0, dtype=np.float32)
            gio.write_f32_gguf(out, g, lambda t: new if t.name == "blk.1.attn_q.weight" else None,
                               extra_kv={"llmops.finetune.step": (5, gio.T_UINT32),
                                         "llmops.finetune.train_loss": (0.25, gio.T_FLOAT32)})
            c = gio.GgufFile(out)
            self.assertEqual(c.get("llmops.finetune.step"), 5)
            self.assertAlmostEqual(c.get("llmops.finetune.train_loss"), 0.25)
            np.testing.assert_array_equal(c.tensor_f32(c.by_name["blk.1.attn_q.weight"]), new)
            np.testing.assert_array_equal(c.tensor_f32(c.by_name["blk.0.attn_q.weight"]),
                                          g.tensor_f32(g.by_name["blk.0.attn_q.weight"]))
            g.close()
            c.close()

    def test_garbage_is_rejected(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.gguf")
            _write(p, "not a gguf file at all, not even close")
            with self.assertRaises(gio.GgufError):
                gio.inspect(p)


class CliTests(unittest.TestCase):
    def test_train_cli_invalid_input(self):
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            self.skipTest("llama-cpp-python not installed")
        with tempfile.TemporaryDirectory() as d:
            spec = SpecTests()._spec(d, method={"type": "lora"})
            p = subprocess.run([sys.executable, os.path.join(HERE, "train.py"), "--spec", spec],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 2, p.stderr)
            lines = [json.loads(x) for x in p.stdout.splitlines()]
            self.assertTrue(lines and all(x["type"] == "message" for x in lines))
            self.assertIn("full tensors only", lines[-1]["message"])


class ToolSpecTests(unittest.TestCase):
    """quantize.py and evaluate.py refuse what they cannot do with exit 2,
    before loading anything."""

    def _run(self, script, spec):
        with tempfile.TemporaryDirectory() as d:
            base = os.path.join(d, "base.gguf")
            _write(base, "x")
            spec = {k: (base if v == "BASE" else v) for k, v in spec.items()}
            p = os.path.join(d, "spec.json")
            _write(p, json.dumps(spec))
            r = subprocess.run([sys.executable, os.path.join(HERE, script), "--spec", p],
                               capture_output=True, text=True, timeout=60)
            lines = [json.loads(x) for x in r.stdout.splitlines()]
            return r.returncode, lines[-1]["message"] if lines else r.stderr

    def test_quantize_refusals(self):
        for spec, why in [
            ({"kind": "quantize", "base_model": "BASE", "quantization": "q3", "output_dir": "/tmp"}, "quantization must be"),
            ({"kind": "quantize", "base_model": "BASE", "quantization": "f32", "output_dir": "/tmp"}, "quantization must be"),
            ({"kind": "quantize", "base_model": "/nonexistent.gguf", "quantization": "q4_0", "output_dir": "/tmp"}, "not found"),
            ({"kind": "evaluate", "base_model": "BASE", "quantization": "q4_0", "output_dir": "/tmp"}, "unsupported kind"),
        ]:
            with self.subTest(spec=spec):
                code, msg = self._run("quantize.py", spec)
                self.assertEqual(code, 2, msg)
                self.assertIn(why, msg)

    def test_evaluate_refusals(self):
        for spec, why in [
            ({"kind": "evaluate", "base_model": "BASE"}, "\"file\" is required"),
            ({"kind": "evaluate", "base_model": "BASE", "file": "BASE", "n_ctx": 8}, "n_ctx"),
            ({"kind": "evaluate", "base_model": "BASE", "file": "BASE", "generate_examples": -1}, "generate_examples"),
        ]:
            with self.subTest(spec=spec):
                code, msg = self._run("evaluate.py", spec)
                self.assertEqual(code, 2, msg)
                self.assertIn(why, msg)


if __name__ == "__main__":
    unittest.main()
