#!/usr/bin/env python3
"""Supervised fine-tuning of a Hugging Face causal LM on GPUs with PyTorch,
transformers' Trainer and PEFT (LoRA) or full weights, DeepSpeed ZeRO when the
job asks for it.

    python train.py --spec SPEC.json                    # one process, one GPU
    torchrun ... train.py --spec SPEC.json              # several GPUs / nodes
    deepspeed ... train.py --spec SPEC.json --deepspeed ds_config.json
    python train.py --check-spec SPEC.json              # dry run: no torch needed

stdout carries one JSON object per line and nothing else, written by global
rank 0 only (see README.md for the protocol); logs go to stderr.

Exit codes: 0 success, 2 invalid input (spec, data, unsupported combination),
75 retryable failure (CUDA out of memory, NCCL/distributed failure, I/O),
143 stopped by SIGTERM after writing a checkpoint (130 for SIGINT), 1 other
failures.

torch, transformers, peft and deepspeed are imported inside the training path
only, so `--check-spec` runs on any Python 3.10+ without them.

The protocol writer, exit codes, spec loading and the JSONL line reader are
shared with the other recipes: ../common/recipe_common.py (standard library
only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import signal
import struct
import sys
import tarfile
import time
import traceback
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
_COMMON = os.path.join(HERE, "..", "common")  # the recipes directory ships whole
if _COMMON not in sys.path:
    sys.path.insert(0, _COMMON)

import recipe_common  # noqa: E402
from recipe_common import EXIT_FAILED, EXIT_INVALID, EXIT_OK, EXIT_RETRY, HANDLED_ERRORS, DataError  # noqa: E402
from recipe_common import Events, JobError, JobSpec, RetryableError, Terminated, abs_path, chat_messages  # noqa: E402
from recipe_common import existing_file, exit_code_for, invalid, is_int as _is_int, is_num as _is_num  # noqa: E402
from recipe_common import line_where, load_spec, message_content, object_field, parse_learning_rate  # noqa: E402
from recipe_common import parse_n_epochs, read_chat_lines, round_or_none as _round  # noqa: E402

RECIPE = "torch-peft"
DEFAULT_EPOCHS = 3
DEFAULT_BATCH_SIZE = 8
DEFAULT_LR_LORA = 2e-4
DEFAULT_LR_FULL = 2e-5
DEFAULT_MAX_SEQ_LEN = 2048
DEFAULT_WARMUP_RATIO = 0.03
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
ROLES = recipe_common.CHAT_ROLES
MODULE_NAME_RE = re.compile(r"^[A-Za-z0-9_.]{1,64}$")
GENERATION_TAG_RE = re.compile(r"\{%-?\s*generation\s*-?%\}")
# Names of the final norm of a decoder stack in common architectures; it is
# trained together with the top blocks when trainable_blocks > 0.
FINAL_NORM_NAMES = ("norm", "final_layernorm", "final_layer_norm", "ln_f", "norm_f", "final_norm")


# ====================================================================== plumbing


class StopFlag(recipe_common.StopFlag):
    """SIGTERM/SIGINT set a flag (noted on stderr); training stops at the next
    optimizer step boundary.  With several processes the ranks agree
    (all-reduce MAX) so that all of them stop at the same step and save the
    same checkpoint."""

    def __init__(self):
        super().__init__(announce=True)

    def agreed(self, torch, device) -> bool:
        local = self.signum is not None
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flag = torch.tensor([1 if local else 0], dtype=torch.int32, device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if int(flag.item()) and self.signum is None:
                self.signum = signal.SIGTERM  # another rank was asked to stop
            return bool(flag.item())
        return local


@dataclass
class DistEnv:
    """What the launcher (torchrun / deepspeed) put in the environment."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int

    @staticmethod
    def from_env() -> "DistEnv":
        def env_int(name: str, default: int) -> int:
            try:
                return int(os.environ.get(name, default))
            except ValueError:
                return default

        world = env_int("WORLD_SIZE", 1)
        return DistEnv(
            rank=env_int("RANK", 0),
            local_rank=env_int("LOCAL_RANK", 0),
            world_size=world,
            local_world_size=env_int("LOCAL_WORLD_SIZE", env_int("LOCAL_SIZE", world)),
        )


def _perplexity(loss):
    return None if loss is None else _round(math.exp(min(float(loss), 700.0)), 4)


# ====================================================================== spec


@dataclass
class Method:
    type: str  # "lora" | "full"
    r: int = 0
    alpha: float = 0.0
    dropout: float = 0.0
    target_modules: list = field(default_factory=list)  # [] = "all-linear"
    trainable_blocks: int = 0  # full: 0 = every parameter

    def describe(self) -> dict:
        if self.type == "lora":
            return {
                "type": "lora", "r": self.r, "alpha": self.alpha, "dropout": self.dropout,
                "target_modules": list(self.target_modules) or "all-linear",
            }
        return {"type": "full", "trainable_blocks": self.trainable_blocks}


@dataclass
class Distributed:
    type: str  # "none" | "deepspeed"
    zero_stage: int | None = None
    offload_optimizer: bool = False
    offload_params: bool = False


@dataclass
class Spec(JobSpec):
    path: str
    batch_size: int
    gradient_accumulation_steps: int | None  # None: from the DeepSpeed config, else 1
    warmup_ratio: float
    max_grad_norm: float
    method: Method
    merge_adapter: bool
    distributed: Distributed
    gpu_type: str
    gpus_per_node: int
    nodes: int
    deepspeed_config: str | None
    max_seq_len: int
    bf16: bool
    warnings: list = field(default_factory=list)

    @property
    def world_size(self) -> int:
        return self.gpus_per_node * self.nodes


def _path(obj: dict, key: str, required: bool, where: str = "spec") -> str | None:
    return abs_path(obj, key, required, where, show_value=True)


def _auto(v) -> bool:
    return v is None or v == "auto"


