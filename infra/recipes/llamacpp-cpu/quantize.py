#!/usr/bin/env python3
"""Quantization of a GGUF model with llama.cpp's own quantizer
(llama_model_quantize, exported by the llama-cpp-python 0.3.36 wheel).

    python infra/recipes/llamacpp-cpu/quantize.py --spec SPEC.json

SPEC: {"kind": "quantize", "base_model": PATH, "quantization": "q4_k_m",
"threads": N, "output_dir": DIR}. The same stdout protocol and exit codes as
train.py (README.md); the result's artifact is output_dir/model.gguf, loaded
once by llama.cpp before it is reported.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (HERE, os.path.join(HERE, "..", "common")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from recipe_common import EXIT_INVALID, EXIT_OK, Events, JobError, StopFlag, abs_path, existing_file, invalid  # noqa: E402
from recipe_common import is_int, load_spec, recipe_main  # noqa: E402
from train import OUTPUT_FTYPES  # noqa: E402

# enum llama_ftype (llama.h) of float weights: quantizing them loses nothing twice.
FLOAT_FTYPES = {0: "f32", 1: "f16", 32: "bf16"}


def parse(path: str) -> dict:
    spec = load_spec(path, "quantize")
    base = existing_file(spec, "base_model", True)
    q = spec.get("quantization")
    if not isinstance(q, str) or q.lower() not in OUTPUT_FTYPES or q.lower() == "f32":
        targets = ", ".join(k for k in OUTPUT_FTYPES if k != "f32")
        raise invalid(f"quantization must be one of {targets} (got {q!r})")
    threads = spec.get("threads") or os.cpu_count() or 1
    if not is_int(threads) or not 1 <= threads <= 1024:
        raise invalid(f"spec: \"threads\" must be a positive integer (got {threads!r})")
    return {
        "base_model": base,
        "quantization": q.lower(),
        "threads": threads,
        "output_dir": abs_path(spec, "output_dir", True),
    }


def run(ev: Events, stop: StopFlag, spec_path: str, t_start: float) -> int:
    spec = parse(spec_path)
    import _ffi as ffi
    import _ggufio as gio

    err = ffi.check_version()
    if err:
        raise JobError(1, err)
    ffi.route_logs_to_stderr()
    ffi.L.llama_backend_init()
    try:
        info = gio.inspect(spec["base_model"])
    except gio.GgufError as e:
        raise invalid(f"base_model: {e}")
    source_ftype = info.kv.get("general.file_type")
    target = spec["quantization"]
    if source_ftype == OUTPUT_FTYPES[target]:
        raise invalid(f"the model is {target} already")
    requantize = not info.all_f32 and source_ftype not in FLOAT_FTYPES
    source = FLOAT_FTYPES.get(source_ftype) or next(
        (k for k, v in OUTPUT_FTYPES.items() if v == source_ftype), f"ftype {source_ftype}"
    )
    if requantize:
        ev.message("warn", f"the source is quantized ({source}): requantizing to {target} compounds the "
                           "rounding of both; quantize from float weights where you have them")
    ev.message("info", f"quantizing {os.path.basename(spec['base_model'])} ({info.architecture}, {source}) to {target}")
    stop.check()

    os.makedirs(spec["output_dir"], exist_ok=True)
    artifact = os.path.join(spec["output_dir"], "model.gguf")
    tmp = artifact + f".tmp.{os.getpid()}"
    t0 = time.monotonic()
    try:
        qp = ffi.L.llama_model_quantize_default_params()
        qp.nthread = spec["threads"]
        qp.ftype = OUTPUT_FTYPES[target]
        qp.allow_requantize = requantize
        rc = ffi.L.llama_model_quantize(spec["base_model"].encode(), tmp.encode(), ctypes.byref(qp))
        if rc != 0:
            raise JobError(EXIT_INVALID, f"llama_model_quantize to {target} failed ({rc}; see stderr)")
        stop.check()
        os.replace(tmp, artifact)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    seconds = time.monotonic() - t0

    # The artifact must load: llama.cpp reads it back (weights included).
    mp = ffi.L.llama_model_default_params()
    mp.n_gpu_layers = 0
    model = ffi.L.llama_model_load_from_file(artifact.encode(), mp)
    if not model:
        raise JobError(EXIT_INVALID, f"llama.cpp could not load the quantized model {artifact} (see stderr)")
    n_params = ffi.L.llama_model_n_params(model)
    ffi.L.llama_model_free(model)

    size_in = os.path.getsize(spec["base_model"])
    size_out = os.path.getsize(artifact)
    metrics = {
        "source_mb": round(size_in / 1e6, 2),
        "size_mb": round(size_out / 1e6, 2),
        "compression": round(size_in / max(size_out, 1), 3),
        "parameters": int(n_params),
        "seconds": round(seconds, 2),
    }
    ev.message("info", f"wrote {artifact} ({target}, {metrics['size_mb']} MB from {metrics['source_mb']} MB) "
                       f"in {seconds:.1f} s")
    ev.emit({"type": "metrics", "step": 1, "data": metrics})
    ev.emit({
        "type": "result",
        "artifact": artifact,
        "format": "gguf",
        "quantization": target,
        "method": {"type": "quantize", "from": source, "to": target, "requantized": requantize},
        "metrics": metrics,
        "sha256": gio.file_sha256(artifact),
    })
    return EXIT_OK


def main(argv=None) -> int:
    return recipe_main(run, __doc__.split("\n\n")[0], argv,
                       missing_hint=" (install the llama-cpp-python 0.3.36 wheel and requirements.txt)")


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    sys.exit(code)
