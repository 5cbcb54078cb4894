#!/usr/bin/env bash
# Runs the platform on embedded defaults: SQLite under ./data, in-process rate
# limits, on 127.0.0.1:8080. Configure with llmops.toml or LLMOPS_* variables.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llmops/target}"
exec cargo run --locked --release --bin llmops -- serve "$@"
