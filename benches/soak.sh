#!/usr/bin/env bash
# Memory under sustained load: `llmops serve` on embedded defaults (SQLite)
# with an instant upstream (nginx), loaded with wrk (64 connections) on the
# cheap route (GET /v1/tenant), then on chat completions, then on streamed
# chat completions, then left idle; prints the server's RSS every SAMPLE
# seconds. A server that keeps per-request state grows linearly; a healthy
# one levels off.
#
#   benches/soak.sh [seconds_per_phase=60] [sample_every=10]
#
# BIN=/path/to/llmops soaks that binary instead of building one (e.g. an
# older build, to compare). LLMOPS_PROFILE=dev uses the debug build (a
# smoke run).
set -euo pipefail
cd -P "$(dirname "$0")/.."
. scripts/lib.sh
phase_secs=${1:-60}
every=${2:-10}
command -v wrk >/dev/null || apt_install wrk >/dev/null

bin=${BIN:-}
if [ -z "$bin" ]; then
  bench_binary
  bin="$BENCH_BIN"
fi

work=$(mktemp -d /tmp/llmops-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

start_upstream_nginx "$work/nginx"
pids+=("$UPSTREAM_PID")
printf '[[catalog]]\nid = "instant"\nkind = "chat"\nbackend = "openai"\nbase_url = "%s"\n' "$UPSTREAM_URL" >"$work/llmops.toml"
export LLMOPS_CONFIG="$work/llmops.toml" LLMOPS_DATA_DIR="$work/data" LLMOPS_LISTEN=127.0.0.1:0
key=$(roomy_tenant "$bin" soak)
start_llmops "$bin" "$work/serve"
server=$LLMOPS_PID
pids+=("$server")
base=$LLMOPS_BASE

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$server/status"; }

for stream in false true; do
  cat >"$work/chat-$stream.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"instant","stream":$stream,"messages":[{"role":"user","content":"hi"}],"max_tokens":8}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
done
cat >"$work/tenant.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $key"
LUA

printf '%-22s %8s %10s %12s\n' phase "t (s)" "RSS (MB)" "requests"
printf '%-22s %8s %10s %12s\n' start 0 "$(rss_mb)" 0
t=0
total=0
run_phase() {
  local name=$1 url=$2 script=$3 out
  out="$work/wrk-$(echo "$name" | tr -c 'a-z0-9' '-').txt"
  wrk -t 1 -c 64 -d "${phase_secs}s" -s "$script" "$url" >"$out" &
  local w=$! elapsed=0
  while [ "$elapsed" -lt "$phase_secs" ]; do
    sleep "$every"
    elapsed=$((elapsed + every)); t=$((t + every))
    printf '%-22s %8s %10s %12s\n' "$name" "$t" "$(rss_mb)" "-"
  done
  wait "$w" || true
  local n
  n=$(awk '/requests in/ { print $1 }' "$out")
  total=$((total + ${n:-0}))
  printf '%-22s %8s %10s %12s\n' "$name done" "$t" "$(rss_mb)" "$total"
}
run_phase "GET /v1/tenant" "$base/v1/tenant" "$work/tenant.lua"
run_phase "chat" "$base/v1/chat/completions" "$work/chat-false.lua"
run_phase "chat stream" "$base/v1/chat/completions" "$work/chat-true.lua"
for _ in 1 2 3; do
  sleep "$every"; t=$((t + every))
  printf '%-22s %8s %10s %12s\n' idle "$t" "$(rss_mb)" "$total"
done
kill -0 "$server" 2>/dev/null || { echo "the server died:"; tail -n 20 "$work/serve.log"; exit 1; }
