#!/usr/bin/env python3
"""Tests of the torch-peft recipe that run without torch or a GPU: the
`--check-spec` dry run (spec and JSONL validation, the plan), plus the
torch-free helpers (assistant-token masking with a stand-in tokenizer,
the deterministic tar).

    python3 infra/recipes/torch-peft/test_check_spec.py -v

Every `--check-spec` run gets a PYTHONPATH whose torch, transformers, peft,
deepspeed and accelerate packages raise on import, so a dry run that
imports any of them fails here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(HERE, "train.py")
POISONED = ("torch", "transformers", "peft", "deepspeed", "accelerate")

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

CHATS = [
    {"messages": [{"role": "user", "content": "Who keeps the lighthouse?"}, {"role": "assistant", "content": "Zorbemund."}]},
    {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And Spain?"},
        {"role": "assistant", "content": "Madrid."},
    ]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}, {"role": "assistant", "content": "Hello!"}]},
    {"messages": [{"role": "developer", "content": "Terse."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
]


def write_safetensors(path: str, tensors: dict) -> None:
    """A valid safetensors file: {name: (dtype, shape)}, zero-filled."""
    sizes = {"BF16": 2, "F16": 2, "F32": 4}
    header, off = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"\0" * off)


def make_model_dir(root: str, layers: int = 2, hidden: int = 8, vocab: int = 32, template: str = TEMPLATE) -> str:
    d = os.path.join(root, "base")
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "num_hidden_layers": layers,
                   "hidden_size": hidden, "vocab_size": vocab}, f)
    t = {"model.embed_tokens.weight": ("BF16", [vocab, hidden]), "model.norm.weight": ("BF16", [hidden]),
         "lm_head.weight": ("BF16", [vocab, hidden])}
    for i in range(layers):
        p = f"model.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            t[p + f"self_attn.{proj}.weight"] = ("BF16", [hidden, hidden])
        t[p + "mlp.gate_proj.weight"] = ("BF16", [2 * hidden, hidden])
        t[p + "mlp.up_proj.weight"] = ("BF16", [2 * hidden, hidden])
        t[p + "mlp.down_proj.weight"] = ("BF16", [hidden, 2 * hidden])
        t[p + "input_layernorm.weight"] = ("BF16", [hidden])
        t[p + "post_attention_layernorm.weight"] = ("BF16", [hidden])
    write_safetensors(os.path.join(d, "model.safetensors"), t)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump({"version": "1.0"}, f)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "<|end|>", "chat_template": template}, f)
    return d


def write_jsonl(path: str, rows: list) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


class RecipeCase(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name
        self.poison = os.path.join(self.tmp, "poison")
        for name in POISONED:
            os.makedirs(os.path.join(self.poison, name))
            with open(os.path.join(self.poison, name, "__init__.py"), "w") as f:
                f.write(f"raise ImportError('--check-spec must not import {name}')\n")
        self.base = make_model_dir(self.tmp)
        self.train = write_jsonl(os.path.join(self.tmp, "train.jsonl"), CHATS * 5)
        self.valid = write_jsonl(os.path.join(self.tmp, "valid.jsonl"), CHATS[:2])

    def tearDown(self):
        self._tmp.cleanup()

    def spec(self, **over) -> dict:
        s = {
            "job_id": "ftjob_test", "attempt": 1, "kind": "fine_tune",
            "base_model": self.base, "training_file": self.train, "validation_file": self.valid,
            "hyperparameters": {"n_epochs": 3, "batch_size": 8, "learning_rate": 2e-4},
            "method": {"type": "lora", "r": 16, "alpha": 32.0, "dropout": 0.05, "target_modules": []},
            "distributed": {"type": "none"},
            "resources": {"gpu_type": "h100", "gpus_per_node": 1, "nodes": 1},
            "deepspeed_config": None, "seed": 42, "max_seq_len": 2048, "bf16": True,
            "checkpoint_dir": os.path.join(self.tmp, "ckpt"), "resume_from": None,
            "output_dir": os.path.join(self.tmp, "out"), "merge_adapter": False,
        }
        s.update(over)
        return s

    def check(self, spec: dict, *extra: str):
        """Runs --check-spec; returns (exit code, the one stdout object, stderr)."""
        path = os.path.join(self.tmp, "spec.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        env = dict(os.environ, PYTHONPATH=self.poison)
        for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            env.pop(k, None)
        p = subprocess.run([sys.executable, TRAIN, "--check-spec", path, *extra],
                           capture_output=True, text=True, env=env, timeout=120)
        lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
        self.assertEqual(len(lines), 1, f"stdout must hold exactly one JSON line:\n{p.stdout}\nstderr:\n{p.stderr}")
        return p.returncode, json.loads(lines[0]), p.stderr

    def assertRefused(self, spec: dict, *needles: str, extra=()):
        rc, obj, err = self.check(spec, *extra)
        self.assertEqual(rc, 2, f"expected exit 2, got {rc}: {obj}\n{err}")
        self.assertEqual(obj["type"], "message")
        self.assertEqual(obj["level"], "error")
        for n in needles:
            self.assertIn(n, obj["message"])
        return obj["message"]


class CheckSpecTest(RecipeCase):
    def test_valid_lora_single_gpu(self):
        rc, plan, err = self.check(self.spec())
        self.assertEqual(rc, 0, err)
        self.assertEqual(plan["type"], "plan")
        self.assertEqual(plan["method"], {"type": "lora", "r": 16, "alpha": 32.0, "dropout": 0.05,
                                          "target_modules": "all-linear", "merge_adapter": False})
        self.assertEqual(plan["world_size"], 1)
        self.assertEqual(plan["distributed"], "none")
        self.assertIsNone(plan["deepspeed_stage"])
        self.assertEqual(plan["gradient_accumulation_steps"], 1)
        self.assertEqual(plan["effective_batch_size"], 8)
        self.assertEqual(plan["training_file"]["chats"], 20)
        self.assertEqual(plan["training_file"]["assistant_turns"], 25)
        self.assertEqual(plan["validation_file"]["chats"], 2)
        self.assertEqual(plan["steps_per_epoch"], 3)  # ceil(20 / 8)
        self.assertEqual(plan["total_steps"], 9)
        self.assertEqual(plan["output"]["layout"], "adapter")
        self.assertEqual(plan["output"]["artifact"], os.path.join(self.tmp, "out", "model.tar"))
        self.assertEqual(plan["launch"]["launcher"], "python")
        self.assertEqual(plan["base_model"]["layers"], 2)
        self.assertEqual(plan["base_model"]["assistant_mask"], "prefix_render")
        # 2 layers x r16 x [4 x (8+8) + 2 x (16+8) + (8+16)]
        self.assertEqual(plan["trainable_parameters_estimate"], 2 * 16 * (4 * 16 + 2 * 24 + 24))

    def test_valid_deepspeed_zero3_offload_2x8(self):
        ds_path = os.path.join(self.tmp, "ds_config.json")
        with open(ds_path, "w") as f:
            json.dump({
                "bf16": {"enabled": "auto"},
                "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}, "offload_param": {"device": "cpu"}},
                "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto", "train_batch_size": "auto",
            }, f)
        spec = self.spec(
            distributed={"type": "deepspeed", "zero_stage": 3, "offload_optimizer": True, "offload_params": True},
            resources={"gpu_type": "h100", "gpus_per_node": 8, "nodes": 2},
            deepspeed_config=ds_path,
        )
        # as the deepspeed launcher would start it
        rc, plan, err = self.check(spec, "--deepspeed", ds_path, "--local_rank=0")
        self.assertEqual(rc, 0, err)
        self.assertEqual(plan["world_size"], 16)
        self.assertEqual(plan["distributed"], "deepspeed")
        self.assertEqual(plan["deepspeed_stage"], 3)
        self.assertEqual(plan["deepspeed"]["offload_optimizer"], True)
        self.assertEqual(plan["deepspeed"]["offload_params"], True)
        self.assertEqual(plan["deepspeed"]["config"], ds_path)
        self.assertEqual(plan["effective_batch_size"], 8 * 1 * 16)
        self.assertEqual(plan["launch"]["launcher"], "torchrun")
        self.assertIn("--nnodes 2 --nproc-per-node 8", plan["launch"]["command"])
        adjustments = " ".join(plan["deepspeed"]["adjustments"])
        self.assertIn("stage3_gather_16bit_weights_on_model_save", adjustments)
        self.assertIn("optimizer", adjustments)
        self.assertEqual(plan["memory_estimate_gib"]["weights"], 0.0)  # parameters offloaded

    def test_deepspeed_generated_config_with_accumulation(self):
        spec = self.spec(
            hyperparameters={"n_epochs": 1, "batch_size": 4, "learning_rate": "auto", "gradient_accumulation_steps": 4},
            distributed={"type": "deepspeed", "zero_stage": 2, "offload_optimizer": False, "offload_params": False},
            resources={"gpu_type": "h100", "gpus_per_node": 8, "nodes": 1},
        )
        rc, plan, err = self.check(spec)
        self.assertEqual(rc, 0, err)
        self.assertEqual(plan["deepspeed"]["config"], "generated")
        self.assertEqual(plan["deepspeed_stage"], 2)
        self.assertEqual(plan["gradient_accumulation_steps"], 4)
        self.assertEqual(plan["effective_batch_size"], 4 * 4 * 8)
        self.assertEqual(plan["learning_rate"], 2e-4)

    def test_full_top_blocks(self):
        rc, plan, err = self.check(self.spec(method={"type": "full", "trainable_blocks": 1}))
        self.assertEqual(rc, 0, err)
        self.assertEqual(plan["method"], {"type": "full", "trainable_blocks": 1})
        self.assertEqual(plan["output"]["layout"], "merged")
        self.assertLess(plan["trainable_parameters_estimate"], plan["base_model"]["parameters"])

    def test_megatron_refused(self):
        msg = self.assertRefused(
            self.spec(distributed={"type": "megatron", "tensor_parallel": 8, "pipeline_parallel": 2},
                      resources={"gpu_type": "h100", "gpus_per_node": 8, "nodes": 2}),
            "Megatron-LM/NeMo", "megatron",
        )
        self.assertIn("tensor_parallel=8", msg)

    def test_bad_jsonl_line_3(self):
        bad = write_jsonl(os.path.join(self.tmp, "bad.jsonl"), [CHATS[0], CHATS[1], '{"messages": [oops', CHATS[2]])
        self.assertRefused(self.spec(training_file=bad), "line 3", "invalid JSON")

    def test_jsonl_without_assistant_names_line(self):
        rows = [CHATS[0], "", {"messages": [{"role": "user", "content": "only a question"}]}]
        bad = write_jsonl(os.path.join(self.tmp, "noassistant.jsonl"), rows)
        self.assertRefused(self.spec(validation_file=bad), "validation file", "line 3", "assistant")

    def test_missing_base_model_dir(self):
        self.assertRefused(self.spec(base_model=os.path.join(self.tmp, "nope")), "base_model not found")

    def test_base_model_without_chat_template(self):
        other = os.path.join(self.tmp, "other")
        os.makedirs(other)
        base = make_model_dir(other, template="")
        self.assertRefused(self.spec(base_model=base), "chat template")

    def test_zero_stage_mismatch(self):
        ds_path = os.path.join(self.tmp, "ds2.json")
        with open(ds_path, "w") as f:
            json.dump({"zero_optimization": {"stage": 2}}, f)
        self.assertRefused(
            self.spec(distributed={"type": "deepspeed", "zero_stage": 3}, deepspeed_config=ds_path,
                      resources={"gpu_type": "h100", "gpus_per_node": 2, "nodes": 1}),
            "zero_optimization.stage",
        )

    def test_offload_params_needs_stage_3(self):
        self.assertRefused(self.spec(distributed={"type": "deepspeed", "zero_stage": 2, "offload_params": True}),
                           "offload_params")

    def test_train_batch_size_mismatch(self):
        ds_path = os.path.join(self.tmp, "ds3.json")
        with open(ds_path, "w") as f:
            json.dump({"zero_optimization": {"stage": 1}, "train_batch_size": 64}, f)
        self.assertRefused(
            self.spec(distributed={"type": "deepspeed", "zero_stage": 1}, deepspeed_config=ds_path,
                      resources={"gpu_type": "h100", "gpus_per_node": 4, "nodes": 1}),
            "train_batch_size", "32",
        )

    def test_unsupported_method_and_bad_lora(self):
        self.assertRefused(self.spec(method={"type": "qlora", "r": 8}), "qlora")
        self.assertRefused(self.spec(method={"type": "lora", "r": 0}), "method.r")
        self.assertRefused(self.spec(method={"type": "lora", "r": 8, "target_modules": ["q_proj;rm"]}), "target_modules")

    def test_missing_resume_checkpoint(self):
        self.assertRefused(self.spec(resume_from={"step": 3, "epoch": 1, "path": os.path.join(self.tmp, "gone")}),
                           "resume_from.path")

    def test_spec_not_json(self):
        path = os.path.join(self.tmp, "broken.json")
        with open(path, "w") as f:
            f.write("{not json")
        env = dict(os.environ, PYTHONPATH=self.poison)
        p = subprocess.run([sys.executable, TRAIN, "--check-spec", path], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("not valid JSON", json.loads(p.stdout)["message"])


def _load_train_module():
    if "torch_peft_train" in sys.modules:
        return sys.modules["torch_peft_train"]
    spec = importlib.util.spec_from_file_location("torch_peft_train", TRAIN)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


class CharTokenizer:
    """A stand-in for a fast Hugging Face tokenizer: one token per character,
    the special tokens as single tokens, offsets like `return_offsets_mapping`,
    the chat template rendered with jinja2 like apply_chat_template."""

    is_fast = True

    def __init__(self, template: str, specials=("<s>", "<|end|>")):
        import jinja2

        self.chat_template = template
        self.all_special_tokens = list(specials)
        self._tpl = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(template)

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, **_):
        assert not tokenize
        return self._tpl.render(messages=messages, bos_token="<s>", add_generation_prompt=add_generation_prompt)

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        ids, offs, i = [], [], 0
        while i < len(text):
            for s in self.all_special_tokens:
                if text.startswith(s, i):
                    ids.append(1000 + self.all_special_tokens.index(s))
                    offs.append((i, i + len(s)))
                    i += len(s)
                    break
            else:
                ids.append(ord(text[i]))
                offs.append((i, i + 1))
                i += 1
        out = {"input_ids": ids}
        if return_offsets_mapping:
            out["offset_mapping"] = offs
        return out


@unittest.skipUnless(importlib.util.find_spec("jinja2"), "jinja2 is not installed")
class AssistantMaskTest(unittest.TestCase):
    def setUp(self):
        self.m = _load_train_module()

    def trained_text(self, tok, ex):
        return "".join(
            ("<s>" if t == 1000 else "<|end|>" if t == 1001 else chr(t)) if lab != -100 else "\0"
            for t, lab in zip(ex["input_ids"], ex["labels"])
        )

    def test_prefix_render_marks_assistant_turns_with_end_token(self):
        tok = CharTokenizer(TEMPLATE)
        enc = self.m.ChatEncoder(tok, None, 4096)
        chat = self.m.Chat(line=1, messages=CHATS[1]["messages"], weights=[0, 0, 1, 0, 1])
        ex = enc.encode(chat, "test line 1")
        trained = [seg for seg in self.trained_text(tok, ex).split("\0") if seg]
        self.assertEqual(trained, ["Paris.<|end|>\n", "Madrid.<|end|>\n"])
        self.assertEqual(enc.stats["prefix_render"], 2)

    def test_weight_zero_turn_is_context_only(self):
        tok = CharTokenizer(TEMPLATE)
        enc = self.m.ChatEncoder(tok, None, 4096)
        chat = self.m.Chat(line=7, messages=CHATS[1]["messages"], weights=[0, 0, 0, 0, 1])
        trained = [seg for seg in self.trained_text(tok, enc.encode(chat, "x")).split("\0") if seg]
        self.assertEqual(trained, ["Madrid.<|end|>\n"])

    def test_truncation_drops_chats_without_trained_tokens(self):
        tok = CharTokenizer(TEMPLATE)
        enc = self.m.ChatEncoder(tok, None, 10)
        chat = self.m.Chat(line=1, messages=CHATS[0]["messages"], weights=[0, 1])
        self.assertIsNone(enc.encode(chat, "x"))
        self.assertEqual(enc.stats["dropped"], 1)

    def test_template_dropping_history_falls_back_to_content_search(self):
        # Renders earlier assistant turns differently from the last one.
        tpl = ("{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}<|assistant|>\n[old] {{ m['content'] }}<|end|>\n"
               "{% else %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endif %}{% endfor %}"
               "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
        tok = CharTokenizer(tpl)
        enc = self.m.ChatEncoder(tok, None, 4096)
        chat = self.m.Chat(line=1, messages=CHATS[1]["messages"], weights=[0, 0, 1, 0, 1])
        trained = [seg for seg in self.trained_text(tok, enc.encode(chat, "x")).split("\0") if seg]
        self.assertEqual(trained, ["Paris.<|end|>", "Madrid.<|end|>\n"])
        self.assertEqual(enc.stats["content_search"], 1)

    def test_template_refusal_names_the_line(self):
        tok = CharTokenizer("{{ raise_exception('roles must alternate') }}")
        tok.apply_chat_template = lambda *a, **k: (_ for _ in ()).throw(ValueError("roles must alternate"))
        enc = self.m.ChatEncoder(tok, None, 4096)
        chat = self.m.Chat(line=5, messages=CHATS[0]["messages"], weights=[0, 1])
        with self.assertRaises(self.m.DataError) as cm:
            enc.encode(chat, "training file t.jsonl line 5")
        self.assertIn("line 5", str(cm.exception))


class ArtifactTest(unittest.TestCase):
    def test_deterministic_tar(self):
        m = _load_train_module()
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "adapter")
            os.makedirs(os.path.join(src, "sub"))
            write_safetensors(os.path.join(src, "adapter_model.safetensors"), {"a.lora_A.weight": ("F32", [4, 8])})
            for name, text in (("adapter_config.json", "{}"), ("sub/z.txt", "z"), ("b.txt", "b")):
                with open(os.path.join(src, name), "w") as f:
                    f.write(text)
            a, b = os.path.join(tmp, "a.tar"), os.path.join(tmp, "b.tar")
            m.deterministic_tar(src, a)
            os.utime(os.path.join(src, "b.txt"), (1, 1))  # mtimes must not matter
            m.deterministic_tar(src, b)
            self.assertEqual(m.file_sha256(a), m.file_sha256(b))
            with open(a, "rb") as f:
                self.assertEqual(m.file_sha256(a), hashlib.sha256(f.read()).hexdigest())
            import tarfile

            with tarfile.open(a) as t:
                self.assertEqual(t.getnames(), sorted(t.getnames()))
                self.assertTrue(all(x.mtime == 0 and x.uid == 0 for x in t.getmembers()))
            self.assertEqual(m.dominant_dtype(src), "f32")


if __name__ == "__main__":
    unittest.main()
