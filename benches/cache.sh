#!/usr/bin/env bash
# The response cache, in one run:
#  1. the adversarial pair set (tests/corpus/cache/pairs-<split>.json)
#     through the semantic level's decision: raw cosine thresholds beside
#     the guard alone and the guard with the learned judge (the default
#     decision), true- and false-hit rates with 95% intervals, per kind
#     (services/cache/benches/cache.rs `pairs`; `final` is the held-out set),
#     then the held-out labelled neighbours (other questions that lie close,
#     tests/corpus/cache/neighbours-heldout.json; `labelled`);
#  2. the encoder alone (services/encoder/benches/encode.rs): one pass by
#     sequence length with f32 and bf16 weights, on one thread and two, and
#     the bf16 sentence vectors' cosine with the f32 ones (`lookups` runs);
#     then lookups in-process (SemanticCache on SQLite, the in-process entry
#     store, qdrant-edge, all-MiniLM-L6-v2 in llmops-encoder): exact hits, semantic
#     hits (embedding included) and misses, p50/p99 at a fixed rate and at
#     saturation, and the embedding alone (`latency`);
#  3. through the gateway on the local Triton, side by side: the SmolLM2
#     call a miss makes, an exact hit and a semantic hit, one at a time
#     (p50/p99 over `calls`).
#
#   benches/cache.sh [split=final] [lookups=200] [calls=20]
#
# BENCH_LIMIT=N evaluates only the first N pairs (smoke runs).
# TRITON_URL=http://host:port uses a running Triton instead of starting one.
# LLMOPS_PROFILE=dev runs the debug build (smoke runs; figures mean nothing).
set -euo pipefail
cd -P "$(dirname "$0")/.."
. scripts/lib.sh
split=${1:-final}
lookups=${2:-200}
calls=${3:-20}
work=$(mktemp -d /tmp/llmops-bench.XXXXXX)
chmod 755 "$work"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  stop_triton "$work/triton"
  rm -rf "$work"
}
trap cleanup EXIT

bench_binary
bin="$BENCH_BIN"
if [ -n "${TRITON_URL:-}" ]; then
  log "using the Triton at $TRITON_URL"
else
  start_triton "$work/triton"
fi
LLMOPS_CACHE_EMBEDDING_DIR=$(minilm_dir)
export LLMOPS_CACHE_EMBEDDING_DIR

profile=${LLMOPS_PROFILE:-release}
log "the pair set, the encoder and in-process lookups ($profile)"
cargo_profile=$( [ "$profile" = dev ] && echo dev || echo bench )
# shellcheck disable=SC2086
cargo bench --locked -q -p llmops-cache --bench cache --profile "$cargo_profile" -- pairs $split 2>&1 | grep -v '^\s*$'
cargo bench --locked -q -p llmops-cache --bench cache --profile "$cargo_profile" -- labelled heldout 2>&1 | grep -v '^\s*$'
cargo bench --locked -q -p llmops-encoder --bench encode --profile "$cargo_profile" -- "$lookups" 2>&1 | grep -v '^\s*$'
cargo bench --locked -q -p llmops-cache --bench cache --profile "$cargo_profile" -- latency "$lookups" 2>&1 | grep -v '^\s*$'

log "through the gateway ($profile)"
export LLMOPS_DATA_DIR="$work/data" LLMOPS_LISTEN=127.0.0.1:0 LLMOPS_TRITON_URL="$TRITON_URL" \
       LLMOPS_LOG_FORMAT=json LLMOPS_TRAINING_CPU_SLOTS=0
"$bin" migrate >/dev/null
key=$(roomy_tenant "$bin" bench)
start_llmops "$bin" "$work/serve"
server=$LLMOPS_PID
url=$LLMOPS_BASE

python3 - "$url" "$key" "$calls" <<'PY'
import json, sys, time, urllib.request

url, key, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
H = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
pairs = [p for p in json.load(open("tests/corpus/cache/pairs-dev.json")) if p["same"]]

def chat(text):
    body = {"model": "smollm2-135m-instruct", "temperature": 0, "max_tokens": 32,
            "messages": [{"role": "user", "content": text}]}
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(), headers=H)
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
        return (time.monotonic() - t0) * 1000, r.headers.get("x-llmops-cache")

# Answers of 32 tokens are mostly cut at max_tokens: cache them too.
req = urllib.request.Request(url + "/v1/cache/settings", data=json.dumps({"cache_truncated": True}).encode(),
                             headers=H, method="PATCH")
urllib.request.urlopen(req, timeout=30).read()

# Wait for the models (Triton may still be loading them).
for _ in range(600):
    try:
        chat("ping")
        break
    except Exception:
        time.sleep(0.5)

rows = {}
for p in pairs[:calls]:
    for kind, text in (("miss (the SmolLM2 call)", p["a"]), ("exact hit", p["a"]), ("paraphrase", p["b"])):
        if kind == "exact hit":
            time.sleep(0.3)  # the miss's answer is stored in the background
        ms, outcome = chat(text)
        rows.setdefault(kind, []).append((ms, outcome))

def q(v, f):
    v = sorted(v)
    return v[min(len(v) - 1, round(f * (len(v) - 1)))]

print(f"through the gateway, one call at a time, max_tokens 32, {calls} prompts of pairs-dev.json:")
print("| call | outcomes | p50 ms | p99 ms |")
print("|---|---|---|---|")
for kind, v in rows.items():
    outs = {}
    for _, o in v:
        outs[o] = outs.get(o, 0) + 1
    ms = [m for m, _ in v]
    print(f"| {kind} | {', '.join(f'{k} {n}' for k, n in sorted(outs.items()))} | {q(ms, .5):.1f} | {q(ms, .99):.1f} |")
PY