def _bool(obj: dict, key: str, default: bool, where: str) -> bool:
    v = obj.get(key, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise invalid(f"{where}.{key} must be true or false (got {v!r})")
    return v


def _parse_method(m) -> Method:
    if m is None:
        raise invalid("spec: \"method\" is required ({\"type\":\"lora\",...} or {\"type\":\"full\",...})")
    if not isinstance(m, dict):
        raise invalid("spec: \"method\" must be an object")
    mtype = m.get("type")
    if mtype == "lora":
        r = m.get("r", 16)
        if not _is_int(r) or not 1 <= r <= 1024:
            raise invalid(f"method.r must be an integer 1..1024 (got {r!r})")
        alpha = m.get("alpha", 2 * r)
        if not _is_num(alpha) or not 0 < float(alpha) <= 4096:
            raise invalid(f"method.alpha must be a number above 0, at most 4096 (got {alpha!r})")
        dropout = m.get("dropout", 0.05)
        if dropout is None:
            dropout = 0.0
        if not _is_num(dropout) or not 0 <= float(dropout) <= 0.9:
            raise invalid(f"method.dropout must be a number 0..0.9 (got {dropout!r})")
        targets = m.get("target_modules") or []
        if not isinstance(targets, list) or len(targets) > 32:
            raise invalid("method.target_modules must be a list of at most 32 module names ([] = all linear layers)")
        for t in targets:
            if not isinstance(t, str) or not MODULE_NAME_RE.match(t):
                raise invalid(f"method.target_modules: {t!r} is not a module name (letters, digits, '_', '.', at most 64)")
        return Method("lora", r=r, alpha=float(alpha), dropout=float(dropout), target_modules=list(dict.fromkeys(targets)))
    if mtype == "full":
        tb = m.get("trainable_blocks", 0)
        if tb is None:
            tb = 0
        if not _is_int(tb) or not 0 <= tb <= 1000:
            raise invalid(f"method.trainable_blocks must be an integer 0..1000 (0 = all parameters; got {tb!r})")
        return Method("full", trainable_blocks=tb)
    if mtype in ("qlora", "dora", "adalora", "ia3", "prefix_tuning", "prompt_tuning"):
        raise invalid(f"method {mtype!r} is not implemented by the {RECIPE} recipe (only \"lora\" and \"full\")")
    raise invalid(f"method.type must be \"lora\" or \"full\" (got {mtype!r})")


def _parse_distributed(d) -> Distributed:
    if d is None:
        return Distributed("none")
    if not isinstance(d, dict):
        raise invalid("spec: \"distributed\" must be an object")
    dtype = d.get("type", "none")
    if dtype == "none":
        return Distributed("none")
    if dtype == "deepspeed":
        stage = d.get("zero_stage")
        if not _is_int(stage) or stage not in (1, 2, 3):
            raise invalid(f"distributed.zero_stage must be 1, 2 or 3 (got {stage!r})")
        off_opt = _bool(d, "offload_optimizer", False, "distributed")
        off_par = _bool(d, "offload_params", False, "distributed")
        if off_par and stage != 3:
            raise invalid("distributed.offload_params needs ZeRO stage 3 (parameters are only partitioned at stage 3)")
        return Distributed("deepspeed", zero_stage=stage, offload_optimizer=off_opt, offload_params=off_par)
    if dtype == "megatron":
        tp, pp = d.get("tensor_parallel"), d.get("pipeline_parallel")
        raise invalid(
            f"distributed.type \"megatron\" (tensor_parallel={tp}, pipeline_parallel={pp}) is not implemented by the "
            f"{RECIPE} recipe: Megatron-style tensor/pipeline parallelism needs the Megatron-LM/NeMo launcher. This "
            "recipe only does data parallelism (DDP, or DeepSpeed ZeRO stage 1-3 with optional CPU offload); "
            "ask for {\"type\":\"deepspeed\",\"zero_stage\":3} instead, or run the job with a Megatron-LM/NeMo recipe"
        )
    raise invalid(f"distributed.type must be \"none\", \"deepspeed\" or \"megatron\" (got {dtype!r})")


def parse_spec(path: str) -> Spec:
    """Reads and validates spec.json.  Touches the file system (paths must
    exist) but imports nothing heavy."""
    s = load_spec(path)
    warnings: list[str] = []

    attempt = s.get("attempt", 1)
    if not _is_int(attempt) or attempt < 1:
        raise invalid(f"spec: \"attempt\" must be a positive integer (got {attempt!r})")

    base = _path(s, "base_model", True)
    if not os.path.isdir(base):
        raise invalid(f"base_model not found: {base} (expected a Hugging Face model directory: config.json, *.safetensors, tokenizer files)")
    train = existing_file(s, "training_file", True, show_value=True)
    valid = existing_file(s, "validation_file", False, show_value=True)

    method = _parse_method(s.get("method"))

    hp = object_field(s, "hyperparameters")
    n_epochs = parse_n_epochs(hp, DEFAULT_EPOCHS)
    batch = DEFAULT_BATCH_SIZE if _auto(hp.get("batch_size")) else hp.get("batch_size")
    if not _is_int(batch) or not 1 <= batch <= 1024:
        raise invalid(f"hyperparameters.batch_size (per GPU) must be an integer 1..1024 or \"auto\" (got {batch!r})")
    default_lr = DEFAULT_LR_LORA if method.type == "lora" else DEFAULT_LR_FULL
    lr = parse_learning_rate(hp, default_lr, max_multiplier=100)
    if method.type == "full" and lr > 1e-4:
        warnings.append(f"learning_rate {lr:g} is high for full fine-tuning (1e-5 to 5e-5 is usual)")
    ga = hp.get("gradient_accumulation_steps")
    if not _auto(ga) and (not _is_int(ga) or not 1 <= ga <= 1024):
        raise invalid(f"hyperparameters.gradient_accumulation_steps must be an integer 1..1024 (got {ga!r})")
    ga = None if _auto(ga) else ga
    sched = hp.get("lr_scheduler", "linear") or "linear"
    if sched not in SCHEDULERS:
        raise invalid(f"hyperparameters.lr_scheduler must be one of {', '.join(SCHEDULERS)} (got {sched!r})")
    warmup = hp.get("warmup_ratio", DEFAULT_WARMUP_RATIO)
    if warmup is None:
        warmup = DEFAULT_WARMUP_RATIO
    if not _is_num(warmup) or not 0 <= float(warmup) <= 0.5:
        raise invalid(f"hyperparameters.warmup_ratio must be a number 0..0.5 (got {warmup!r})")
    wd = hp.get("weight_decay", 0.0)
    if wd is None:
        wd = 0.0
    if not _is_num(wd) or not 0 <= float(wd) < 1:
        raise invalid(f"hyperparameters.weight_decay must be a number in [0, 1) (got {wd!r})")
    clip = hp.get("max_grad_norm", 1.0)
    if clip is None:
        clip = 1.0
    if not _is_num(clip) or float(clip) < 0:
        raise invalid(f"hyperparameters.max_grad_norm must be a non-negative number (got {clip!r})")

    dist = _parse_distributed(s.get("distributed"))

    res = object_field(s, "resources")
    gpn = res.get("gpus_per_node", 1)
    nodes = res.get("nodes", 1)
    if not _is_int(gpn) or not 1 <= gpn <= 64:
        raise invalid(f"resources.gpus_per_node must be an integer 1..64 (got {gpn!r})")
    if not _is_int(nodes) or not 1 <= nodes <= 512:
        raise invalid(f"resources.nodes must be an integer 1..512 (got {nodes!r})")
    gpu_type = res.get("gpu_type") or ""
    if not isinstance(gpu_type, str):
        raise invalid("resources.gpu_type must be a string")

    ds_path = existing_file(s, "deepspeed_config", False, show_value=True)
    if ds_path is not None and dist.type != "deepspeed":
        raise invalid("deepspeed_config is given but distributed.type is not \"deepspeed\"")

    seed = s.get("seed", 42)
    if seed is None:
        seed = 42
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise invalid(f"spec: \"seed\" must be an integer 0..2^32-1 (got {seed!r})")
    msl = s.get("max_seq_len", DEFAULT_MAX_SEQ_LEN)
    if msl is None:
        msl = DEFAULT_MAX_SEQ_LEN
    if not _is_int(msl) or not 16 <= msl <= 1 << 20:
        raise invalid(f"spec: \"max_seq_len\" must be an integer 16..1048576 (got {msl!r})")
    bf16 = _bool(s, "bf16", True, "spec")
    merge = _bool(s, "merge_adapter", False, "spec")
    if merge and method.type == "full":
        warnings.append("merge_adapter is meaningless for full training (the output is full weights anyway)")

    out_dir = _path(s, "output_dir", True)
    ckpt_dir = _path(s, "checkpoint_dir", False) or os.path.join(out_dir, "checkpoints")
    for key, d in (("output_dir", out_dir), ("checkpoint_dir", ckpt_dir)):
        if os.path.exists(d) and not os.path.isdir(d):
            raise invalid(f"{key} {d} exists and is not a directory")

    resume = s.get("resume_from")
    if resume is not None:
        if not isinstance(resume, dict):
            raise invalid("spec: \"resume_from\" must be an object or null")
        rstep, repoch = resume.get("step"), resume.get("epoch")
        if not _is_int(rstep) or rstep < 0:
            raise invalid(f"resume_from.step must be a non-negative integer (got {rstep!r})")
        if repoch is not None and (not _is_num(repoch) or float(repoch) < 0):
            raise invalid(f"resume_from.epoch must be a non-negative number or null (got {repoch!r})")
        rpath = _path(resume, "path", True, "resume_from")
        if not os.path.exists(rpath):
            raise invalid(f"resume_from.path not found: {rpath}")
        if os.path.isfile(rpath) and not tarfile.is_tarfile(rpath):
            raise invalid(f"resume_from.path {rpath} is neither a checkpoint directory nor a tar of one")
        if os.path.isdir(rpath) and not _find_checkpoint_dir(rpath):
            raise invalid(f"resume_from.path {rpath} holds no Trainer checkpoint (no trainer_state.json)")
        resume = {"step": rstep, "epoch": repoch, "path": rpath}

    job_id = s.get("job_id") or "job"
    return Spec(
        path=os.path.abspath(path), job_id=str(job_id), attempt=attempt,
        base_model=base, training_file=train, validation_file=valid,
        n_epochs=n_epochs, batch_size=batch, learning_rate=lr, gradient_accumulation_steps=ga,
        lr_scheduler=sched, warmup_ratio=float(warmup), weight_decay=float(wd), max_grad_norm=float(clip),
        method=method, merge_adapter=merge, distributed=dist,
        gpu_type=gpu_type, gpus_per_node=gpn, nodes=nodes, deepspeed_config=ds_path,
        seed=seed, max_seq_len=msl, bf16=bf16,
        checkpoint_dir=ckpt_dir, output_dir=out_dir, resume_from=resume, warnings=warnings,
    )


# ====================================================================== base model (no torch)


@dataclass
class BaseModel:
    path: str
    model_type: str | None
    architectures: list
    layers: int | None
    hidden_size: int | None
    parameters: int
    weight_bytes: int
    tensors: dict  # name -> (dtype, shape)
    chat_template: str
    generation_tags: bool


def read_safetensors_header(path: str) -> dict:
    """The tensor table of a .safetensors file: {name: {"dtype","shape","data_offsets"}}."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ValueError("shorter than 8 bytes")
            (n,) = struct.unpack("<Q", head)
            if n > 100 * 1024 * 1024 or 8 + n > size:
                raise ValueError(f"header length {n} does not fit a file of {size} bytes")
            header = json.loads(f.read(n).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, struct.error) as e:
        raise invalid(f"{path} is not a safetensors file: {e}")
    if not isinstance(header, dict):
        raise invalid(f"{path} is not a safetensors file: its header is not an object")
    return {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}


def _num_layers(cfg: dict) -> int | None:
    for c in (cfg, cfg.get("text_config") or {}, cfg.get("llm_config") or {}):
        if not isinstance(c, dict):
            continue
        for key in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
            v = c.get(key)
            if _is_int(v) and v > 0:
                return v
    return None


def _chat_template(base: str) -> str | None:
    """The chat template the tokenizer will load: chat_template.jinja,
    chat_template.json, or tokenizer_config.json's chat_template (a string,
    or a list of named templates of which "default" is used)."""
    jinja = os.path.join(base, "chat_template.jinja")
    if os.path.isfile(jinja):
        with open(jinja, "r", encoding="utf-8") as f:
            return f.read()
    candidates = []
    for name in ("chat_template.json", "tokenizer_config.json"):
        p = os.path.join(base, name)
        if os.path.isfile(p):
            try:
                with open(p, "r", encoding="utf-8") as f:
                    obj = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise invalid(f"base_model: {name} is not valid JSON: {e}")
            if isinstance(obj, dict):
                candidates.append(obj.get("chat_template"))
    for t in candidates:
        if isinstance(t, str) and t.strip():
            return t
        if isinstance(t, list):
            named = {x.get("name"): x.get("template") for x in t if isinstance(x, dict)}
            if isinstance(named.get("default"), str):
                return named["default"]
    return None


def inspect_base_model(base: str) -> BaseModel:
    cfg_path = os.path.join(base, "config.json")
    if not os.path.isfile(cfg_path):
        raise invalid(f"base_model {base} has no config.json (expected a Hugging Face model directory)")
    try:
        with open(cfg_path, "r", encoding="utf-8") as f:
            cfg = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise invalid(f"base_model config.json is not valid JSON: {e}")
    if not isinstance(cfg, dict):
        raise invalid("base_model config.json is not a JSON object")

    index = os.path.join(base, "model.safetensors.index.json")
    if os.path.isfile(index):
        try:
            with open(index, "r", encoding="utf-8") as f:
                shards = sorted(set((json.load(f).get("weight_map") or {}).values()))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
            raise invalid(f"base_model model.safetensors.index.json is not valid: {e}")
        for sh in shards:
            if not os.path.isfile(os.path.join(base, sh)):
                raise invalid(f"base_model: shard {sh} listed in model.safetensors.index.json is missing")
    else:
        shards = sorted(n for n in os.listdir(base) if n.endswith(".safetensors"))
    if not shards:
        raise invalid(f"base_model {base} holds no *.safetensors weights (this recipe loads safetensors only)")
    tensors: dict = {}
    params = 0
    nbytes = 0
    for sh in shards:
        for name, t in read_safetensors_header(os.path.join(base, sh)).items():
            shape = t.get("shape") or []
            n = 1
            for d in shape:
                n *= int(d)
            params += n
            off = t.get("data_offsets") or [0, 0]
            nbytes += int(off[1]) - int(off[0]) if len(off) == 2 else 0
            tensors[name] = (t.get("dtype"), [int(d) for d in shape])

    if not any(os.path.isfile(os.path.join(base, n)) for n in ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")):
        raise invalid(f"base_model {base} has no tokenizer files (tokenizer.json, tokenizer.model or vocab.json)")
    template = _chat_template(base)
    if not template:
        raise invalid(
            f"base_model {base} has no chat template (tokenizer_config.json chat_template or chat_template.jinja): "
            "chats cannot be rendered the way the model will be served"
        )
    text_cfg = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else {}
    hidden = cfg.get("hidden_size") or text_cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model")
    return BaseModel(
        path=base,
        model_type=cfg.get("model_type"),
        architectures=list(cfg.get("architectures") or []),
        layers=_num_layers(cfg),
        hidden_size=hidden if _is_int(hidden) else None,
        parameters=params,
        weight_bytes=nbytes,
        tensors=tensors,
        chat_template=template,
        generation_tags=bool(GENERATION_TAG_RE.search(template)),
    )


_LAYER_INDEX_RE = re.compile(r"\.(\d+)\.")


def estimate_trainable(base: BaseModel, method: Method) -> int:
    """Trainable parameters, estimated from the tensor table (LoRA: r x
    (in + out) per adapted linear layer of the decoder blocks)."""
    if method.type == "full":
        if method.trainable_blocks == 0 or not base.layers or method.trainable_blocks >= base.layers:
            return base.parameters
        first = base.layers - method.trainable_blocks
        total = 0
        for name, (_, shape) in base.tensors.items():
            m = _LAYER_INDEX_RE.search(name)
            if m and int(m.group(1)) >= first:
                total += math.prod(shape) if shape else 1
        return total
    total = 0
    targets = method.target_modules
    for name, (_, shape) in base.tensors.items():
        if len(shape) != 2 or not name.endswith(".weight") or not _LAYER_INDEX_RE.search(name):
            continue
        module = name[: -len(".weight")]
        if targets:
            if not any(module == t or module.endswith("." + t) for t in targets):
                continue
        elif any(k in module for k in ("embed", "lm_head", "wte", "wpe")):
            continue
        total += method.r * (shape[0] + shape[1])
    return total


# ====================================================================== data (no torch)


@dataclass
class Chat:
    line: int
    messages: list  # [{"role", "content"}]
    weights: list  # per message: 1 train (assistant), 0 context


@dataclass
class ChatFile:
    path: str
    chats: list
    assistant_turns: int
    characters: int


def load_chats(path: str, label: str) -> ChatFile:
    """Reads an OpenAI chat-format JSONL file; every problem names its line
    (1-based, blank lines count)."""
    chats: list[Chat] = []
    turns = 0
    chars = 0
    for lineno, obj in read_chat_lines(path, label):
        where = line_where(label, path, lineno)
        if obj.get("tools") or obj.get("functions"):
            raise DataError(f"{where}: tool/function definitions are not supported by this recipe")
        out, weights = [], []
        for mw, m in chat_messages(obj, where):
            role = m.get("role")
            if role == "developer":
                role = "system"
            if role not in ROLES:
                raise DataError(f"{mw}: role must be one of system, developer, user, assistant (got {role!r})")
            if m.get("tool_calls") or m.get("function_call"):
                raise DataError(f"{mw}: tool calls are not supported by this recipe")
            text = message_content(m, mw, expected="a string or a list of text parts")
            w = m.get("weight", 1 if role == "assistant" else 0)
            if "weight" in m:
                if role != "assistant":
                    raise DataError(f"{mw}: \"weight\" is only allowed on assistant messages")
                if w not in (0, 1) or isinstance(w, bool):
                    raise DataError(f"{mw}: \"weight\" must be 0 or 1 (got {w!r})")
            out.append({"role": role, "content": text})
            weights.append(int(w))
            chars += len(text)
        trained = sum(1 for m, w in zip(out, weights) if m["role"] == "assistant" and w)
        if not trained:
            raise DataError(f"{where}: a chat needs at least one assistant message to train on (weight 1)")
        turns += trained
        chats.append(Chat(lineno, out, weights))
    return ChatFile(path=path, chats=chats, assistant_turns=turns, characters=chars)


# ====================================================================== DeepSpeed config (no torch)


@dataclass
class DeepSpeedPlan:
    stage: int
    offload_optimizer: bool
    offload_params: bool
    source: str | None  # the given config file, None = generated here
    config: dict
    adjustments: list


def _ds_offloaded(z: dict, key: str) -> bool:
    v = z.get(key)
    return isinstance(v, dict) and str(v.get("device", "none")).lower() in ("cpu", "nvme")


def generated_deepspeed_config(d: Distributed) -> dict:
    z: dict = {
        "stage": d.zero_stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if d.zero_stage == 3:
        z.update({
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_max_live_parameters": 1_000_000_000,
            "stage3_max_reuse_distance": 1_000_000_000,
            "stage3_gather_16bit_weights_on_model_save": True,
        })
    if d.offload_optimizer:
        z["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if d.offload_params:
        z["offload_param"] = {"device": "cpu", "pin_memory": True}
    cfg = {
        "bf16": {"enabled": "auto"},
        "zero_optimization": z,
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "steps_per_print": 1_000_000_000,
        "wall_clock_breakdown": False,
    }
    if d.offload_optimizer:
        # ZeRO-Offload wants DeepSpeed's CPU Adam, not a torch optimizer.
        cfg["optimizer"] = {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}}
    return cfg


def resolve_deepspeed(spec: Spec, cli_config: str | None) -> tuple[DeepSpeedPlan | None, int, list]:
    """The DeepSpeed config to hand to TrainingArguments, the gradient
    accumulation steps, and warnings.  A config that contradicts the spec is
    refused (exit 2): the job must run what it asked for."""
    warnings: list[str] = []
    d = spec.distributed
    path = spec.deepspeed_config
    if cli_config:
        cli_config = os.path.abspath(cli_config)
        if not os.path.isfile(cli_config):
            raise invalid(f"--deepspeed config not found: {cli_config}")
        if d.type != "deepspeed":
            raise invalid("the launcher passed --deepspeed but the spec's distributed.type is not \"deepspeed\"")
        if path and os.path.realpath(path) != os.path.realpath(cli_config):
            raise invalid(f"--deepspeed {cli_config} and the spec's deepspeed_config {path} differ: which one to use is ambiguous")
        path = cli_config
    ga = spec.gradient_accumulation_steps
    if d.type != "deepspeed":
        return None, ga or 1, warnings

    adjustments: list[str] = []
    if path is None:
        cfg = generated_deepspeed_config(d)
        source = None
    else:
        try:
            with open(path, "r", encoding="utf-8") as f:
                cfg = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise invalid(f"deepspeed_config {path} is not valid JSON: {e}")
        if not isinstance(cfg, dict):
            raise invalid(f"deepspeed_config {path} is not a JSON object")
        source = path
    z = cfg.get("zero_optimization")
    if not isinstance(z, dict):
        raise invalid(f"deepspeed_config {path} has no zero_optimization section")
    stage = z.get("stage")
    if stage != d.zero_stage:
        raise invalid(f"deepspeed_config zero_optimization.stage is {stage!r} but distributed.zero_stage is {d.zero_stage}")
    if _ds_offloaded(z, "offload_optimizer") != d.offload_optimizer:
        raise invalid(
            f"deepspeed_config offload_optimizer ({'on' if _ds_offloaded(z, 'offload_optimizer') else 'off'}) "
            f"contradicts distributed.offload_optimizer={str(d.offload_optimizer).lower()}"
        )
    if _ds_offloaded(z, "offload_param") != d.offload_params:
        raise invalid(
            f"deepspeed_config offload_param ({'on' if _ds_offloaded(z, 'offload_param') else 'off'}) "
            f"contradicts distributed.offload_params={str(d.offload_params).lower()}"
        )
    fp16 = cfg.get("fp16")
    if isinstance(fp16, dict) and fp16.get("enabled") is True:
        raise invalid("deepspeed_config enables fp16: this recipe trains in bf16 (or fp32); set fp16.enabled to false or \"auto\"")
    bf16 = cfg.get("bf16")
    if isinstance(bf16, dict) and isinstance(bf16.get("enabled"), bool) and bf16["enabled"] != spec.bf16:
        raise invalid(f"deepspeed_config bf16.enabled={str(bf16['enabled']).lower()} contradicts the spec's bf16={str(spec.bf16).lower()} (use \"auto\")")

    micro = cfg.get("train_micro_batch_size_per_gpu", "auto")
    if micro != "auto" and micro != spec.batch_size:
        raise invalid(f"deepspeed_config train_micro_batch_size_per_gpu={micro!r} contradicts hyperparameters.batch_size={spec.batch_size}")
    ds_ga = cfg.get("gradient_accumulation_steps", "auto")
    if ds_ga != "auto":
        if not _is_int(ds_ga) or ds_ga < 1:
            raise invalid(f"deepspeed_config gradient_accumulation_steps must be a positive integer or \"auto\" (got {ds_ga!r})")
        if ga is not None and ga != ds_ga:
            raise invalid(f"deepspeed_config gradient_accumulation_steps={ds_ga} contradicts hyperparameters.gradient_accumulation_steps={ga}")
        ga = ds_ga
    ga = ga or 1
    total = cfg.get("train_batch_size", "auto")
    effective = spec.batch_size * ga * spec.world_size
    if total != "auto" and total != effective:
        raise invalid(
            f"deepspeed_config train_batch_size={total!r} is not batch_size x gradient_accumulation_steps x world size "
            f"= {spec.batch_size} x {ga} x {spec.world_size} = {effective}"
        )
    if "scheduler" in cfg:
        warnings.append("deepspeed_config has a scheduler section: it overrides hyperparameters.lr_scheduler/warmup_ratio")

    if d.zero_stage == 3 and z.get("stage3_gather_16bit_weights_on_model_save") is not True:
        z["stage3_gather_16bit_weights_on_model_save"] = True
        adjustments.append("set zero_optimization.stage3_gather_16bit_weights_on_model_save=true (needed to save safetensors weights)")
    if d.offload_optimizer and "optimizer" not in cfg and cfg.get("zero_force_ds_cpu_optimizer") is not False:
        cfg["optimizer"] = {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}}
        adjustments.append("added an AdamW optimizer section (ZeRO-Offload needs DeepSpeed's CPU Adam)")
    for a in adjustments:
        warnings.append(f"deepspeed_config adjusted: {a}")
    return DeepSpeedPlan(d.zero_stage, d.offload_optimizer, d.offload_params, source, cfg, adjustments), ga, warnings


# ====================================================================== plan (dry run)


def memory_estimate_gib(spec: Spec, ds: DeepSpeedPlan | None, params: int, trainable: int) -> dict:
    """Per-GPU model-state memory (weights, gradients, AdamW states), the ZeRO
    paper's arithmetic.  Activations, buffers and fragmentation come on top."""
    W = spec.world_size
    gib = float(1 << 30)
    if spec.method.type == "lora":
        w_bytes = (2 if spec.bf16 else 4) * params
        if ds and ds.stage == 3:
            w_bytes = 0 if ds.offload_params else w_bytes / W
        states = 16 * trainable  # fp32 adapter weights + grads + Adam moments
        if ds and ds.offload_optimizer:
            states = 8 * trainable
        weights, grads, optim = w_bytes, 0, states
    elif ds is None:
        # fp32 master weights on the GPU, bf16 autocast: 4 + 4 grads + 8 Adam.
        weights, grads, optim = 4 * params, 4 * trainable, 8 * trainable
    else:
        weights, grads, optim = 2 * params, 2 * trainable, 12 * trainable
        optim = 0 if ds.offload_optimizer else optim / W
        if ds.stage >= 2:
            grads /= W
        if ds.stage == 3:
            weights = 0 if ds.offload_params else weights / W
    total = weights + grads + optim
    return {
        "model_states_per_gpu": round(total / gib, 2),
        "weights": round(weights / gib, 2),
        "gradients": round(grads / gib, 2),
        "optimizer": round(optim / gib, 2),
        "note": "excludes activations (gradient checkpointing on), CUDA context and fragmentation",
    }


