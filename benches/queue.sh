#!/usr/bin/env bash
# Training queue throughput: WORKERS concurrent workers (on PostgreSQL each
# with its own connection pool, as separate `llmops worker` processes would
# have; on SQLite sharing one, as workers inside `llmops serve` do) claim,
# heartbeat and finish JOBS jobs of 8 tenants, on PostgreSQL and on SQLite.
# Prints claims/s and claim latency (p50, p99, max) per database.
#
#   benches/queue.sh [workers=4] [jobs=2000]
#
# LLMOPS_PROFILE=dev runs the debug build (a smoke run).
set -euo pipefail
cd -P "$(dirname "$0")/.."
. scripts/lib.sh
workers=${1:-4}
jobs=${2:-2000}
work=$(mktemp -d /tmp/llmops-bench.XXXXXX)
chmod 755 "$work"
cleanup() {
  stop_pg "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT
bench_build -p llmops-training --example queue_bench
bench="$BENCH_DIR/examples/queue_bench"
start_pg "$work/pg"
"$bench" "$PG_URL" "$workers" "$jobs"
"$bench" "sqlite://$work/queue.db?mode=rwc" "$workers" "$jobs"
