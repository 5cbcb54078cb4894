#!/usr/bin/env bash
# Time to first token and decode tokens/s of SmolLM2 on the local Triton,
# through the gateway (openai SDK, streamed) versus a direct gRPC stream to
# the same Triton (tritonclient), same prompt and settings, 20 runs each.
#
#   benches/inference.sh [runs=20]
#
# TRITON_URL=http://host:port uses a running Triton instead of starting one.
set -euo pipefail
cd -P "$(dirname "$0")/.."
. scripts/lib.sh
runs=${1:-20}
work=$(mktemp -d /tmp/llmops-bench.XXXXXX)
chmod 755 "$work"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  stop_triton "$work/triton"
  stop_pg "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT

bench_binary
bin="$BENCH_BIN"
start_pg "$work/pg"
if [ -n "${TRITON_URL:-}" ]; then
  log "using the Triton at $TRITON_URL"
else
  start_triton "$work/triton"
fi
export LLMOPS_DATABASE_URL="$PG_URL" LLMOPS_DATA_DIR="$work/data" LLMOPS_LISTEN=127.0.0.1:0 \
       LLMOPS_TRITON_URL="$TRITON_URL" LLMOPS_LOG_FORMAT=json
key=$("$bin" tenants create --name bench --admin-email bench@bench.test --plan standard \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
start_llmops "$bin" "$work/serve"
server=$LLMOPS_PID
url=$LLMOPS_BASE
"$(sdk_python)" benches/ttft.py gateway "$url/v1" "$key" "$runs"
"$HOME/.cache/llmops/triton-venv/bin/python" benches/ttft.py direct "${TRITON_URL#http://}" "$runs"
