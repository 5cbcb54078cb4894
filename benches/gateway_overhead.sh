#!/usr/bin/env bash
# The gateway's own overhead on the inference path: POST /v1/chat/completions
# (auth, rate and token limits, catalog, upstream call, usage events on
# PostgreSQL) against an upstream that answers instantly, compared with
# calling that upstream directly. wrk, 64 connections.
#
#   benches/gateway_overhead.sh [connections=64] [duration_s=15]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
conns=${1:-64}
duration=${2:-15}
command -v wrk >/dev/null || apt_install wrk >/dev/null

work=$(mktemp -d /tmp/llmops-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_pg "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT

log "building release binaries"
cargo build --locked --release --bin llmops --bin instant-upstream >&2
bin="$CARGO_TARGET_DIR/release"
start_pg "$work/pg"

up_port=$(free_port)
"$bin/instant-upstream" "127.0.0.1:$up_port" >/dev/null 2>&1 &
pids+=($!)
cat >"$work/llmops.toml" <<TOML
[[catalog]]
id = "instant"
kind = "chat"
backend = "openai"
base_url = "http://127.0.0.1:$up_port/v1"
TOML
export LLMOPS_CONFIG="$work/llmops.toml" LLMOPS_DATABASE_URL="$PG_URL" LLMOPS_DATA_DIR="$work/data" \
       LLMOPS_LISTEN=127.0.0.1:0 LLMOPS_LOG_FORMAT=json
"$bin/llmops" plans create --id bench --requests-per-minute 10000000 --tokens-per-minute 1000000000 \
  --concurrent-requests 100000 >/dev/null
key=$("$bin/llmops" tenants create --name bench --admin-email bench@bench.test --plan bench \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
"$bin/llmops" serve >"$work/serve.out" 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 1 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^llmops listening on //p' "$work/serve.out" | head -n 1)

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"instant","messages":[{"role":"user","content":"hi"}],"max_tokens":8}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
curl -sf "$url/v1/chat/completions" -H "Authorization: Bearer $key" -H 'content-type: application/json' \
  -d '{"model":"instant","messages":[{"role":"user","content":"hi"}],"max_tokens":8}' >/dev/null

run() {
  wrk -t 1 -c "$conns" -d "${duration}s" --latency -s "$work/post.lua" "$1" >"$work/$2.txt"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$2.txt")
  p50=$(awk '$1=="50%" {print $2}' "$work/$2.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/$2.txt")
  echo "$2: ${rps} req/s, p50 ${p50}, p99 ${p99}, non-2xx $(awk '/Non-2xx/ {print $5}' "$work/$2.txt")"
}
log "direct to the instant upstream"
run "http://127.0.0.1:$up_port/v1/chat/completions" direct
log "through the gateway"
run "$url/v1/chat/completions" gateway
echo "gateway responses by status:"
curl -s "$url/metrics" | grep '^http_requests_total{method="POST",route="/v1/chat/completions"' || true
echo "usage events written: $(PGPASSWORD= psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc 'select count(*) from usage_events' 2>/dev/null || echo '?')"
