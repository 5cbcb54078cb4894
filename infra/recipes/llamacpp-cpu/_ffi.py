"""ctypes declarations for llama.cpp's training API (llama_opt_*, ggml_opt_*).

llama-cpp-python 0.3.36 ships libllama/libggml-base with the optimizer API
exported but has no usable Python bindings for it, so the few functions the
recipe needs are declared here against the C headers of that exact version
(include/llama.h, include/ggml-opt.h in the wheel).  The ABI changes between
llama.cpp releases: `check_version()` refuses any other llama-cpp-python.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import sys

import llama_cpp  # noqa: F401  (loads libllama + libggml*)
from llama_cpp import llama_cpp as L

SUPPORTED_LLAMA_CPP_PYTHON = ("0.3.36",)

# enum ggml_type (ggml.h)
GGML_TYPE_F32 = 0
GGML_TYPE_I32 = 26

# enum ggml_opt_optimizer_type (ggml-opt.h)
GGML_OPT_OPTIMIZER_TYPE_ADAMW = 0

# enum llama_load_mode / llama_flash_attn_type (llama.h)
LLAMA_LOAD_MODE_NONE = 0
LLAMA_FLASH_ATTN_TYPE_DISABLED = 0

# ggml_log_level
GGML_LOG_LEVEL_WARN = 3
GGML_LOG_LEVEL_ERROR = 4
GGML_LOG_LEVEL_CONT = 5


def check_version() -> str | None:
    ver = getattr(llama_cpp, "__version__", "?")
    if ver not in SUPPORTED_LLAMA_CPP_PYTHON:
        return (
            f"llama-cpp-python {ver} is installed; this recipe declares the C training ABI of "
            f"{', '.join(SUPPORTED_LLAMA_CPP_PYTHON)} only (the ABI changes between versions)"
        )
    return None


class GgmlOptOptimizerParams(ctypes.Structure):
    """struct ggml_opt_optimizer_params: {adamw{alpha,beta1,beta2,eps,wd}, sgd{alpha,wd}}."""

    _fields_ = [
        ("adamw_alpha", ctypes.c_float),
        ("adamw_beta1", ctypes.c_float),
        ("adamw_beta2", ctypes.c_float),
        ("adamw_eps", ctypes.c_float),
        ("adamw_wd", ctypes.c_float),
        ("sgd_alpha", ctypes.c_float),
        ("sgd_wd", ctypes.c_float),
    ]


# typedef bool (*llama_opt_param_filter)(const struct ggml_tensor * tensor, void * userdata);
LlamaOptParamFilter = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_void_p)


class LlamaOptParams(ctypes.Structure):
    """struct llama_opt_params (llama.h, 0.3.36)."""

    _fields_ = [
        ("n_ctx_train", ctypes.c_uint32),
        ("param_filter", LlamaOptParamFilter),
        ("param_filter_ud", ctypes.c_void_p),
        ("get_opt_pars", ctypes.c_void_p),  # ggml_opt_get_optimizer_params (C function pointer)
        ("get_opt_pars_ud", ctypes.c_void_p),
        ("optimizer_type", ctypes.c_int),
    ]


def _lib_dir() -> pathlib.Path:
    return pathlib.Path(L.__file__).resolve().parent / "lib"


libllama = L._lib
libggml_base = ctypes.CDLL(str(_lib_dir() / "libggml-base.so"))


def _decl(lib, name, argtypes, restype):
    fn = getattr(lib, name)
    fn.argtypes = argtypes
    fn.restype = restype
    return fn


c_void_p = ctypes.c_void_p
c_int64 = ctypes.c_int64

llama_opt_init = _decl(libllama, "llama_opt_init", [c_void_p, c_void_p, LlamaOptParams], None)
llama_opt_epoch = _decl(
    libllama,
    "llama_opt_epoch",
    [c_void_p, c_void_p, c_void_p, c_void_p, c_int64, c_void_p, c_void_p],
    None,
)

ggml_opt_dataset_init = _decl(
    libggml_base,
    "ggml_opt_dataset_init",
    [ctypes.c_int, ctypes.c_int, c_int64, c_int64, c_int64, c_int64],
    c_void_p,
)
ggml_opt_dataset_free = _decl(libggml_base, "ggml_opt_dataset_free", [c_void_p], None)
ggml_opt_dataset_data = _decl(libggml_base, "ggml_opt_dataset_data", [c_void_p], c_void_p)
ggml_opt_dataset_labels = _decl(libggml_base, "ggml_opt_dataset_labels", [c_void_p], c_void_p)
ggml_opt_result_init = _decl(libggml_base, "ggml_opt_result_init", [], c_void_p)
ggml_opt_result_free = _decl(libggml_base, "ggml_opt_result_free", [c_void_p], None)
ggml_opt_result_reset = _decl(libggml_base, "ggml_opt_result_reset", [c_void_p], None)
ggml_opt_result_ndata = _decl(
    libggml_base, "ggml_opt_result_ndata", [c_void_p, ctypes.POINTER(c_int64)], None
)
ggml_opt_result_loss = _decl(
    libggml_base,
    "ggml_opt_result_loss",
    [c_void_p, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)],
    None,
)
ggml_get_name = _decl(libggml_base, "ggml_get_name", [c_void_p], ctypes.c_char_p)
ggml_nbytes = _decl(libggml_base, "ggml_nbytes", [c_void_p], ctypes.c_size_t)
ggml_backend_tensor_set = _decl(
    libggml_base,
    "ggml_backend_tensor_set",
    [c_void_p, c_void_p, ctypes.c_size_t, ctypes.c_size_t],
    None,
)
ggml_backend_tensor_get = _decl(
    libggml_base,
    "ggml_backend_tensor_get",
    [c_void_p, c_void_p, ctypes.c_size_t, ctypes.c_size_t],
    None,
)

# Address of the C function used as the optimizer-params callback: it just
# returns *(struct ggml_opt_optimizer_params *) userdata, so the learning rate
# can be changed between steps by writing to that struct.
GET_CONSTANT_OPTIMIZER_PARAMS = ctypes.cast(
    libggml_base.ggml_opt_get_constant_optimizer_params, c_void_p
).value


# ---------------------------------------------------------------- logging

_log_state = {"last_level": 0}
_VERBOSE = os.environ.get("LLMOPS_TRAIN_VERBOSE", "") not in ("", "0", "false")


@L.llama_log_callback
def _log_to_stderr(level, text, _user_data):  # pragma: no cover - called from C
    try:
        if level == GGML_LOG_LEVEL_CONT:
            level = _log_state["last_level"]
        else:
            _log_state["last_level"] = level
        if _VERBOSE or level >= GGML_LOG_LEVEL_WARN:
            sys.stderr.write(text.decode("utf-8", "replace") if text else "")
    except Exception:
        pass


def route_logs_to_stderr() -> None:
    """llama.cpp/ggml logs: warnings and errors to stderr, the rest dropped
    (all of it with LLMOPS_TRAIN_VERBOSE=1).  Never stdout."""
    L.llama_log_set(_log_to_stderr, None)
    try:
        fn = _decl(libggml_base, "ggml_log_set", [L.llama_log_callback, c_void_p], None)
        fn(_log_to_stderr, None)
    except AttributeError:
        pass


# ---------------------------------------------------------------- threads

GGML_MAX_N_THREADS = 512


class GgmlThreadpoolParams(ctypes.Structure):
    """struct ggml_threadpool_params (ggml.h)."""

    _fields_ = [
        ("cpumask", ctypes.c_bool * GGML_MAX_N_THREADS),
        ("n_threads", ctypes.c_int),
        ("prio", ctypes.c_int),
        ("poll", ctypes.c_uint32),
        ("strict_cpu", ctypes.c_bool),
        ("paused", ctypes.c_bool),
    ]


libggml_cpu = ctypes.CDLL(str(_lib_dir() / "libggml-cpu.so"))
ggml_threadpool_params_init = _decl(
    libggml_base, "ggml_threadpool_params_init", [ctypes.POINTER(GgmlThreadpoolParams), ctypes.c_int], None
)
ggml_threadpool_new = _decl(libggml_cpu, "ggml_threadpool_new", [ctypes.POINTER(GgmlThreadpoolParams)], c_void_p)
ggml_threadpool_free = _decl(libggml_cpu, "ggml_threadpool_free", [c_void_p], None)
llama_attach_threadpool = _decl(libllama, "llama_attach_threadpool", [c_void_p, c_void_p, c_void_p], None)
llama_detach_threadpool = _decl(libllama, "llama_detach_threadpool", [c_void_p], None)


def new_threadpool(n_threads: int, poll: int):
    """A CPU threadpool whose idle workers poll for `poll` (0..100; 0 = sleep
    at once).  ggml's default polls, which burns CPU on a busy machine."""
    p = GgmlThreadpoolParams()
    ggml_threadpool_params_init(ctypes.byref(p), n_threads)
    p.poll = max(0, min(100, int(poll)))
    return ggml_threadpool_new(ctypes.byref(p))
