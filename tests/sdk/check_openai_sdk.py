"""Drives the official `openai` SDK, unmodified, against a running llmops
gateway (only base_url and api_key set). Exits non-zero on the first
failed check. Used by tests/tests/api/serving.rs."""

import math
import os
import sys

import openai
from openai import OpenAI

base_url = os.environ["LLMOPS_BASE_URL"]
key = os.environ["LLMOPS_API_KEY"]
client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)
CHAT = "smollm2-135m-instruct"
EMB = "all-minilm-l6-v2"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


ids = [m.id for m in client.models.list()]
check(CHAT in ids and EMB in ids, f"models.list has both models: {ids}")
check(client.models.retrieve(CHAT).id == CHAT, "models.retrieve")

msgs = [{"role": "user", "content": "Name three colors."}]
a = client.chat.completions.create(model=CHAT, messages=msgs, max_tokens=24, temperature=0, seed=7)
b = client.chat.completions.create(model=CHAT, messages=msgs, max_tokens=24, temperature=0, seed=7)
text = a.choices[0].message.content
check(a.object == "chat.completion" and len(text) > 0, f"chat completion: {text!r}")
check(text == b.choices[0].message.content, "temperature 0 with a seed is deterministic")
check(a.usage.completion_tokens > 0 and a.usage.prompt_tokens > 0
      and a.usage.total_tokens == a.usage.prompt_tokens + a.usage.completion_tokens, f"usage {a.usage}")
check(a.choices[0].finish_reason in ("stop", "length"), "finish_reason")

stream = client.chat.completions.create(model=CHAT, messages=msgs, max_tokens=24, temperature=0, seed=7,
                                        stream=True, stream_options={"include_usage": True})
parts, usage, finish = [], None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        if c.delta.content:
            parts.append(c.delta.content)
        if c.finish_reason:
            finish = c.finish_reason
check("".join(parts) == text, f"the stream carries the same text: {''.join(parts)!r}")
check(usage is not None and usage.completion_tokens == a.usage.completion_tokens, f"stream usage {usage}")
check(finish == a.choices[0].finish_reason, "stream finish_reason")

comp = client.completions.create(model=CHAT, prompt="The sky is", max_tokens=8, temperature=0, seed=1)
check(comp.object == "text_completion" and comp.usage.completion_tokens > 0, f"completion {comp.choices[0].text!r}")
streamed = "".join(c.choices[0].text for c in client.completions.create(
    model=CHAT, prompt="The sky is", max_tokens=8, temperature=0, seed=1, stream=True) if c.choices)
check(streamed == comp.choices[0].text, "streamed completion matches")

emb = client.embeddings.create(model=EMB, input=["A man is eating food.", "A man is eating a piece of bread.",
                                                  "The stock market fell sharply today."])
vecs = [d.embedding for d in emb.data]
check(len(vecs) == 3 and all(len(v) == 384 for v in vecs), "three 384-dim embeddings")
norm = [math.sqrt(sum(x * x for x in v)) for v in vecs]
check(all(abs(n - 1) < 1e-3 for n in norm), f"normalised {norm}")
cos = lambda u, v: sum(x * y for x, y in zip(u, v))
close, far = cos(vecs[0], vecs[1]), cos(vecs[0], vecs[2])
check(close > 0.6 and far < 0.2 and close > far + 0.4, f"paraphrases close ({close:.3f}), unrelated far ({far:.3f})")
check(emb.usage.prompt_tokens > 0, "embedding usage")
single = client.embeddings.create(model=EMB, input="hello", encoding_format="float")
check(len(single.data) == 1 and len(single.data[0].embedding) == 384, "float encoding, string input")

try:
    client.chat.completions.create(model="no-such-model", messages=msgs)
    check(False, "unknown model raises")
except openai.NotFoundError as e:
    check(e.status_code == 404, "unknown model is NotFoundError")
try:
    OpenAI(base_url=base_url, api_key="sk-llmops-" + "x" * 48, max_retries=0).models.list()
    check(False, "bad key raises")
except openai.AuthenticationError as e:
    check(e.status_code == 401, "bad key is AuthenticationError")
try:
    client.chat.completions.create(model=CHAT, messages=msgs, temperature=5)
    check(False, "bad temperature raises")
except openai.UnprocessableEntityError as e:
    check(e.status_code == 422, "invalid argument is UnprocessableEntityError")
print("all SDK checks passed")
