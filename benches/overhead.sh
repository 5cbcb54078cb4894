#!/usr/bin/env bash
# The gateway's own overhead on the inference path, side by side in one run:
# POST /v1/chat/completions straight to an upstream that answers at once
# (nginx, a fixed streamed completion) and through `llmops serve` (API-key
# auth, request/token/concurrency limits, catalog, upstream call, usage
# metering into the ledger, a monitoring record per call), on SQLite
# (embedded defaults) and on PostgreSQL, each with monitoring on and off;
# then in split mode (a gateway forwarding to a serving process).
#
# - fixed rate: oha at RATE requests/s, evenly spaced over CONNS
#   connections, for SECONDS, latency counted from when each request was
#   due: p50, p90, p99 and the p99 the gateway adds over a direct run made
#   just before it (after a warm-up run);
# - saturation: wrk with 64 connections for SECONDS: requests/s.
#
#   benches/overhead.sh [rate=5000] [seconds=10] [conns=50]
#
# BEFORE=/path/to/an/older/llmops adds its rows to the same run (before vs
# after on the same machine, same load). LLMOPS_PROFILE=dev measures the
# debug build (a smoke run; figures are meaningless).
set -euo pipefail
cd -P "$(dirname "$0")/.."
. scripts/lib.sh
rate=${1:-5000}
seconds=${2:-10}
conns=${3:-50}
per_conn=$(( (rate + conns - 1) / conns ))
tool=${FIXED_TOOL:-oha}
if [ "$tool" = oha ]; then ensure_oha; else command -v hey >/dev/null || apt_install hey >/dev/null; fi
command -v wrk >/dev/null || apt_install wrk >/dev/null

bench_binary
after="$BENCH_BIN"

work=$(mktemp -d /tmp/llmops-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_pg "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT

start_upstream_nginx "$work/nginx"
pids+=("$UPSTREAM_PID")
start_pg "$work/pg"
body='{"model":"instant","messages":[{"role":"user","content":"hi"}],"max_tokens":8}'
printf '[[catalog]]\nid = "instant"\nkind = "chat"\nbackend = "openai"\nbase_url = "%s"\n' "$UPSTREAM_URL" >"$work/llmops.toml"

# The fixed rate: "p50 p90 p99 (ms) rps non-2xx". oha spaces requests
# evenly (one rate for all connections, latency measured from when each
# request was due); hey (FIXED_TOOL=hey) ticks its connections in step,
# which sends bursts of CONNS requests.
fixed() {
  local url=$1 auth=$2 out
  if [ "$tool" = oha ]; then
    out=$("$OHA" -z "${seconds}s" -c "$conns" -q "$rate" --latency-correction --no-tui \
          --output-format json -m POST -T application/json \
          -H "Authorization: Bearer $auth" -d "$body" "$url")
    echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
p = r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
# Requests still in flight when the duration ends are aborted by oha, not
# failed by the server.
errors = {e: n for e, n in r.get("errorDistribution", {}).items() if "deadline" not in e}
bad = sum(n for c, n in codes.items() if not c.startswith("2")) + sum(errors.values())
print("%.2f %.2f %.2f %.0f %d" % (p["p50"] * 1000, p["p90"] * 1000, p["p99"] * 1000, r["summary"]["requestsPerSec"], bad))'
    return
  fi
  out=$(hey -z "${seconds}s" -c "$conns" -q "$per_conn" -m POST -T application/json \
        -H "Authorization: Bearer $auth" -d "$body" "$url")
  echo "$out" | awk '
    /Requests\/sec/ { rps = $2 }
    / 50% in/ { p50 = $3 } / 90% in/ { p90 = $3 } / 99% in/ { p99 = $3 }
    /^\s*\[[0-9]+\]/ { code = substr($1, 2, 3); if (code !~ /^2/) bad += $2 }
    END { printf "%.2f %.2f %.2f %.0f %d\n", p50 * 1000, p90 * 1000, p99 * 1000, rps, bad }'
}

# wrk at saturation: "rps p50 p99 (ms)"
saturate() {
  local url=$1 auth=$2
  cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $auth"
LUA
  wrk -t 1 -c 64 -d "${seconds}s" --latency -s "$work/post.lua" "$url" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }'
}

# serve BIN DBURL NAME: starts llmops on the database; sets URL, KEY.
serve() {
  local bin=$1 db=$2 name=$3
  export LLMOPS_CONFIG="$work/llmops.toml" LLMOPS_DATABASE_URL="$db" LLMOPS_DATA_DIR="$work/data-$name" \
         LLMOPS_LISTEN=127.0.0.1:0 LLMOPS_LOG_FORMAT=json
  KEY=$(roomy_tenant "$bin" "bench-$name")
  start_llmops "$bin" "$work/$name"
  SERVER=$LLMOPS_PID
  pids+=("$SERVER")
  URL="$LLMOPS_BASE/v1/chat/completions"
  curl -sf "$URL" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' -d "$body" >/dev/null
}

rows=()
records=()
row() { rows+=("$(printf '%-28s %8s %8s %8s %9s %8s %6s %10s' "$@")"); }

