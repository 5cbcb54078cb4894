#!/usr/bin/env bash
# Runs the platform on embedded defaults: SQLite under ./data, in-process rate
# limits, on 127.0.0.1:8080, with the two local models (SmolLM2-135M-Instruct
# and all-MiniLM-L6-v2) on a local Triton started in the background: the API
# answers at once, and the models appear in GET /v1/models (and /readyz turns
# ready) when Triton is up. The first run builds llama-cpp-python (~13 min;
# progress in ~/.cache/llmops/triton-start.log).
# Configure with llmops.toml or LLMOPS_* variables; LLMOPS_TRITON_URL=""
# runs without models, and a URL of yours uses your Triton instead.
# Fine-tuning jobs run in this process on one CPU slot (training_cpu_slots)
# once the recipes' Python is installed (after Triton's first start).
# The binary is the debug build that scripts/test.sh and scripts/llmops use
# too (one build for all three); LLMOPS_PROFILE=release runs an optimised
# build instead (a second, longer build: for benchmarks and real load).
set -euo pipefail
cd -P "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llmops/target}"
mkdir -p "$HOME/.cache/llmops"

if [ -z "${LLMOPS_TRITON_URL+set}" ]; then
  export LLMOPS_TRITON_URL="http://127.0.0.1:${TRITON_GRPC_PORT:-8001}"
  log="$HOME/.cache/llmops/triton-start.log"
  echo "[llmops] starting Triton in the background (log: $log)" >&2
  # Then the training recipes' Python (from the llama-cpp-python wheel
  # Triton's start built): the in-process worker starts claiming fine-tuning
  # jobs once it exists.
  (infra/triton/local.sh start >"$log" 2>&1 || echo "[llmops] Triton failed to start: see $log" >&2
   bash -c '. scripts/lib.sh && train_python' >>"$log" 2>&1 || echo "[llmops] the training recipes' Python was not installed: see $log" >&2) &
  trap 'infra/triton/local.sh stop >/dev/null 2>&1 || true' EXIT
elif [ -z "$LLMOPS_TRITON_URL" ]; then
  unset LLMOPS_TRITON_URL
fi

# The response cache embeds prompts in-process with all-MiniLM-L6-v2's
# weights once the local Triton's package has them (until then, with the
# served model).
if [ -z "${LLMOPS_CACHE_EMBEDDING_DIR+set}" ] \
  && dir=$(. scripts/lib.sh && minilm_dir 2>/dev/null) && [ -f "$dir/model.safetensors" ]; then
  export LLMOPS_CACHE_EMBEDDING_DIR="$dir"
fi

scripts/llmops serve "$@"
