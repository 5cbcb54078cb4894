#!/usr/bin/env bash
# Runs the whole test suite: starts a throw-away PostgreSQL cluster, a Redis
# server (both from Debian's packages, installed when missing) and an S3
# server (moto, from PyPI) and a Triton server with two small real models
# (infra/triton/local.sh; its first run builds llama-cpp-python, ~13 min),
# Debian's Chromium with playwright-core and axe-core from npm (the
# dashboard's browser test, whose screenshots stay in target/test-output/),
# runs every test against them, checks infra/ offline (infra/checks/*.sh),
# and stops what it started.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh ratelimit`).
set -euo pipefail
cd -P "$(dirname "$0")/.."
. scripts/lib.sh

work=$(mktemp -d /tmp/llmops-test.XXXXXX)
chmod 755 "$work"
cleanup() {
  stop_pg "$work/pg"
  stop_redis "$work/redis"
  stop_s3 "$work/s3"
  stop_triton "$work/triton"
  rm -rf "$work"
}
trap cleanup EXIT

start_pg "$work/pg"
start_redis "$work/redis"
start_s3 "$work/s3"
start_triton "$work/triton"
ensure_nginx
ensure_load_tools
ensure_oha
ensure_browser
# What tests keep for people to look at (the dashboard's screenshots and
# accessibility report): target/test-output/ unless set.
export TEST_OUTPUT_DIR="${TEST_OUTPUT_DIR:-$PWD/target/test-output}"
export TEST_PG_URL="$PG_URL" TEST_PG_BIN="$PG_BIN" TEST_PG_USER="$(pg_user)" TEST_REDIS_URL="$REDIS_URL" TEST_REDIS_TLS_URL="$REDIS_TLS_URL" TEST_REDIS_TLS_CA="$REDIS_TLS_CA" \
  TEST_S3_ENDPOINT="$S3_ENDPOINT" TEST_TRITON_URL="$TRITON_URL" TEST_SDK_PYTHON="$(sdk_python)" TEST_STRIPE_PYTHON="$(stripe_python)" \
  TEST_SMOLLM_GGUF="$(smollm_gguf)" TEST_TOKENIZER_PYTHON="$(tokenizer_python)" TEST_TOKENIZER_JSON="$(minilm_tokenizer)" TEST_MINILM_DIR="$(minilm_dir)" \
  TEST_CONTRACT_PYTHON="$(contract_python)" TEST_TRAIN_PYTHON="$(train_python)" TEST_PAIR_PYTHON="$(pair_python)" TEST_KUBE_PYTHON="$(kube_python)" \
  TEST_STATS_PYTHON="$(stats_python)" CHROMIUM="$CHROMIUM" TEST_OTEL_PYTHON="$(otel_python)"

log "building"
cargo build --locked --bin llmops
log "testing"
set +e
cargo test --locked --workspace --no-fail-fast -- "$@" 2>&1 | tee "$work/cargo-test.log"
status=${PIPESTATUS[0]}
# The Qdrant server half of the vector-store and RAG matrices (`qdrant_server`
# tests, ignored above) runs when TEST_QDRANT_URL names a server (its gRPC
# port, e.g. http://127.0.0.1:6334); none is installable here.
if [ -n "${TEST_QDRANT_URL:-}" ]; then
  log "testing the Qdrant server half against $TEST_QDRANT_URL"
  cargo test --locked --workspace --no-fail-fast -- --ignored qdrant_server "$@" 2>&1 | tee -a "$work/cargo-test.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  log "skipped: the Qdrant server half (qdrant_server tests); set TEST_QDRANT_URL to a Qdrant server's gRPC URL to run it"
fi
# The deployment files (infra/): Dockerfiles, the Helm chart and Terraform,
# checked offline (lint, render, Kubernetes schemas, checkov, fmt).
infra_failed=0
for check in infra/checks/docker.sh infra/checks/helm.sh infra/checks/terraform.sh; do
  log "checking ${check#infra/checks/}"
  if ! bash "$check"; then
    infra_failed=$((infra_failed + 1))
    status=1
  fi
done
set -e
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$work/cargo-test.log"
echo "infra checks: $((3 - infra_failed)) of 3 passed"
exit "$status"
