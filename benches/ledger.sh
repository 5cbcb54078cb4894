#!/usr/bin/env bash
# Ledger ingestion throughput on PostgreSQL: POST /admin/v1/usage/events with
# 100 new events per request (unique ids per request), wrk at 16 connections;
# each answer comes after the group commit that made its events durable.
#
#   benches/ledger.sh [connections=16] [duration_s=15]
set -euo pipefail
cd -P "$(dirname "$0")/.."
. scripts/lib.sh
conns=${1:-16}
duration=${2:-15}
command -v wrk >/dev/null || apt_install wrk >/dev/null
work=$(mktemp -d /tmp/llmops-bench.XXXXXX)
chmod 755 "$work"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  stop_pg "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT
bench_binary
bin="$BENCH_BIN"
start_pg "$work/pg"
export LLMOPS_DATABASE_URL="$PG_URL" LLMOPS_DATA_DIR="$work/data" LLMOPS_LISTEN=127.0.0.1:0 \
       LLMOPS_OPERATOR_TOKEN=bench-operator-token-0123456789 LLMOPS_LOG_FORMAT=json
tenant=$("$bin" tenants create --name bench --admin-email bench@bench.test \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["tenant_id"])')
start_llmops "$bin" "$work/serve"
server=$LLMOPS_PID
url=$LLMOPS_BASE
cat >"$work/ingest.lua" <<LUA
local counter = 0
local thread_tag = tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  local parts = {}
  for i = 1, 100 do
    parts[i] = string.format('{"id":"b-%s-%d-%d","tenant_id":"$tenant","meter":"output_tokens","quantity":3,"dimensions":{"model":"m"},"occurred_at":"2026-11-28T00:00:00Z"}', thread_tag, counter, i)
  end
  local body = '{"events":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/admin/v1/usage/events",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer bench-operator-token-0123456789"}, body)
end
LUA
wrk -t 1 -c "$conns" -d "${duration}s" --latency -s "$work/ingest.lua" "$url" | tee "$work/wrk.txt"
rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
rows=$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc 'select count(*) from usage_events')
echo
echo "ledger ingestion on PostgreSQL: ${rps} requests/s x 100 events = $(python3 -c "print(round($rps*100))") events/s acknowledged; rows in the ledger: $rows"