def build_plan(spec: Spec, cli_deepspeed: str | None) -> dict:
    ds, ga, ds_warnings = resolve_deepspeed(spec, cli_deepspeed)
    warnings = list(spec.warnings) + ds_warnings
    base = inspect_base_model(spec.base_model)
    try:
        train = load_chats(spec.training_file, "training")
        valid = load_chats(spec.validation_file, "validation") if spec.validation_file else None
    except DataError as e:
        raise invalid(str(e))
    if valid is None:
        warnings.append("no validation_file: no valid_loss will be reported")

    W = spec.world_size
    if spec.method.type == "full" and spec.method.trainable_blocks and base.layers and spec.method.trainable_blocks >= base.layers:
        warnings.append(f"trainable_blocks {spec.method.trainable_blocks} >= the model's {base.layers} blocks: every parameter is trained")
    if spec.method.type == "full" and spec.method.trainable_blocks and not base.layers:
        warnings.append("config.json does not say how many blocks the model has; trainable_blocks is resolved when the model loads")
    if not base.generation_tags:
        warnings.append("the chat template has no {% generation %} tags: the assistant-token mask is computed by rendering chat prefixes")
    if spec.nodes > 1:
        warnings.append("several nodes: checkpoint_dir and output_dir must be on storage every node sees at the same path (DeepSpeed writes per-rank shards)")
    if ds is None and W > 1:
        warnings.append(f"distributed \"none\" on {W} GPUs: plain DDP, every GPU holds the whole model")
    if spec.resume_from and ds is not None:
        warnings.append("resuming a DeepSpeed checkpoint needs the same world size as the run that wrote it")

    effective = spec.batch_size * ga * W
    batches = math.ceil(len(train.chats) / (spec.batch_size * W))
    steps_per_epoch = max(1, math.ceil(batches / ga))
    trainable = estimate_trainable(base, spec.method)
    merged = spec.method.type == "full" or spec.merge_adapter
    if W == 1:
        launch = {"launcher": "python", "command": f"python train.py --spec {spec.path}"}
    else:
        launch = {
            "launcher": "torchrun",
            "processes_per_node": spec.gpus_per_node,
            "command": (
                f"torchrun --nnodes {spec.nodes} --nproc-per-node {spec.gpus_per_node} --node-rank <R> "
                f"--rdzv-backend c10d --rdzv-endpoint <HOST:PORT> train.py --spec {spec.path}"
            ),
        }
    method = spec.method.describe()
    if spec.method.type == "lora":
        method["merge_adapter"] = spec.merge_adapter
    return {
        "type": "plan",
        "recipe": RECIPE,
        "job_id": spec.job_id,
        "attempt": spec.attempt,
        "method": method,
        "distributed": "deepspeed" if ds else ("ddp" if W > 1 else "none"),
        "world_size": W,
        "nodes": spec.nodes,
        "gpus_per_node": spec.gpus_per_node,
        "gpu_type": spec.gpu_type,
        "deepspeed_stage": ds.stage if ds else None,
        "deepspeed": None if ds is None else {
            "zero_stage": ds.stage,
            "offload_optimizer": ds.offload_optimizer,
            "offload_params": ds.offload_params,
            "config": ds.source or "generated",
            "adjustments": ds.adjustments,
        },
        "batch_size": spec.batch_size,
        "gradient_accumulation_steps": ga,
        "effective_batch_size": effective,
        "n_epochs": spec.n_epochs,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": steps_per_epoch * spec.n_epochs,
        "learning_rate": spec.learning_rate,
        "lr_scheduler": spec.lr_scheduler,
        "warmup_ratio": spec.warmup_ratio,
        "max_seq_len": spec.max_seq_len,
        "bf16": spec.bf16,
        "seed": spec.seed,
        "base_model": {
            "path": base.path,
            "model_type": base.model_type,
            "architectures": base.architectures,
            "layers": base.layers,
            "parameters": base.parameters,
            "assistant_mask": "generation_tags" if base.generation_tags else "prefix_render",
        },
        "trainable_parameters_estimate": trainable,
        "memory_estimate_gib": memory_estimate_gib(spec, ds, base.parameters, trainable),
        "training_file": {"path": train.path, "chats": len(train.chats), "assistant_turns": train.assistant_turns},
        "validation_file": None if valid is None else {
            "path": valid.path, "chats": len(valid.chats), "assistant_turns": valid.assistant_turns,
        },
        "checkpoint_dir": spec.checkpoint_dir,
        "resume_from": spec.resume_from,
        "output": {
            "format": "safetensors",
            "layout": "merged" if merged else "adapter",
            "artifact": os.path.join(spec.output_dir, "model.tar"),
        },
        "launch": launch,
        "warnings": warnings,
    }


