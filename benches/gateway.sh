#!/usr/bin/env bash
# Load benchmark of the gateway's hot path: GET /v1/tenant with an API key
# (authentication, rate limiting, metrics, access log) on PostgreSQL.
# Prints requests/s, p50/p99 latency and the server's peak RSS.
#
#   benches/gateway.sh [connections=64] [duration_s=20] [threads=1]
set -euo pipefail
cd -P "$(dirname "$0")/.."
. scripts/lib.sh

conns=${1:-64}
duration=${2:-20}
threads=${3:-1}

command -v wrk >/dev/null || apt_install wrk >/dev/null

work=$(mktemp -d /tmp/llmops-bench.XXXXXX)
chmod 755 "$work"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  stop_pg "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT

bench_binary
bin="$BENCH_BIN"

start_pg "$work/pg"
export LLMOPS_DATABASE_URL="$PG_URL" LLMOPS_DATA_DIR="$work/data" LLMOPS_LISTEN=127.0.0.1:0 \
       LLMOPS_OPERATOR_TOKEN=bench-operator-token-0123456789 LLMOPS_LOG_FORMAT=json
"$bin" migrate >/dev/null
# It measures the limiter's cost, not its refusals.
key=$(roomy_tenant "$bin" bench)

start_llmops "$bin" "$work/serve"
server_pid=$LLMOPS_PID
url=$LLMOPS_BASE
log "server at $url (pid $server_pid)"

curl -sf "$url/v1/tenant" -H "Authorization: Bearer $key" >/dev/null
log "warm-up"
wrk -t "$threads" -c "$conns" -d 3s -H "Authorization: Bearer $key" "$url/v1/tenant" >/dev/null
log "measuring: $conns connections, $duration s, $threads wrk thread(s)"
wrk -t "$threads" -c "$conns" -d "${duration}s" --latency -H "Authorization: Bearer $key" \
  "$url/v1/tenant" | tee "$work/wrk.txt"

rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
p50=$(awk '$1=="50%" {print $2}' "$work/wrk.txt")
p99=$(awk '$1=="99%" {print $2}' "$work/wrk.txt")
non2xx=$(awk '/Non-2xx/ {print $5}' "$work/wrk.txt")
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
echo
echo "GET /v1/tenant on PostgreSQL, $conns connections: ${rps} req/s, p50 ${p50}, p99 ${p99}, non-2xx ${non2xx:-0}, peak RSS $((rss_kb / 1024)) MiB"
