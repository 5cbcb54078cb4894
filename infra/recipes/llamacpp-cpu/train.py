#!/usr/bin/env python3
"""Full-tensor fine-tuning of a llama-architecture GGUF on CPU with llama.cpp's
own optimizer API (llama_opt_init / llama_opt_epoch), as shipped in the
llama-cpp-python 0.3.36 wheel.

    python infra/recipes/llamacpp-cpu/train.py --spec SPEC.json

stdout carries one JSON event per line and nothing else (see README.md for the
contract); diagnostics and llama.cpp logs go to stderr.

Exit codes: 0 success, 2 invalid input, 75 retryable failure (memory, I/O),
143 stopped by SIGTERM (130 by SIGINT), anything else: failure.

The protocol writer, exit codes, spec loading and the JSONL line reader are
shared with the other recipes: ../common/recipe_common.py.
"""

from __future__ import annotations

import ctypes
import math
import os
import random
import re
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (HERE, os.path.join(HERE, "..", "common")):  # the recipes directory ships whole
    if _p not in sys.path:
        sys.path.insert(0, _p)

from recipe_common import EXIT_INVALID, EXIT_OK, Events, JobError, JobSpec  # noqa: E402
from recipe_common import RetryableError, StopFlag, abs_path, existing_file, invalid, recipe_main  # noqa: E402
from recipe_common import is_int as _is_int, is_num as _is_num, load_spec, object_field  # noqa: E402
from recipe_common import parse_learning_rate, parse_n_epochs, round_or_none as _round  # noqa: E402

DEFAULT_EPOCHS = 3
DEFAULT_LR = 2e-4
DEFAULT_N_CTX = 256
CTX_GRANULARITY = 256  # llama.cpp rounds n_ctx up to a multiple of 256
SUPPORTED_ARCHS = ("llama",)
# output_quantization -> enum llama_ftype (llama.h)
OUTPUT_FTYPES = {
    "q8_0": 7,
    "f16": 1,
    "f32": 0,
    "bf16": 32,
    "q4_0": 2,
    "q4_1": 3,
    "q5_0": 8,
    "q5_1": 9,
    "q4_k_m": 15,
    "q5_k_m": 17,
    "q6_k": 18,
}


# ------------------------------------------------------------------ plumbing


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


# ------------------------------------------------------------------ spec


@dataclass
class Spec(JobSpec):
    warmup_steps: int
    batch_size_requested: object
    trainable_blocks: int  # 0 = all
    n_ctx: int
    threads: int
    output_quantization: str
    cache_dir: str
    keep_checkpoints: int
    allow_any_architecture: bool
    thread_poll: int | None
    warnings: list = field(default_factory=list)


