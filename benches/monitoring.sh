#!/usr/bin/env bash
# Drift detection at the default thresholds, on synthetic traffic
# (services/monitoring/benches/drift.rs): how often a report of unshifted
# windows says `drifted` (false alarms) and how often a known shift is
# caught (power), over many runs with fresh seeds, per scenario and window
# size, with 95% Wilson intervals and the time one analysis takes.
#
#   benches/monitoring.sh [runs=200]
#
# The recording side (inference p99 with monitoring on and off, records
# written and dropped under load) is in benches/overhead.sh.
# LLMOPS_PROFILE=dev runs the debug build (a smoke run; figures are
# meaningless).
set -euo pipefail
cd -P "$(dirname "$0")/.."
. scripts/lib.sh
runs=${1:-200}
profile=${LLMOPS_PROFILE:-release}
log "drift detection over $runs runs per scenario ($profile)"
cargo bench --locked -q -p llmops-monitoring --bench drift \
  --profile "$( [ "$profile" = dev ] && echo dev || echo bench )" -- "$runs" 2>&1 | grep -v '^\s*$'