direct="$UPSTREAM_URL/chat/completions"
bins=("after:$after")
[ -n "${BEFORE:-}" ] && bins=("before:$BEFORE" "${bins[@]}")
for entry in "${bins[@]}"; do
  label=${entry%%:*}
  bin=${entry#*:}
  for db in sqlite postgres; do
    name="$label-$db"
    if [ "$db" = sqlite ]; then dburl="sqlite://$work/data-$name/llmops.db?mode=rwc"; mkdir -p "$work/data-$name"
    else
      dbname="bench_${label}"
      as_pg "$PG_BIN/psql" -h "$work/pg" -p "$PG_PORT" -U postgres -qc "CREATE DATABASE $dbname" >/dev/null
      dburl="postgres://postgres@127.0.0.1:$PG_PORT/$dbname"
    fi
    # With monitoring (the default: a record per call, written in batches)
    # and without it (LLMOPS_MONITORING_ENABLED=false), side by side.
    for mon in on off; do
      suffix=""
      [ "$mon" = off ] && suffix=", no monitoring"
      export LLMOPS_MONITORING_ENABLED=$([ "$mon" = on ] && echo true || echo false)
      serve "$bin" "$dburl" "$name-$mon"
      # Each gateway run is measured right after a direct run, and compared
      # with it: the machine's own noise moves both.
      log "$name (monitoring $mon) at $rate/s, direct then through the gateway"
      fixed "$URL" "$KEY" >/dev/null
      read -r d50 d90 d99 drps dbad < <(fixed "$direct" none)
      read -r g50 g90 g99 grps gbad < <(fixed "$URL" "$KEY")
      read -r sd _ _ < <(saturate "$direct" none)
      read -r sg _ _ < <(saturate "$URL" "$KEY")
      added=$(awk -v a="$g99" -v b="$d99" 'BEGIN { printf "%.2f", a - b }')
      row "direct (for $name$suffix)" "$d50" "$d90" "$d99" "-" "$drps" "$dbad" "$sd"
      row "gateway $name$suffix" "$g50" "$g90" "$g99" "$added" "$grps" "$gbad" "$sg"
      if [ "$mon" = on ]; then
        sleep 2
        counters=$(curl -sf "$LLMOPS_BASE/metrics" | awk '
          /^llmops_monitoring_records_written_total / { w = $2 }
          /^llmops_monitoring_records_dropped_total / { d = $2 }
          /^llmops_monitoring_records_lost_total / { l = $2 }
          END { printf "written %d, dropped %d, lost %d", w, d, l }')
        records+=("monitoring records of $name: $counters")
      fi
      kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
    done
    unset LLMOPS_MONITORING_ENABLED
  done
done

# Split mode (PostgreSQL, monitoring on, the newest build): the gateway
# (with every other service) forwards each call to a serving process of its
# own, one HTTP hop more than the single process; compared with a direct
# run made just before, as above.
name="after-split"
as_pg "$PG_BIN/psql" -h "$work/pg" -p "$PG_PORT" -U postgres -qc "CREATE DATABASE bench_split" >/dev/null
export LLMOPS_CONFIG="$work/llmops.toml" LLMOPS_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/bench_split" \
       LLMOPS_LISTEN=127.0.0.1:0 LLMOPS_LOG_FORMAT=json LLMOPS_DATA_DIR="$work/data-split-serving" \
       LLMOPS_INTERNAL_SECRET="bench-internal-secret-$(date +%s%N)-0123456789"
KEY=$(roomy_tenant "$after" "bench-split")
start_llmops "$after" "$work/split-serving" --services serving
SERVING=$LLMOPS_PID
pids+=("$SERVING")
serving_base=$LLMOPS_BASE
LLMOPS_DATA_DIR="$work/data-split-gateway" LLMOPS_SERVICE_URLS="{serving=\"$serving_base\"}" \
  start_llmops "$after" "$work/split-gateway" --services gateway,registry,billing,training,rag,monitoring
pids+=("$LLMOPS_PID")
URL="$LLMOPS_BASE/v1/chat/completions"
curl -sf "$URL" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' -d "$body" >/dev/null
log "$name at $rate/s, direct then through the gateway and the serving service"
fixed "$URL" "$KEY" >/dev/null
read -r d50 d90 d99 drps dbad < <(fixed "$direct" none)
read -r g50 g90 g99 grps gbad < <(fixed "$URL" "$KEY")
read -r sd _ _ < <(saturate "$direct" none)
read -r sg _ _ < <(saturate "$URL" "$KEY")
added=$(awk -v a="$g99" -v b="$d99" 'BEGIN { printf "%.2f", a - b }')
row "direct (for $name)" "$d50" "$d90" "$d99" "-" "$drps" "$dbad" "$sd"
row "gateway $name" "$g50" "$g90" "$g99" "$added" "$grps" "$gbad" "$sg"
sleep 2
# The serving process writes the records of the calls it served.
counters=$(curl -sf "$serving_base/metrics" | awk '
  /^llmops_monitoring_records_written_total / { w = $2 }
  /^llmops_monitoring_records_dropped_total / { d = $2 }
  /^llmops_monitoring_records_lost_total / { l = $2 }
  END { printf "written %d, dropped %d, lost %d", w, d, l }')
records+=("monitoring records of $name: $counters")
unset LLMOPS_INTERNAL_SECRET

echo
echo "POST /v1/chat/completions: fixed rate $rate/s ($conns connections, ${seconds} s, $tool); saturation: wrk, 64 connections"
printf '%-28s %8s %8s %8s %9s %8s %6s %10s\n' "" "p50 ms" "p90 ms" "p99 ms" "+p99 ms" "req/s" "non2xx" "max req/s"
for r in "${rows[@]}"; do echo "$r"; done
for r in "${records[@]}"; do echo "$r"; done