def parse_spec(path: str) -> Spec:
    spec = load_spec(path)
    warnings: list[str] = []

    base = abs_path(spec, "base_model", True)
    if not os.path.isfile(base):
        raise invalid(f"base_model not found: {base}")
    train = existing_file(spec, "training_file", True)
    valid = existing_file(spec, "validation_file", False)

    hp = object_field(spec, "hyperparameters")
    n_epochs = parse_n_epochs(hp, DEFAULT_EPOCHS)
    lr = parse_learning_rate(hp, DEFAULT_LR)

    sched = hp.get("lr_scheduler", "linear")
    if sched is None:
        sched = "linear"
    if sched not in ("constant", "linear", "cosine"):
        raise invalid(f"hyperparameters.lr_scheduler must be constant, linear or cosine (got {sched!r})")
    warmup = hp.get("warmup_steps", 0)
    if not _is_int(warmup) or warmup < 0:
        raise invalid(f"hyperparameters.warmup_steps must be a non-negative integer (got {warmup!r})")
    wd = hp.get("weight_decay", 0.0)
    if not _is_num(wd) or not 0 <= float(wd) < 1:
        raise invalid(f"hyperparameters.weight_decay must be a number in [0, 1) (got {wd!r})")

    bs = hp.get("batch_size", "auto")
    if bs not in (None, "auto") and (not _is_int(bs) or bs < 1):
        raise invalid(f"hyperparameters.batch_size must be a positive integer or \"auto\" (got {bs!r})")
    if _is_int(bs) and bs > 1:
        warnings.append(
            f"batch_size {bs} is not supported by llama.cpp's training API (one window of n_ctx tokens "
            "per optimizer step); training with batch_size 1"
        )

    method = spec.get("method")
    trainable_blocks = 0
    if method is not None:
        if not isinstance(method, dict):
            raise invalid("spec: \"method\" must be an object or null")
        mtype = method.get("type", "full")
        if mtype in ("lora", "qlora", "dora", "adapter"):
            raise invalid(
                f"method {mtype!r} is not supported: llama.cpp's training API trains full tensors only "
                "(use {\"type\":\"full\",\"trainable_blocks\":N})"
            )
        if mtype != "full":
            raise invalid(f"unsupported method type {mtype!r} (only \"full\")")
        tb = method.get("trainable_blocks")
        if tb is None:
            tb = 0
        if not _is_int(tb) or tb < 0:
            raise invalid(f"method.trainable_blocks must be a non-negative integer or null (got {tb!r})")
        trainable_blocks = tb

    seed = spec.get("seed", 42)
    if seed is None:
        seed = 42
    if not _is_int(seed):
        raise invalid(f"spec: \"seed\" must be an integer (got {seed!r})")

    n_ctx = spec.get("n_ctx", DEFAULT_N_CTX)
    if n_ctx is None:
        n_ctx = DEFAULT_N_CTX
    if not _is_int(n_ctx) or not 16 <= n_ctx <= 32768:
        raise invalid(f"spec: \"n_ctx\" must be an integer 16..32768 (got {n_ctx!r})")
    if n_ctx % CTX_GRANULARITY:
        rounded = -(-n_ctx // CTX_GRANULARITY) * CTX_GRANULARITY
        warnings.append(f"n_ctx {n_ctx} rounded up to {rounded} (llama.cpp trains on multiples of {CTX_GRANULARITY})")
        n_ctx = rounded

    threads = spec.get("threads")
    if threads is None:
        threads = os.cpu_count() or 1
    if not _is_int(threads) or not 1 <= threads <= 1024:
        raise invalid(f"spec: \"threads\" must be a positive integer (got {threads!r})")

    q = spec.get("output_quantization", "q8_0")
    if q is None:
        q = "q8_0"
    if not isinstance(q, str) or q.lower() not in OUTPUT_FTYPES:
        raise invalid(f"output_quantization must be one of {', '.join(OUTPUT_FTYPES)} (got {q!r})")
    q = q.lower()

    out_dir = abs_path(spec, "output_dir", True)
    ckpt_dir = abs_path(spec, "checkpoint_dir", False) or os.path.join(os.getcwd(), "checkpoints")
    cache_dir = abs_path(spec, "cache_dir", False) or os.path.join(ckpt_dir, "cache")

    resume = spec.get("resume_from")
    if resume is not None:
        if not isinstance(resume, dict):
            raise invalid("spec: \"resume_from\" must be an object or null")
        rstep, repoch, rpath = resume.get("step"), resume.get("epoch"), resume.get("path")
        if not _is_int(rstep) or rstep < 0 or not _is_int(repoch) or repoch < 0:
            raise invalid("resume_from.step and resume_from.epoch must be non-negative integers")
        if not isinstance(rpath, str) or not rpath:
            raise invalid("resume_from.path must be a path string")
        rpath = os.path.abspath(rpath)
        if not os.path.isfile(rpath):
            raise invalid(f"resume_from.path not found: {rpath}")
        resume = {"step": rstep, "epoch": repoch, "path": rpath}

    keep = spec.get("keep_checkpoints", 1)
    if not _is_int(keep) or keep < 0:
        raise invalid("spec: \"keep_checkpoints\" must be a non-negative integer (0 = keep all)")

    poll = spec.get("thread_poll")
    if poll is not None and (not _is_int(poll) or not 0 <= poll <= 100):
        raise invalid("spec: \"thread_poll\" must be an integer 0..100 or null")

    job_id = spec.get("job_id") or "job"
    attempt = spec.get("attempt", 1)
    return Spec(
        job_id=str(job_id),
        attempt=attempt if _is_int(attempt) else 1,
        base_model=base,
        training_file=train,
        validation_file=valid,
        n_epochs=n_epochs,
        learning_rate=lr,
        lr_scheduler=sched,
        warmup_steps=warmup,
        weight_decay=float(wd),
        batch_size_requested=bs,
        trainable_blocks=trainable_blocks,
        seed=seed,
        n_ctx=n_ctx,
        threads=threads,
        output_quantization=q,
        cache_dir=cache_dir,
        checkpoint_dir=ckpt_dir,
        output_dir=out_dir,
        resume_from=resume,
        keep_checkpoints=keep,
        allow_any_architecture=bool(spec.get("allow_any_architecture", False)),
        thread_poll=poll,
        warnings=warnings,
    )


def lr_at(spec: Spec, step: int, total_steps: int) -> float:
    """Learning rate for global step `step` (1-based)."""
    lr = spec.learning_rate
    if spec.warmup_steps and step <= spec.warmup_steps:
        return lr * step / spec.warmup_steps
    if spec.lr_scheduler == "constant" or total_steps <= spec.warmup_steps:
        return lr
    progress = (step - 1 - spec.warmup_steps) / max(1, total_steps - spec.warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if spec.lr_scheduler == "linear":
        return lr * (1.0 - progress)
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


# ------------------------------------------------------------------ memory


def available_memory_bytes() -> int | None:
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            lim = f.read().strip()
        if lim != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                cur = int(f.read().strip())
            cg = int(lim) - cur
            avail = cg if avail is None else min(avail, cg)
    except (OSError, ValueError):
        pass
    return avail


# ------------------------------------------------------------------ trainer


class Trainer:
    """Owns the llama.cpp model/context and the optimizer state."""

    def __init__(self, ffi, model_path: str, n_ctx: int, threads: int, trainable, opt_params, thread_poll=None):
        self.ffi = ffi
        L = ffi.L
        self.n_ctx = n_ctx
        self.model = None
        self.ctx = None
        self.ds_train = None
        self.result = None
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        mp.load_mode = ffi.LLAMA_LOAD_MODE_NONE  # weights must be writable
        mp.use_extra_bufts = False  # plain CPU buffers: no repacked layouts
        mp.check_tensors = False
        self.model = L.llama_model_load_from_file(model_path.encode(), mp)
        if not self.model:
            raise JobError(1, f"llama.cpp could not load {model_path} (see stderr)")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.threads = threads
        self.thread_poll = thread_poll
        self.threadpool = None
        self._trainable = trainable
        self._opt_params = opt_params
        self.trained: dict[str, int] = {}  # name -> ggml_tensor *

    def tokenize(self, text: str) -> list[int]:
        L = self.ffi.L
        b = text.encode("utf-8")
        cap = max(16, len(b) + 16)
        buf = (L.llama_token * cap)()
        n = L.llama_tokenize(self.vocab, b, len(b), buf, cap, False, True)
        if n < 0:
            cap = -n
            buf = (L.llama_token * cap)()
            n = L.llama_tokenize(self.vocab, b, len(b), buf, cap, False, True)
        if n < 0:
            raise JobError(1, "llama_tokenize failed")
        return list(buf[:n])

    def init_training(self) -> None:
        ffi, L = self.ffi, self.ffi.L
        cp = L.llama_context_default_params()
        cp.n_ctx = self.n_ctx
        cp.n_batch = self.n_ctx
        cp.n_ubatch = self.n_ctx
        cp.n_seq_max = 1
        cp.n_threads = self.threads
        cp.n_threads_batch = self.threads
        cp.flash_attn_type = ffi.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cp.type_k = ffi.GGML_TYPE_F32  # OUT_PROD has no F16 path
        cp.type_v = ffi.GGML_TYPE_F32
        cp.no_perf = True
        cp.embeddings = False
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RetryableError("llama.cpp could not create a context (out of memory?)")

        if self.thread_poll is not None and self.threads > 1:
            self.threadpool = ffi.new_threadpool(self.threads, self.thread_poll)
            if self.threadpool:
                ffi.llama_attach_threadpool(self.ctx, self.threadpool, self.threadpool)

        # One tiny decode makes llama.cpp hand the thread count (and pool) to
        # the CPU backend; the training path itself never does.
        t = self.tokenize("Hello")
        arr = (L.llama_token * len(t))(*t)
        rc = L.llama_decode(self.ctx, L.llama_batch_get_one(arr, len(t)))
        if rc != 0:
            raise JobError(1, f"llama_decode warm-up failed ({rc})")
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)

        trainable = self._trainable

        def param_filter(tensor, _ud):
            try:
                name = ffi.ggml_get_name(tensor).decode()
            except Exception:
                return False
            ok = bool(trainable(name))
            if ok and name not in ("token_embd.weight", "rope_freqs.weight"):
                self.trained[name] = tensor
            return ok

        self._filter_cb = ffi.LlamaOptParamFilter(param_filter)  # keep alive
        op = ffi.LlamaOptParams()
        op.n_ctx_train = 0  # 0 = the context's n_ctx (anything else breaks batching)
        op.param_filter = self._filter_cb
        op.param_filter_ud = None
        op.get_opt_pars = ffi.GET_CONSTANT_OPTIMIZER_PARAMS
        op.get_opt_pars_ud = ctypes.cast(ctypes.pointer(self._opt_params), ctypes.c_void_p)
        op.optimizer_type = ffi.GGML_OPT_OPTIMIZER_TYPE_ADAMW
        ffi.llama_opt_init(self.ctx, self.model, op)

        self.ds_train = ffi.ggml_opt_dataset_init(ffi.GGML_TYPE_I32, ffi.GGML_TYPE_I32, self.n_ctx, self.n_ctx, 1, 1)
        self.result = ffi.ggml_opt_result_init()
        if not self.ds_train or not self.result:
            raise RetryableError("could not allocate the training dataset (out of memory?)")

    def _fill(self, ds, windows) -> None:
        import numpy as np

        ffi = self.ffi
        data = np.ascontiguousarray(np.array([w[0] for w in windows], dtype=np.int32))
        labels = np.ascontiguousarray(np.array([w[1] for w in windows], dtype=np.int32))
        ffi.ggml_backend_tensor_set(ffi.ggml_opt_dataset_data(ds), data.ctypes.data, 0, data.nbytes)
        ffi.ggml_backend_tensor_set(ffi.ggml_opt_dataset_labels(ds), labels.ctypes.data, 0, labels.nbytes)

    def _loss(self, res) -> float:
        loss = ctypes.c_double(float("nan"))
        self.ffi.ggml_opt_result_loss(res, ctypes.byref(loss), None)
        return loss.value

    def set_learning_rate(self, lr: float) -> None:
        # read by ggml_opt_get_constant_optimizer_params before every step
        self._opt_params.adamw_alpha = lr
        self._opt_params.sgd_alpha = lr

    def train_step(self, window) -> float:
        ffi = self.ffi
        self._fill(self.ds_train, [window])
        ffi.ggml_opt_result_reset(self.result)
        ffi.llama_opt_epoch(self.ctx, self.ds_train, self.result, None, 1, None, None)
        return self._loss(self.result)

    def evaluate(self, windows) -> float:
        ffi = self.ffi
        ds = ffi.ggml_opt_dataset_init(ffi.GGML_TYPE_I32, ffi.GGML_TYPE_I32, self.n_ctx, self.n_ctx, len(windows), 1)
        res = ffi.ggml_opt_result_init()
        try:
            self._fill(ds, windows)
            ffi.llama_opt_epoch(self.ctx, ds, None, res, 0, None, None)
            return self._loss(res)
        finally:
            ffi.ggml_opt_result_free(res)
            ffi.ggml_opt_dataset_free(ds)

    def read_tensor(self, name: str, shape):
        import numpy as np

        ptr = self.trained[name]
        nbytes = self.ffi.ggml_nbytes(ptr)
        arr = np.empty(shape, dtype=np.float32)
        if arr.nbytes != nbytes:
            raise JobError(1, f"tensor {name}: {nbytes} bytes in memory, {arr.nbytes} expected")
        self.ffi.ggml_backend_tensor_get(ptr, arr.ctypes.data, 0, nbytes)
        return arr

    def close(self) -> None:
        ffi = self.ffi
        if self.result:
            ffi.ggml_opt_result_free(self.result)
            self.result = None
        if self.ds_train:
            ffi.ggml_opt_dataset_free(self.ds_train)
            self.ds_train = None
        if self.ctx:
            if self.threadpool:
                ffi.llama_detach_threadpool(self.ctx)
            ffi.L.llama_free(self.ctx)
            self.ctx = None
        if self.threadpool:
            ffi.ggml_threadpool_free(self.threadpool)
            self.threadpool = None
        if self.model:
            ffi.L.llama_model_free(self.model)
            self.model = None
        self.trained = {}


_BLOCK_RE = re.compile(r"^blk\.(\d+)\.")


def make_trainable_filter(n_layer: int, trainable_blocks: int):
    first = 0 if trainable_blocks in (0, None) or trainable_blocks >= n_layer else n_layer - trainable_blocks

    def trainable(name: str) -> bool:
        m = _BLOCK_RE.match(name)
        if m:
            return int(m.group(1)) >= first
        return name.startswith("output_norm.")

    return trainable


# ------------------------------------------------------------------ the job


def run(ev: Events, stop: StopFlag, spec_path: str, t_start: float) -> int:
    spec = parse_spec(spec_path)
    for w in spec.warnings:
        ev.message("warn", w)

    import _ffi as ffi  # noqa: E402  (after stdout is redirected)
    import _ggufio as gio
    from _data import ChatRenderer, DataError, load_chats

    err = ffi.check_version()
    if err:
        raise JobError(1, err)
    ffi.route_logs_to_stderr()
    ffi.L.llama_backend_init()

    # ---- data and base model metadata (fail fast, before any heavy work)
    try:
        train_chats = load_chats(spec.training_file, "training")
        valid_chats = load_chats(spec.validation_file, "validation") if spec.validation_file else []
    except DataError as e:
        raise invalid(str(e))
    try:
        base = gio.inspect(spec.base_model)
    except gio.GgufError as e:
        raise invalid(f"base_model: {e}")
    if base.architecture not in SUPPORTED_ARCHS and not spec.allow_any_architecture:
        raise invalid(
            f"base_model architecture {base.architecture!r} is not supported (only {', '.join(SUPPORTED_ARCHS)}; "
            "set \"allow_any_architecture\": true to try anyway)"
        )
    if not base.chat_template:
        raise invalid("base_model has no tokenizer.chat_template; chats cannot be rendered the way they will be served")
    if base.context_length and spec.n_ctx > base.context_length:
        raise invalid(f"n_ctx {spec.n_ctx} exceeds the model's context length {base.context_length}")
    n_layer = base.block_count
    if spec.trainable_blocks > n_layer:
        ev.message("warn", f"trainable_blocks {spec.trainable_blocks} > {n_layer} blocks in the model; training all blocks")
    eff_blocks = n_layer if spec.trainable_blocks == 0 or spec.trainable_blocks >= n_layer else spec.trainable_blocks

    renderer = ChatRenderer(base.chat_template, base.bos_token, base.eos_token)
    try:
        train_texts = [renderer.render(c, f"training file {spec.training_file} line {n}") for n, c in train_chats]
        valid_texts = [renderer.render(c, f"validation file {spec.validation_file} line {n}") for n, c in valid_chats]
    except DataError as e:
        raise invalid(str(e))
    ev.message(
        "info",
        f"{len(train_chats)} training chats" + (f", {len(valid_chats)} validation chats" if valid_chats else "")
        + f"; base {os.path.basename(spec.base_model)} ({base.architecture}, {n_layer} blocks)",
    )

    for d in (spec.output_dir, spec.checkpoint_dir, spec.cache_dir):
        os.makedirs(d, exist_ok=True)

    # ---- the F32 weights to start from
    resume = spec.resume_from
    resumed_metrics: dict = {}
    if resume:
        try:
            ref = gio.GgufFile(resume["path"])
            rinfo = gio.inspect(resume["path"], ref)
        except gio.GgufError as e:
            raise invalid(f"resume_from.path: {e}")
        if rinfo.architecture != base.architecture or rinfo.block_count != n_layer or not rinfo.all_f32:
            raise invalid(f"resume_from.path {resume['path']} is not an F32 checkpoint of this base model")
        model_src = resume["path"]
        for k in ("train_loss", "valid_loss", "valid_loss_before"):
            v = rinfo.kv.get(f"llmops.finetune.{k}")
            if isinstance(v, float) and math.isfinite(v):
                resumed_metrics[k] = v
        ev.message(
            "warn",
            f"resuming from {resume['path']} (step {resume['step']}, epoch {resume['epoch']}): weights restored, "
            "optimizer state (AdamW moments) starts fresh",
        )
    elif base.all_f32:
        model_src = spec.base_model
        ref = gio.GgufFile(model_src)
    else:
        t0 = time.monotonic()
        sha = gio.file_sha256(spec.base_model)
        model_src = os.path.join(spec.cache_dir, f"{sha}.f32.gguf")
        ref = None
        if os.path.isfile(model_src):
            try:
                ref = gio.GgufFile(model_src)
                if not ref.all_f32 or len(ref.tensors) != base.n_tensors:
                    ref.close()
                    ref = None
            except gio.GgufError:
                ref = None
        if ref is not None:
            ev.message("info", f"using cached F32 copy {model_src}")
        else:
            ev.message("info", f"dequantizing base model to F32 -> {model_src}")
            try:
                gio.dequantize_to_f32(spec.base_model, model_src, should_stop=stop)
            except InterruptedError:
                stop.check()
                raise
            except gio.GgufError as e:
                raise invalid(f"base_model: {e}")
            ref = gio.GgufFile(model_src)
            ev.message("info", f"dequantized in {time.monotonic() - t0:.1f} s ({os.path.getsize(model_src) / 1e6:.0f} MB)")
    stop.check()

    try:
        return _run_training(ev, stop, spec, ffi, gio, ref, base, model_src, eff_blocks,
                             train_texts, valid_texts, resumed_metrics, t_start)
    finally:
        ref.close()


def _estimate_memory(ev, spec, ref, base, trainable, eff_blocks) -> None:
    """llama.cpp aborts the process when an allocation fails, so refuse
    (retryably) up front when the machine clearly lacks the memory."""
    model_bytes = sum(t.n_elements * 4 for t in ref.tensors)
    train_bytes = sum(t.n_elements * 4 for t in ref.tensors if trainable(t.name) and t.name != "token_embd.weight")
    n_embd = base.embedding_length or 4096
    n_vocab = base.vocab_size or 32000
    act_bytes = spec.n_ctx * (n_vocab * 4 * 4 + n_embd * 4 * 40 * eff_blocks) + (256 << 20)
    need = model_bytes + 3 * train_bytes + act_bytes
    avail = available_memory_bytes()
    ev.message(
        "info",
        f"memory estimate {need / 2**30:.2f} GiB (weights {model_bytes / 2**30:.2f}, grads+AdamW {3 * train_bytes / 2**30:.2f})"
        + (f", available {avail / 2**30:.2f} GiB" if avail is not None else ""),
    )
    if avail is not None and need > avail:
        raise RetryableError(f"not enough memory: about {need / 2**30:.2f} GiB needed, {avail / 2**30:.2f} GiB available")


def _valid_metrics(loss: float) -> dict:
    return {"valid_loss": _round(loss), "valid_perplexity": _round(math.exp(min(loss, 700.0)), 4)}


def _run_training(ev, stop, spec, ffi, gio, ref, base, model_src, eff_blocks,
                  train_texts, valid_texts, resumed_metrics, t_start):
    from _data import pack_windows

    n_ctx = spec.n_ctx
    resume = spec.resume_from
    trainable = make_trainable_filter(base.block_count, spec.trainable_blocks)
    _estimate_memory(ev, spec, ref, base, trainable, eff_blocks)

    opt_params = ffi.GgmlOptOptimizerParams(
        adamw_alpha=spec.learning_rate, adamw_beta1=0.9, adamw_beta2=0.999, adamw_eps=1e-8,
        adamw_wd=spec.weight_decay, sgd_alpha=spec.learning_rate, sgd_wd=0.0,
    )
    t0 = time.monotonic()
    trainer = Trainer(ffi, model_src, n_ctx, spec.threads, trainable, opt_params, spec.thread_poll)
    try:
        train_tok = [trainer.tokenize(t) for t in train_texts]
        valid_tok = [trainer.tokenize(t) for t in valid_texts]
        for toks in train_tok + valid_tok:
            if toks and max(toks) >= trainer.n_vocab:
                raise JobError(1, "the tokenizer produced an id outside the vocabulary")
        train_w = pack_windows(train_tok, n_ctx)
        valid_w = pack_windows(valid_tok, n_ctx) if valid_tok else []
        if not train_w:
            raise invalid("the training file tokenizes to fewer than 2 tokens")
        W = len(train_w)
        ev.message(
            "info",
            f"{sum(len(t) for t in train_tok)} training tokens -> {W} windows of {n_ctx}"
            + (f"; {sum(len(t) for t in valid_tok)} validation tokens -> {len(valid_w)} windows" if valid_w else "")
            + f"; model loaded in {time.monotonic() - t0:.1f} s",
        )

        total_steps = spec.n_epochs * W
        start_epoch, step = 1, 0
        if resume:
            start_epoch, step = resume["epoch"] + 1, resume["step"]
            if step != resume["epoch"] * W:
                ev.message("warn", f"resume step {step} != epoch {resume['epoch']} x {W} windows; continuing numbering from {step}")

        valid_before = resumed_metrics.get("valid_loss_before")
        valid_loss = resumed_metrics.get("valid_loss")
        epoch_train_loss = resumed_metrics.get("train_loss")
        last_ckpt = resume["path"] if resume else None
        step_times: list[float] = []
        step_cpu: list[float] = []

        if start_epoch <= spec.n_epochs:
            trainer.init_training()
            ev.message(
                "info",
                f"training {len(trainer.trained)} tensors (top {eff_blocks} of {base.block_count} blocks + output_norm), "
                f"AdamW lr {spec.learning_rate:g} ({spec.lr_scheduler}), {spec.n_epochs} epochs x {W} steps, "
                f"{spec.threads} threads",
            )
            stop.check()
            if valid_w and not resume:
                t0 = time.monotonic()
                valid_before = valid_loss = trainer.evaluate(valid_w)
                ev.emit({"type": "metrics", "step": 0, "epoch": 0, "data": _valid_metrics(valid_loss)})
                ev.message("info", f"held-out loss before training {valid_loss:.4f} ({time.monotonic() - t0:.1f} s)")
                stop.check()
        else:
            ev.message("info", f"all {spec.n_epochs} epochs were done before; writing the artifact from the checkpoint")

        for epoch in range(start_epoch, spec.n_epochs + 1):
            # shuffle the chats, then pack: windows (and which chats share one)
            # differ every epoch; seeded, so a resumed job sees the same epochs
            order = list(range(len(train_tok)))
            random.Random(spec.seed * 100003 + epoch).shuffle(order)
            epoch_windows = pack_windows([train_tok[i] for i in order], n_ctx)
            losses = []
            for window in epoch_windows:
                step += 1
                lr = lr_at(spec, step, total_steps)
                trainer.set_learning_rate(lr)
                t0, c0 = time.monotonic(), time.process_time()
                loss = trainer.train_step(window)
                step_times.append(time.monotonic() - t0)
                step_cpu.append(time.process_time() - c0)
                if not math.isfinite(loss):
                    raise JobError(1, f"the loss is {loss} at step {step}; lower the learning rate")
                losses.append(loss)
                ev.emit({"type": "metrics", "step": step, "epoch": epoch,
                         "data": {"train_loss": _round(loss), "learning_rate": float(f"{lr:.6g}"), "tokens": step * n_ctx}})
                stop.check()
            epoch_train_loss = sum(losses) / len(losses)
            msg = (
                f"epoch {epoch}/{spec.n_epochs}: train loss {epoch_train_loss:.4f}, "
                f"{sum(step_times[-len(losses):]) / len(losses):.2f} s/step "
                f"({sum(step_cpu[-len(losses):]) / len(losses):.2f} CPU-s/step)"
            )
            if valid_w:
                valid_loss = trainer.evaluate(valid_w)
                ev.emit({"type": "metrics", "step": step, "epoch": epoch, "data": _valid_metrics(valid_loss)})
                msg += f", held-out loss {valid_loss:.4f}"
            ev.message("info", msg)
            stop.check()

            # checkpoint: the source file's metadata and frozen tensors, the
            # trained tensors read out of llama.cpp's memory
            t0 = time.monotonic()
            path = os.path.join(spec.checkpoint_dir, f"ckpt-{step}.gguf")
            extra = {
                "llmops.finetune.job_id": (spec.job_id, gio.T_STRING),
                "llmops.finetune.step": (step, gio.T_UINT32),
                "llmops.finetune.epoch": (epoch, gio.T_UINT32),
                "llmops.finetune.trainable_blocks": (eff_blocks, gio.T_UINT32),
                "llmops.finetune.train_loss": (epoch_train_loss, gio.T_FLOAT32),
            }
            if valid_loss is not None:
                extra["llmops.finetune.valid_loss"] = (valid_loss, gio.T_FLOAT32)
            if valid_before is not None:
                extra["llmops.finetune.valid_loss_before"] = (valid_before, gio.T_FLOAT32)
            gio.write_f32_gguf(
                path, ref,
                lambda t: trainer.read_tensor(t.name, t.np_shape) if t.name in trainer.trained else None,
                extra_kv=extra,
            )
            ev.emit({"type": "checkpoint", "step": step, "epoch": epoch, "path": path,
                     "metrics": {"train_loss": _round(epoch_train_loss), "valid_loss": _round(valid_loss)}})
            ev.message("info", f"checkpoint {path} written in {time.monotonic() - t0:.1f} s")
            last_ckpt = path
            if spec.keep_checkpoints:
                _prune_checkpoints(ev, spec.checkpoint_dir, keep=spec.keep_checkpoints, current=path)
            stop.check()

        n_trained = len(trainer.trained) or len([t for t in ref.tensors if trainable(t.name)])
    finally:
        trainer.close()  # free the training memory before quantizing

    if last_ckpt is None:
        raise JobError(1, "no checkpoint to export")
    stop.check()
    artifact = _export(ev, spec, ffi, last_ckpt)
    stop.check()  # a stop request during the export wins over reporting success
    sha = gio.file_sha256(artifact)

    metrics = {
        "train_loss": _round(epoch_train_loss),
        "valid_loss": _round(valid_loss) if valid_texts else None,
        "steps": step,
        "tokens": step * n_ctx,
        "seconds": round(time.monotonic() - t_start, 1),
        "valid_loss_before": _round(valid_before),
        "steps_this_attempt": len(step_times),
        "seconds_per_step": round(sum(step_times) / len(step_times), 3) if step_times else None,
        "cpu_seconds_per_step": round(sum(step_cpu) / len(step_cpu), 3) if step_cpu else None,
        "peak_rss_mb": peak_rss_mb(),
    }
    ev.emit({
        "type": "result",
        "artifact": artifact,
        "format": "gguf",
        "quantization": spec.output_quantization,
        "method": {"type": "full", "trainable_blocks": eff_blocks, "trained_tensors": n_trained},
        "metrics": metrics,
        "sha256": sha,
    })
    return EXIT_OK


def _export(ev, spec, ffi, ckpt: str) -> str:
    """Quantize (or copy) the final F32 checkpoint, whose metadata is already
    the base model's, to output_dir/model.gguf."""
    t0 = time.monotonic()
    artifact = os.path.join(spec.output_dir, "model.gguf")
    tmp = artifact + f".tmp.{os.getpid()}"
    try:
        if spec.output_quantization == "f32":
            shutil.copyfile(ckpt, tmp)
        else:
            qp = ffi.L.llama_model_quantize_default_params()
            qp.nthread = spec.threads
            qp.ftype = OUTPUT_FTYPES[spec.output_quantization]
            rc = ffi.L.llama_model_quantize(ckpt.encode(), tmp.encode(), ctypes.byref(qp))
            if rc != 0:
                raise JobError(1, f"llama_model_quantize to {spec.output_quantization} failed ({rc})")
        os.replace(tmp, artifact)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    ev.message("info", f"wrote {artifact} ({spec.output_quantization}, {os.path.getsize(artifact) / 1e6:.0f} MB) "
                       f"in {time.monotonic() - t0:.1f} s")
    return artifact


_CKPT_RE = re.compile(r"^ckpt-(\d+)\.gguf$")


def _prune_checkpoints(ev: Events, d: str, keep: int, current: str) -> None:
    try:
        found = sorted(
            ((int(m.group(1)), os.path.join(d, n)) for n in os.listdir(d) if (m := _CKPT_RE.match(n))),
            reverse=True,
        )
    except OSError:
        return
    for _, p in found[keep:]:
        if os.path.abspath(p) == os.path.abspath(current):
            continue
        try:
            os.unlink(p)
        except OSError as e:
            ev.message("warn", f"could not remove old checkpoint {p}: {e}")


# ------------------------------------------------------------------ main


def main(argv=None) -> int:
    return recipe_main(
        run, __doc__.split("\n\n")[0], argv,
        stopped_note="; no checkpoint written for the unfinished epoch",
        memory_message="out of memory",
        missing_hint=" (install the llama-cpp-python 0.3.36 wheel and requirements.txt)",
    )


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    sys.exit(code)
