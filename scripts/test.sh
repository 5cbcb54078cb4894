#!/usr/bin/env bash
# Runs the whole test suite: starts a throw-away PostgreSQL cluster and a
# Redis server (installing them from Debian's packages when missing), runs
# every test against them, and stops what it started.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh ratelimit`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

work=$(mktemp -d /tmp/llmops-test.XXXXXX)
chmod 755 "$work"
cleanup() {
  stop_pg "$work/pg"
  stop_redis "$work/redis"
  rm -rf "$work"
}
trap cleanup EXIT

start_pg "$work/pg"
start_redis "$work/redis"
export TEST_PG_URL="$PG_URL" TEST_PG_BIN="$PG_BIN" TEST_PG_USER="$(pg_user)" TEST_REDIS_URL="$REDIS_URL"

log "building"
cargo build --locked --bin llmops
log "testing"
cargo test --locked --workspace -- "$@"