# ====================================================================== artifacts


def deterministic_tar(src_dir: str, dest: str) -> None:
    """Uncompressed tar of src_dir's contents: sorted paths, mtime 0, owner
    0:0, fixed modes; symlinks are stored as the files they point to."""
    entries: list[tuple[str, str]] = []
    for root, dirs, files in os.walk(src_dir, followlinks=False):
        for d in dirs:
            full = os.path.join(root, d)
            entries.append((os.path.relpath(full, src_dir).replace(os.sep, "/"), full))
        for n in files:
            full = os.path.join(root, n)
            entries.append((os.path.relpath(full, src_dir).replace(os.sep, "/"), full))
    entries.sort()
    tmp = f"{dest}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for rel, full in entries:
                info = tarfile.TarInfo(rel)
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if os.path.isdir(full):
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
                elif os.path.isfile(full):
                    info.size = os.path.getsize(full)
                    info.mode = 0o644
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(8 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_DTYPE_NAMES = {"BF16": "bf16", "F16": "f16", "F32": "f32", "F64": "f64", "F8_E4M3": "fp8_e4m3", "F8_E5M2": "fp8_e5m2"}


def dominant_dtype(dir_: str) -> str:
    """The dtype holding most bytes among the safetensors files of dir_."""
    by: dict[str, int] = {}
    for n in sorted(os.listdir(dir_)):
        if n.endswith(".safetensors"):
            for t in read_safetensors_header(os.path.join(dir_, n)).values():
                off = t.get("data_offsets") or [0, 0]
                by[t.get("dtype", "?")] = by.get(t.get("dtype", "?"), 0) + int(off[1]) - int(off[0])
    if not by:
        raise JobError(EXIT_FAILED, f"no safetensors weights were written to {dir_}")
    top = max(by.items(), key=lambda kv: kv[1])[0]
    return _DTYPE_NAMES.get(top, str(top).lower())


def _find_checkpoint_dir(path: str) -> str | None:
    """A Trainer checkpoint directory (holding trainer_state.json): path itself
    or its newest checkpoint-N child (one or two levels down)."""
    if os.path.isfile(os.path.join(path, "trainer_state.json")):
        return path
    found = []
    for root, dirs, files in os.walk(path):
        if "trainer_state.json" in files:
            m = re.search(r"checkpoint-(\d+)$", root)
            found.append((int(m.group(1)) if m else -1, root))
        if root.count(os.sep) - path.count(os.sep) >= 2:
            dirs[:] = []
    return max(found)[1] if found else None


def _safe_extract(tar_path: str, dest: str) -> None:
    with tarfile.open(tar_path, "r:*") as tar:
        try:
            tar.extractall(dest, filter="data")
        except TypeError:  # Python without extraction filters
            base = os.path.realpath(dest)
            for m in tar.getmembers():
                target = os.path.realpath(os.path.join(dest, m.name))
                if not (target == base or target.startswith(base + os.sep)) or m.issym() or m.islnk() or m.isdev():
                    raise invalid(f"resume_from.path {tar_path}: unsafe member {m.name!r}")
            tar.extractall(dest)


def prepare_resume(spec: Spec, env: DistEnv, stop: StopFlag) -> str | None:
    """The checkpoint directory to resume from: resume_from.path itself, or
    the tar it names extracted under checkpoint_dir (by local rank 0 of each
    node, into a folder of its own in case checkpoint_dir is shared; the
    other local ranks wait for it)."""
    if not spec.resume_from:
        return None
    src = spec.resume_from["path"]
    if os.path.isdir(src):
        found = _find_checkpoint_dir(src)
        if not found:
            raise invalid(f"resume_from.path {src} holds no Trainer checkpoint (no trainer_state.json)")
        return found
    node = env.rank // max(env.local_world_size, 1)
    dest = os.path.join(spec.checkpoint_dir, f"resume-step-{spec.resume_from['step']}-node{node}")
    done = dest + ".extracted"
    if env.local_rank == 0:
        if not os.path.exists(done):
            os.makedirs(dest, exist_ok=True)
            _safe_extract(src, dest)
            with open(done, "w") as f:
                f.write(src + "\n")
    else:
        deadline = time.monotonic() + 3600
        while not os.path.exists(done):
            stop.check()
            if time.monotonic() > deadline:
                raise RetryableError(f"timed out waiting for local rank 0 to extract {src}")
            time.sleep(1.0)
    found = _find_checkpoint_dir(dest)
    if not found:
        raise invalid(f"resume_from.path {src} holds no Trainer checkpoint (no trainer_state.json)")
    return found


# ====================================================================== tokenization (needs a tokenizer, not torch)


class ChatEncoder:
    """Chat -> (input_ids, labels): the whole chat rendered with the base
    model's chat template; loss only on the assistant turns being trained
    (labels -100 elsewhere).

    The mask comes from the template's {% generation %} tags
    (return_assistant_tokens_mask) when it has them and every assistant turn
    is trained; otherwise from rendering prefixes: the span of assistant
    message i is what messages[:i+1] adds to messages[:i] + the generation
    prompt, i.e. exactly what the model generates at serving time, end-of-turn
    token included."""

    def __init__(self, tokenizer, template: str | None, max_seq_len: int):
        self.tok = tokenizer
        tpl = tokenizer.chat_template
        if isinstance(tpl, dict):
            tpl = tpl.get("default")
        if not tpl:
            tpl = template
            tokenizer.chat_template = template
        if not tpl:
            raise invalid("the base model's tokenizer has no chat template")
        self.generation_tags = bool(GENERATION_TAG_RE.search(tpl))
        self.fast = bool(getattr(tokenizer, "is_fast", False))
        self.max_seq_len = max_seq_len
        specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
        self.specials = sorted((s for s in specials if s), key=len, reverse=True)
        self.stats = {"generation_tags": 0, "prefix_render": 0, "content_search": 0, "truncated": 0, "dropped": 0}

    def _render(self, messages: list, generation_prompt: bool, where: str) -> str:
        try:
            out = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        except Exception as e:  # jinja2 TemplateError, raise_exception() in templates
            raise DataError(f"{where}: the chat template refused the chat: {type(e).__name__}: {e}") from e
        if not isinstance(out, str):
            raise DataError(f"{where}: the chat template did not render to text")
        return out

    def _by_generation_tags(self, chat: Chat, where: str):
        try:
            out = self.tok.apply_chat_template(
                chat.messages, tokenize=True, return_dict=True,
                return_assistant_tokens_mask=True, add_generation_prompt=False,
            )
        except Exception as e:
            raise DataError(f"{where}: the chat template refused the chat: {type(e).__name__}: {e}") from e
        ids = list(out["input_ids"])
        mask = [int(bool(x)) for x in out.get("assistant_masks", [])]
        if len(mask) != len(ids) or not any(mask):
            return None
        return ids, mask

    def _spans(self, chat: Chat, full: str, where: str) -> list:
        spans = []
        cursor = 0
        msgs = chat.messages
        for i, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            span = None
            if i > 0:
                try:
                    before = self._render(msgs[:i], True, where)
                    upto = self._render(msgs[: i + 1], False, where)
                except DataError:
                    before = upto = None
                if (
                    before is not None and upto is not None
                    and full.startswith(upto) and upto.startswith(before)
                    and len(upto) > len(before) and len(before) >= cursor
                ):
                    span = (len(before), len(upto))
                    self.stats["prefix_render"] += 1
            if span is None:
                # The template renders history differently from the last turn
                # (e.g. drops reasoning): find the content itself, plus the
                # special token (end of turn) right after it.
                content = m["content"]
                pos = full.find(content, cursor) if content else -1
                if pos < 0:
                    raise DataError(f"{where}: assistant message {i} cannot be located in the rendered chat")
                end = pos + len(content)
                for s in self.specials:
                    if full.startswith(s, end):
                        end += len(s)
                        break
                span = (pos, end)
                self.stats["content_search"] += 1
            cursor = span[1]
            if chat.weights[i]:
                spans.append(span)
        return spans

    def _tokenize(self, full: str, spans: list):
        if self.fast:
            enc = self.tok(full, add_special_tokens=False, return_offsets_mapping=True)
            ids = list(enc["input_ids"])
            mask = []
            for start, _end in enc["offset_mapping"]:
                mask.append(int(any(a <= start < b for a, b in spans)))
            return ids, mask
        # Slow tokenizer (no offsets): tokenize the pieces between span edges.
        ids, mask, at = [], [], 0
        for a, b in sorted(spans) + [(len(full), len(full))]:
            for piece, trained in ((full[at:a], 0), (full[a:b], 1)):
                if piece:
                    p = self.tok(piece, add_special_tokens=False)["input_ids"]
                    ids.extend(p)
                    mask.extend([trained] * len(p))
            at = b
        return ids, mask

    def encode(self, chat: Chat, where: str) -> dict | None:
        res = None
        if self.generation_tags and all(w for m, w in zip(chat.messages, chat.weights) if m["role"] == "assistant"):
            res = self._by_generation_tags(chat, where)
            if res is not None:
                self.stats["generation_tags"] += 1
        if res is None:
            full = self._render(chat.messages, False, where)
            res = self._tokenize(full, self._spans(chat, full, where))
        ids, mask = res
        if len(ids) > self.max_seq_len:
            self.stats["truncated"] += 1
            ids, mask = ids[: self.max_seq_len], mask[: self.max_seq_len]
        if not any(mask):
            self.stats["dropped"] += 1
            return None
        return {"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, mask)]}

    def encode_file(self, cf: ChatFile, label: str) -> list:
        out = []
        for chat in cf.chats:
            ex = self.encode(chat, f"{label} file {cf.path} line {chat.line}")
            if ex is not None:
                out.append(ex)
        return out


class PadCollator:
    """Right-pads a batch to its longest example (rounded up to a multiple of 8)."""

    def __init__(self, pad_id: int, multiple_of: int = 8):
        self.pad_id = pad_id
        self.multiple_of = multiple_of

    def __call__(self, features: list) -> dict:
        import torch

        n = max(len(f["input_ids"]) for f in features)
        if self.multiple_of:
            n = -(-n // self.multiple_of) * self.multiple_of
        ids = torch.full((len(features), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), n), -100, dtype=torch.long)
        attn = torch.zeros((len(features), n), dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            ids[i, :k] = torch.tensor(f["input_ids"], dtype=torch.long)
            labels[i, :k] = torch.tensor(f["labels"], dtype=torch.long)
            attn[i, :k] = 1
        return {"input_ids": ids, "attention_mask": attn, "labels": labels}


# ====================================================================== training (torch)


def _import_stack():
    try:
        import torch
        import transformers
        import peft
    except ImportError as e:
        raise JobError(
            EXIT_FAILED,
            f"the recipe's Python lacks {e.name or e}: install infra/recipes/{RECIPE}/requirements.txt "
            "(with a CUDA build of torch) into the worker's training_python",
        )
    return torch, transformers, peft


def _is_oom(e: BaseException) -> bool:
    name = type(e).__name__
    return name == "OutOfMemoryError" or "out of memory" in str(e).lower() or "CUDA_ERROR_OUT_OF_MEMORY" in str(e)


def _is_distributed_failure(e: BaseException) -> bool:
    name = type(e).__name__
    text = str(e)
    return (
        name in ("DistError", "DistBackendError", "DistNetworkError", "DistStoreError")
        or "NCCL" in text
        or "Watchdog caught collective operation timeout" in text
        or ("timed out" in text.lower() and "collective" in text.lower())
    )


def _decoder_layers(torch, model):
    """The ModuleList of decoder blocks: the list whose length is the config's
    layer count, preferring the usual names."""
    n = _num_layers(model.config.to_dict()) if hasattr(model, "config") else None
    cands = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) > 0 and (n is None or len(mod) == n):
            last = name.rsplit(".", 1)[-1]
            cands.append((0 if last in ("layers", "h", "blocks", "layer") else 1, name.count("."), name, mod))
    if not cands:
        return None, None
    _, _, name, mod = min(cands, key=lambda c: (c[0], c[1]))
    return name, mod


def _final_norm(model, layers_name: str):
    for name, mod in model.named_modules():
        if name.startswith(layers_name + ".") or name == layers_name:
            continue
        if name.rsplit(".", 1)[-1] in FINAL_NORM_NAMES and any(True for _ in mod.parameters(recurse=False)):
            return name, mod
    return None, None


def _numel(p) -> int:
    return int(getattr(p, "ds_numel", 0) or p.numel())


def _training_arguments(transformers, ev: Events, **kw):
    """TrainingArguments from the keywords this transformers version knows;
    the others are reported and left out."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    dropped = sorted(k for k in kw if k not in known)
    if dropped:
        ev.message("warn", f"this transformers {transformers.__version__} has no TrainingArguments {', '.join(dropped)}; left out")
    return transformers.TrainingArguments(**{k: v for k, v in kw.items() if k in known}), set(dropped)


def _make_callback(transformers, torch, ev: Events, stop: StopFlag):
    class ProtocolCallback(transformers.TrainerCallback):
        """Speaks the protocol from the Trainer's events: a metrics line per
        optimizer step and per evaluation, a checkpoint line per save; and
        turns a stop request into a save + stop at the step boundary."""

        def __init__(self):
            self.stopping = False
            self.epoch_losses: list = []
            self.last_train_loss = None
            self.last_valid = None
            self.valid_before = None
            self.step_seconds: list = []
            self.t_mark = None
            self.t_begin = None
            self.tokens_begin = 0
            self.step_begin = 0
            self.last_checkpoint = None
            self.last_epoch_train_loss = None

        def _mark(self):
            self.t_mark = time.monotonic()

        def on_train_begin(self, args, state, control, **kw):
            self.t_begin = time.monotonic()
            self.tokens_begin = int(state.num_input_tokens_seen or 0)
            self.step_begin = int(state.global_step)
            self._mark()

        def on_step_end(self, args, state, control, **kw):
            now = time.monotonic()
            if self.t_mark is not None:
                self.step_seconds.append(now - self.t_mark)
            self.t_mark = now
            if stop.agreed(torch, args.device):
                self.stopping = True
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_epoch_end(self, args, state, control, **kw):
            if self.stopping:  # the step-boundary save already happened
                control.should_save = False
                control.should_evaluate = False
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            if not logs or "loss" not in logs:
                return
            loss = _round(logs.get("loss"))
            self.epoch_losses.append(loss)
            self.last_train_loss = loss
            data = {
                "train_loss": loss,
                "learning_rate": _round(logs.get("learning_rate"), 10),
                "tokens": int(state.num_input_tokens_seen or 0),
            }
            if logs.get("grad_norm") is not None:
                data["grad_norm"] = _round(logs.get("grad_norm"))
            if self.step_seconds:
                data["step_seconds"] = round(self.step_seconds[-1], 4)
            if torch.cuda.is_available():
                data["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            ev.emit({"type": "metrics", "step": int(state.global_step), "epoch": _round(state.epoch or 0, 4), "data": data})

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            loss = _round((metrics or {}).get("eval_loss"))
            if loss is None:
                return
            self.last_valid = loss
            if state.global_step == self.step_begin and self.valid_before is None:
                self.valid_before = loss
            ev.emit({
                "type": "metrics", "step": int(state.global_step), "epoch": _round(state.epoch or 0, 4),
                "data": {"valid_loss": loss, "valid_perplexity": _perplexity(loss)},
            })
            self._mark()

        def on_save(self, args, state, control, **kw):
            path = os.path.abspath(os.path.join(args.output_dir, f"checkpoint-{state.global_step}"))
            losses = [x for x in self.epoch_losses if x is not None]
            train_loss = _round(sum(losses) / len(losses)) if losses else self.last_train_loss
            self.epoch_losses = []
            self.last_epoch_train_loss = train_loss
            self.last_checkpoint = path
            metrics = {"train_loss": train_loss, "epoch": _round(state.epoch or 0, 4)}
            if self.last_valid is not None:
                metrics["valid_loss"] = self.last_valid
            ev.emit({"type": "checkpoint", "step": int(state.global_step), "epoch": _round(state.epoch or 0, 4),
                     "path": path, "metrics": metrics})
            ev.message("info", f"checkpoint {path} written" + (" (stop requested)" if self.stopping else ""))
            self._mark()

    return ProtocolCallback()


def run_training(ev: Events, stop: StopFlag, env: DistEnv, args, t_start: float) -> int:
    spec = parse_spec(args.spec)
    ds, ga, ds_warnings = resolve_deepspeed(spec, args.deepspeed)
    for w in spec.warnings + ds_warnings:
        ev.message("warn", w)
    if env.world_size != spec.world_size:
        raise invalid(
            f"the spec asks for {spec.world_size} processes ({spec.nodes} node(s) x {spec.gpus_per_node} GPU(s)) but this "
            f"process was launched in a world of {env.world_size}: launch it with torchrun/deepspeed as README.md shows"
        )
    if env.local_world_size != spec.gpus_per_node:
        ev.message("warn", f"{env.local_world_size} processes on this node, the spec says gpus_per_node={spec.gpus_per_node}")
    base_info = inspect_base_model(spec.base_model)
    try:
        train_file = load_chats(spec.training_file, "training")
        valid_file = load_chats(spec.validation_file, "validation") if spec.validation_file else None
    except DataError as e:
        raise invalid(str(e))
    stop.check()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch, transformers, peft = _import_stack()
    transformers.logging.set_verbosity_warning()

    on_gpu = torch.cuda.is_available()
    if not on_gpu and not args.allow_cpu:
        raise RetryableError("no CUDA device is visible to this process: the torch-peft recipe needs a GPU")
    if not on_gpu and ds is not None:
        raise invalid("DeepSpeed needs GPUs (--allow-cpu runs without DeepSpeed only)")
    use_bf16 = spec.bf16 and on_gpu and torch.cuda.is_bf16_supported()
    if spec.bf16 and not use_bf16:
        ev.message("warn", "bf16 was asked for but this device does not support it: training in fp32")
    if ds is not None and isinstance(ds.config.get("bf16"), dict) and ds.config["bf16"].get("enabled") is True and not use_bf16:
        raise invalid("deepspeed_config enables bf16 but this GPU does not support it")

    for d in (spec.output_dir, spec.checkpoint_dir):
        os.makedirs(d, exist_ok=True)
    resume_dir = prepare_resume(spec, env, stop)

    ev.message(
        "info",
        f"{RECIPE}: {spec.method.type} on {os.path.basename(spec.base_model)} ({base_info.model_type}, "
        f"{base_info.parameters / 1e9:.2f}B parameters), world {spec.world_size} ({spec.nodes} node(s) x {spec.gpus_per_node}), "
        + (f"DeepSpeed ZeRO-{ds.stage}" + (" offload optimizer" if ds.offload_optimizer else "") + (" offload params" if ds.offload_params else "")
           if ds else ("DDP" if spec.world_size > 1 else "single process"))
        + f", effective batch {spec.batch_size * ga * spec.world_size} ({spec.batch_size} x {ga} x {spec.world_size}), "
        f"bf16 {'on' if use_bf16 else 'off'}; torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
    )

    # ---- tokenizer and data
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(spec.base_model)
    except (ValueError, KeyError) as e:
        raise invalid(f"base_model tokenizer cannot be loaded: {e}")
    encoder = ChatEncoder(tokenizer, base_info.chat_template, spec.max_seq_len)
    try:
        train_ds = encoder.encode_file(train_file, "training")
        valid_ds = encoder.encode_file(valid_file, "validation") if valid_file else None
    except DataError as e:
        raise invalid(str(e))
    if not train_ds:
        raise invalid(f"no training chat keeps an assistant token within max_seq_len {spec.max_seq_len}")
    if valid_file is not None and not valid_ds:
        raise invalid(f"no validation chat keeps an assistant token within max_seq_len {spec.max_seq_len}")
    trained_tokens = sum(sum(1 for t in ex["labels"] if t != -100) for ex in train_ds)
    input_tokens = sum(len(ex["input_ids"]) for ex in train_ds)
    st = encoder.stats
    ev.message(
        "info",
        f"{len(train_ds)} training examples ({input_tokens} tokens, {trained_tokens} trained assistant tokens)"
        + (f", {len(valid_ds)} validation examples" if valid_ds else "")
        + f"; assistant mask: {st['generation_tags']} by generation tags, {st['prefix_render']} turns by prefix rendering, "
        f"{st['content_search']} by content search; {st['truncated']} truncated to {spec.max_seq_len}, {st['dropped']} dropped",
    )
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    stop.check()

    # ---- TrainingArguments first: with ZeRO-3 they must exist before the
    # model is loaded so that from_pretrained partitions it (zero.Init).
    per_epoch = max(1, math.ceil(math.ceil(len(train_ds) / (spec.batch_size * spec.world_size)) / ga))
    warmup_steps = int(round(spec.warmup_ratio * per_epoch * spec.n_epochs))
    targs, dropped = _training_arguments(
        transformers, ev,
        output_dir=spec.checkpoint_dir,
        per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.batch_size,
        gradient_accumulation_steps=ga,
        num_train_epochs=spec.n_epochs,
        learning_rate=spec.learning_rate,
        lr_scheduler_type=spec.lr_scheduler,
        warmup_steps=warmup_steps,
        weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm,
        logging_strategy="steps",
        logging_steps=1,
        eval_strategy="epoch" if valid_ds else "no",
        eval_on_start=bool(valid_ds) and resume_dir is None,
        prediction_loss_only=True,
        save_strategy="epoch",
        save_total_limit=2,
        save_only_model=False,
        bf16=use_bf16,
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        deepspeed=ds.config if ds else None,
        seed=spec.seed,
        data_seed=spec.seed,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        ddp_find_unused_parameters=False,
        use_cpu=not on_gpu,
    )
    transformers.set_seed(spec.seed)
    if ds is not None and env.rank == 0:
        with open(os.path.join(spec.checkpoint_dir, "ds_config.resolved.json"), "w") as f:
            json.dump(ds.config, f, indent=2)

    # ---- model and method
    if spec.method.type == "full" and ds is None:
        dtype = torch.float32  # fp32 master weights, bf16 autocast
    else:
        dtype = torch.bfloat16 if use_bf16 else torch.float32
    t0 = time.monotonic()
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(spec.base_model, dtype=dtype)
    except (ValueError, KeyError) as e:
        raise invalid(f"base_model cannot be loaded as a causal LM by transformers {transformers.__version__}: {e}")
    model.config.use_cache = False
    method_info = spec.method.describe()
    if spec.method.type == "lora":
        lcfg = peft.LoraConfig(
            r=spec.method.r,
            lora_alpha=int(spec.method.alpha) if float(spec.method.alpha).is_integer() else spec.method.alpha,
            lora_dropout=spec.method.dropout,
            target_modules=list(spec.method.target_modules) or "all-linear",
            bias="none",
            task_type="CAUSAL_LM",
        )
        try:
            model = peft.get_peft_model(model, lcfg)
        except ValueError as e:
            raise invalid(f"LoRA target_modules {spec.method.target_modules or 'all-linear'}: {e}")
        resolved = model.peft_config["default"].target_modules
        method_info["target_modules"] = sorted(resolved) if isinstance(resolved, (set, list, tuple)) else resolved
        method_info["merged"] = spec.merge_adapter
    else:
        tb = spec.method.trainable_blocks
        layers_name, layers = _decoder_layers(torch, model)
        if tb and layers is None:
            raise invalid("the decoder blocks of this architecture cannot be found: use trainable_blocks 0 (all parameters)")
        if tb and tb >= len(layers):
            ev.message("warn", f"trainable_blocks {tb} >= {len(layers)} blocks: training every parameter")
            tb = 0
        if tb:
            for p in model.parameters():
                p.requires_grad_(False)
            for block in list(layers)[len(layers) - tb:]:
                for p in block.parameters():
                    p.requires_grad_(True)
            norm_name, norm = _final_norm(model, layers_name)
            if norm is not None:
                for p in norm.parameters():
                    p.requires_grad_(True)
            if hasattr(model, "enable_input_require_grads"):
                model.enable_input_require_grads()
            ev.message("info", f"training the top {tb} of {len(layers)} blocks of {layers_name}" + (f" and {norm_name}" if norm is not None else ""))
        method_info["trainable_blocks"] = tb
    trainable = sum(_numel(p) for p in model.parameters() if p.requires_grad)
    total = sum(_numel(p) for p in model.parameters())
    ev.message("info", f"model loaded in {time.monotonic() - t0:.1f} s: {trainable:,} of {total:,} parameters trainable ({100.0 * trainable / max(total, 1):.3f}%)")
    stop.check()

    # ---- train
    callback = _make_callback(transformers, torch, ev, stop)
    trainer = transformers.Trainer(
        model=model,
        args=targs,
        train_dataset=train_ds,
        eval_dataset=valid_ds,
        data_collator=PadCollator(pad_id),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    if valid_ds and resume_dir is None and "eval_on_start" in dropped:
        trainer.evaluate()
    if resume_dir:
        ev.message("info", f"resuming from {resume_dir} (step {spec.resume_from['step']})")
    t_train = time.monotonic()
    trainer.train(resume_from_checkpoint=resume_dir)
    train_seconds = time.monotonic() - t_train
    if stop.agreed(torch, targs.device):  # collective: every rank stops, or none
        raise Terminated(stop.signum or signal.SIGTERM)

    # ---- export: every rank takes part in save_model (ZeRO-3 gathers)
    state = trainer.state
    artifact_dir = os.path.join(spec.output_dir, "adapter" if spec.method.type == "lora" and not spec.merge_adapter else "model")
    if env.rank == 0:
        for stale in (os.path.join(spec.output_dir, "adapter"), os.path.join(spec.output_dir, "model")):
            if os.path.isdir(stale):
                shutil.rmtree(stale)
    _barrier(torch)
    t_export = time.monotonic()
    if spec.method.type == "lora":
        adapter_dir = os.path.join(spec.output_dir, "adapter")
        trainer.save_model(adapter_dir)
    elif ds is not None:
        trainer.save_model(artifact_dir)
    else:
        if env.rank == 0:
            unwrapped = trainer.accelerator.unwrap_model(trainer.model)
            if use_bf16:
                unwrapped = unwrapped.to(torch.bfloat16)
            unwrapped.save_pretrained(artifact_dir)
            tokenizer.save_pretrained(artifact_dir)
    _barrier(torch)
    peak_gib = round(torch.cuda.max_memory_allocated() / 2**30, 3) if on_gpu else None
    _shutdown_dist(torch)  # no collective after this: rank 0 finishes alone
    if env.rank != 0:
        return EXIT_OK

    if spec.method.type == "lora" and spec.merge_adapter:
        del trainer, model
        import gc

        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()
        try:
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()  # no zero.Init for the merge load
        except ImportError:
            pass
        ev.message("info", "merging the adapter into the base weights (on CPU)")
        base_model = transformers.AutoModelForCausalLM.from_pretrained(
            spec.base_model, dtype=torch.bfloat16 if use_bf16 else torch.float32
        )
        merged = peft.PeftModel.from_pretrained(base_model, os.path.join(spec.output_dir, "adapter")).merge_and_unload()
        merged.save_pretrained(artifact_dir)
        tokenizer.save_pretrained(artifact_dir)
    stop.check()

    tar_path = os.path.join(spec.output_dir, "model.tar")
    deterministic_tar(artifact_dir, tar_path)
    sha = file_sha256(tar_path)
    quant = dominant_dtype(artifact_dir)
    ev.message("info", f"wrote {artifact_dir} ({quant}) and {tar_path} ({os.path.getsize(tar_path) / 1e6:.0f} MB) in {time.monotonic() - t_export:.1f} s")
    stop.check()  # a stop request during export wins over reporting success

    tokens = int(state.num_input_tokens_seen or 0)
    steps_run = int(state.global_step) - callback.step_begin
    step_times = callback.step_seconds
    metrics = {
        "train_loss": callback.last_epoch_train_loss,
        "valid_loss": callback.last_valid,
        "steps": int(state.global_step),
        "tokens": tokens,
        "seconds": round(time.monotonic() - t_start, 1),
        "valid_loss_before": callback.valid_before,
        "steps_this_attempt": steps_run,
        "train_seconds": round(train_seconds, 1),
        "tokens_per_second": round((tokens - callback.tokens_begin) / train_seconds, 1) if train_seconds > 0 else None,
        "seconds_per_step": round(sum(step_times) / len(step_times), 4) if step_times else None,
        "peak_gpu_memory_gib": peak_gib,
        "trained_tokens_per_epoch": trained_tokens,
        "trainable_parameters": trainable,
        "world_size": spec.world_size,
        "effective_batch_size": spec.batch_size * ga * spec.world_size,
    }
    if metrics["train_loss"] is None:
        metrics["train_loss"] = _final_train_loss(state)
    ev.emit({
        "type": "result",
        "artifact": tar_path,
        "artifact_dir": artifact_dir,
        "format": "safetensors",
        "quantization": quant,
        "method": method_info,
        "metrics": metrics,
        "sha256": sha,
    })
    return EXIT_OK


def _final_train_loss(state):
    """Mean training loss of the last epoch, from the Trainer's log history."""
    history = [h for h in (state.log_history or []) if "loss" in h and h.get("epoch") is not None]
    if not history:
        return None
    last_epoch = math.ceil(history[-1]["epoch"] - 1e-9)
    losses = [h["loss"] for h in history if math.ceil(h["epoch"] - 1e-9) == last_epoch]
    return _round(sum(losses) / len(losses)) if losses else None


def _barrier(torch) -> None:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _shutdown_dist(torch) -> None:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception as e:  # noqa: BLE001  (best effort)
            sys.stderr.write(f"[warn] destroy_process_group: {e}\n")


# ====================================================================== main


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--spec", help="train: path of the job spec JSON")
    mode.add_argument("--check-spec", metavar="SPEC", help="dry run: validate the spec and its files, print the plan (no torch needed)")
    ap.add_argument("--deepspeed", help="DeepSpeed config JSON (as the deepspeed launcher passes it); must agree with the spec")
    ap.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # added by the deepspeed launcher
    ap.add_argument("--allow-cpu", action="store_true", help="smoke tests only: train on CPU when no GPU is visible (tiny models, no DeepSpeed)")
    return ap


def check_spec(ev: Events, args) -> int:
    try:
        spec = parse_spec(args.check_spec)
        plan = build_plan(spec, args.deepspeed)
    except JobError as e:
        ev.emit({"type": "message", "level": "error", "message": e.message})
        return e.code
    ev.emit(plan)
    return EXIT_OK


def main(argv=None) -> int:
    t_start = time.monotonic()
    env = DistEnv.from_env()
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return EXIT_INVALID if e.code else EXIT_OK
    ev = Events(enabled=bool(args.check_spec) or env.rank == 0)
    if args.check_spec:
        return check_spec(ev, args)

    stop = StopFlag()
    stop.install()
    try:
        return run_training(ev, stop, env, args, t_start)
    except HANDLED_ERRORS as e:
        return exit_code_for(
            ev, e, memory_message="out of host memory (retryable)",
            stopped_note=" (the last checkpoint line is the resume point)",
        )
    except OSError as e:
        traceback.print_exc()
        ev.message("error", f"I/O error (retryable): {type(e).__name__}: {e}")
        return EXIT_RETRY
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        if _is_oom(e):
            ev.message("error", f"CUDA out of memory (retryable; lower batch_size or max_seq_len, or use ZeRO offload): {str(e)[:500]}")
            return EXIT_RETRY
        if _is_distributed_failure(e):
            ev.message("error", f"distributed failure (retryable): {type(e).__name__}: {str(e)[:500]}")
            return EXIT_RETRY
        ev.message("error", f"internal error: {type(e).__name__}: {str(e)[:1000]}")
        return EXIT_FAILED


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    sys.exit(code)
