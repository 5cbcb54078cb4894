#!/usr/bin/env bash
# Knowledge bases under load, in one run:
#  1. ingestion through the API on the local Triton (all-MiniLM-L6-v2 on the
#     CPU): the shipped corpus uploaded `copies` times, chunks/s from the
#     first upload to the last document ready, with the time spent embedding
#     (serving's histogram) shown apart from the rest of ingestion;
#  2. query latency through the API (embedding the query included), hybrid,
#     `queries` in a row: p50/p99;
#  3. the vector store alone (services/vectors/benches/store.rs): upserts/s,
#     query latency p50/p99 (dense and hybrid) at a fixed rate and at
#     saturation with `sizes` points, and the process's RSS, on qdrant-edge
#     and, with BENCH_QDRANT_URL set, on a Qdrant server.
#
#   benches/rag.sh [copies=4] [queries=200] [sizes=10000,100000]
#
# TRITON_URL=http://host:port uses a running Triton instead of starting one.
# LLMOPS_PROFILE=dev runs the debug build (smoke runs; figures mean nothing).
set -euo pipefail
cd -P "$(dirname "$0")/.."
. scripts/lib.sh
copies=${1:-4}
queries=${2:-200}
sizes=${3:-10000,100000}
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
# Embedded defaults: SQLite and qdrant-edge under the data directory.
export LLMOPS_DATA_DIR="$work/data" LLMOPS_LISTEN=127.0.0.1:0 LLMOPS_TRITON_URL="$TRITON_URL" \
       LLMOPS_LOG_FORMAT=json LLMOPS_TRAINING_CPU_SLOTS=0
"$bin" migrate >/dev/null
key=$(roomy_tenant "$bin" bench)
start_llmops "$bin" "$work/serve"
server=$LLMOPS_PID
url=$LLMOPS_BASE

python3 - "$url" "$key" "$copies" "$queries" <<'PY'
import glob, json, os, re, sys, time, urllib.request

url, key, copies, queries = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
H = {"Authorization": f"Bearer {key}", "content-type": "application/json"}

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, headers=H, method=method)
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())

def metric_sum(name, label=""):
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "_sum") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total

docs = sorted(p for p in glob.glob("tests/corpus/rag/*.md") if not p.endswith("README.md"))
kb = call("POST", "/v1/rag/knowledge_bases", {"name": "bench", "embedding_model": "all-minilm-l6-v2"})["id"]
embed0 = metric_sum("llm_request_duration_seconds", 'model="all-minilm-l6-v2"')
ingest0 = metric_sum("rag_ingest_seconds")
start = time.monotonic()
ids = []
for c in range(copies):
    for p in docs:
        text = open(p).read()
        d = call("POST", f"/v1/rag/knowledge_bases/{kb}/documents",
                 {"text": text, "content_type": "text/markdown", "external_id": f"{c}-{os.path.basename(p)}"})
        ids.append(d["id"])
chunks = 0
pending = set(ids)
while pending:
    for i in list(pending):
        d = call("GET", f"/v1/rag/knowledge_bases/{kb}/documents/{i}")
        if d["status"] == "ready":
            chunks += d["chunk_count"]
            pending.discard(i)
        elif d["status"] == "failed":
            sys.exit(f"document {i} failed: {d['error']}")
    if pending:
        time.sleep(0.2)
wall = time.monotonic() - start
embed = metric_sum("llm_request_duration_seconds", 'model="all-minilm-l6-v2"') - embed0
ingest = metric_sum("rag_ingest_seconds") - ingest0
print(f"ingestion: {len(ids)} documents, {chunks} chunks in {wall:.1f} s: {chunks / wall:.1f} chunks/s "
      f"(embedding {embed:.1f} s = {1000 * embed / max(chunks, 1):.1f} ms/chunk; workers busy {ingest:.1f} s in all)")

qs = json.load(open("tests/corpus/rag/questions.json"))
lat = []
for i in range(queries):
    t0 = time.monotonic()
    call("POST", f"/v1/rag/knowledge_bases/{kb}/query", {"query": qs[i % len(qs)]["question"], "top_k": 5})
    lat.append((time.monotonic() - t0) * 1000)
lat.sort()
p = lambda q: lat[min(len(lat) - 1, round(q * (len(lat) - 1)))]
print(f"query through the API ({chunks} chunks, hybrid, one at a time, embedding included): "
      f"p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms over {queries}")
PY
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
server=""

profile=${LLMOPS_PROFILE:-release}
log "the vector store alone ($profile)"
BENCH_SIZES="$sizes" BENCH_QUERIES="${BENCH_QUERIES:-2000}" \
  cargo bench --locked -q -p llmops-vectors --bench store --profile "$( [ "$profile" = dev ] && echo dev || echo bench )" 2>&1 \
  | grep -v '^\s*$'
