"""Drives the official `openai` SDK, unmodified, against the Files and
Fine-tuning APIs of a running llmops gateway (base_url and api_key set;
`LLMOPS_BASE_MODEL` names a registered GGUF version, `LLMOPS_TRAIN_FILE` a
chat-format JSONL). No worker runs: the job stays queued until cancelled.
Exits non-zero on the first failed check. Used by
tests/tests/api/training_api.rs."""

import os
import sys

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["LLMOPS_BASE_URL"], api_key=os.environ["LLMOPS_API_KEY"],
                max_retries=0, timeout=60)
BASE = os.environ["LLMOPS_BASE_MODEL"]
TRAIN = os.environ["LLMOPS_TRAIN_FILE"]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


with open(TRAIN, "rb") as f:
    raw = f.read()
with open(TRAIN, "rb") as f:
    up = client.files.create(file=f, purpose="fine-tune")
check(up.object == "file" and up.purpose == "fine-tune" and up.bytes == len(raw), f"files.create {up}")
check(up.filename == os.path.basename(TRAIN), "the filename is kept")
check(client.files.retrieve(up.id).id == up.id, "files.retrieve")
check(up.id in [f.id for f in client.files.list()], "files.list")
check(client.files.content(up.id).read() == raw, "files.content returns the bytes")

try:
    client.files.create(file=("bad.jsonl", b'{"messages": []}\n'), purpose="fine-tune")
    check(False, "an invalid file is refused")
except openai.UnprocessableEntityError as e:
    check("line 1" in str(e.body), f"the refusal names the line: {e.body}")

job = client.fine_tuning.jobs.create(model=BASE, training_file=up.id, suffix="sdk", seed=3,
                                     hyperparameters={"n_epochs": 2, "batch_size": "auto"},
                                     metadata={"owner": "sdk-test"})
check(job.object == "fine_tuning.job" and job.status == "queued", f"fine_tuning.jobs.create {job.status}")
check(job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == 1, f"resolved {job.hyperparameters}")
check(job.training_file == up.id and job.model == BASE and job.seed == 3, "the job echoes its inputs")
check(client.fine_tuning.jobs.retrieve(job.id).id == job.id, "fine_tuning.jobs.retrieve")
check(job.id in [j.id for j in client.fine_tuning.jobs.list(limit=10)], "fine_tuning.jobs.list")
events = list(client.fine_tuning.jobs.list_events(job.id, limit=10))
check(events and events[0].object == "fine_tuning.job.event", f"list_events {events}")
check(any("Created fine-tuning job" in e.message for e in events), "the creation event")
check(list(client.fine_tuning.jobs.checkpoints.list(job.id)) == [], "checkpoints.list (none before training)")
paused = client.fine_tuning.jobs.pause(job.id)
check(paused.status == "paused", "fine_tuning.jobs.pause")
check(client.fine_tuning.jobs.resume(job.id).status == "queued", "fine_tuning.jobs.resume")
try:
    client.fine_tuning.jobs.create(model=BASE, training_file=up.id, method={"type": "dpo", "dpo": {}})
    check(False, "dpo is refused")
except openai.UnprocessableEntityError as e:
    check("dpo" in str(e.body), "an untrainable method is refused with the reason")
cancelled = client.fine_tuning.jobs.cancel(job.id)
check(cancelled.status == "cancelled", "fine_tuning.jobs.cancel")
try:
    client.fine_tuning.jobs.retrieve("ftjob_01jaaaaaaaaaaaaaaaaaaaaaaa")
    check(False, "an unknown job is 404")
except openai.NotFoundError:
    check(True, "an unknown job is 404")
deleted = client.files.delete(up.id)
check(deleted.deleted and deleted.id == up.id, "files.delete")
print("all SDK checks passed")
