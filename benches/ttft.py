"""Time to first token and tokens/s of SmolLM2 on the local Triton: through
the gateway (openai SDK, streamed) or directly over gRPC (tritonclient),
same prompt and settings. Prints p50 and p90 over N runs.

  python ttft.py gateway BASE_URL API_KEY [N]
  python ttft.py direct GRPC_HOST:PORT [N]
"""

import statistics
import sys
import time

PROMPT = "Write a short poem about the sea."
CHATML = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
          f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n")
MAX = 64


def report(name, ttfts, rates):
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]
    print(f"{name}: TTFT p50 {statistics.median(ttfts) * 1000:.1f} ms, p90 {q(ttfts, 0.9) * 1000:.1f} ms; "
          f"decode p50 {statistics.median(rates):.1f} tokens/s over {len(ttfts)} runs")


def gateway(base, key, n):
    from openai import OpenAI
    c = OpenAI(base_url=base, api_key=key, max_retries=0)
    ttfts, rates = [], []
    for i in range(n + 1):
        t0 = time.perf_counter()
        first = None
        usage = None
        for chunk in c.chat.completions.create(model="smollm2-135m-instruct", max_tokens=MAX, temperature=0.7,
                                               seed=i, stream=True, stream_options={"include_usage": True},
                                               messages=[{"role": "user", "content": PROMPT}]):
            if chunk.usage:
                usage = chunk.usage
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
        end = time.perf_counter()
        if i == 0:
            continue  # warm-up
        ttfts.append(first - t0)
        rates.append((usage.completion_tokens - 1) / max(end - first, 1e-6))
    report("gateway", ttfts, rates)


def direct(url, n):
    import queue
    import numpy as np
    import tritonclient.grpc as g
    c = g.InferenceServerClient(url)
    ttfts, rates = [], []
    for i in range(n + 1):
        q = queue.Queue()
        c.start_stream(callback=lambda result, error: q.put((result, error)))
        inputs = []
        for name, dtype, value in [("PROMPT", "BYTES", np.array([CHATML.encode()], dtype=np.object_)),
                                   ("MAX_TOKENS", "INT32", np.array([MAX], dtype=np.int32)),
                                   ("TEMPERATURE", "FP32", np.array([0.7], dtype=np.float32)),
                                   ("SEED", "INT64", np.array([i], dtype=np.int64))]:
            t = g.InferInput(name, [1], dtype)
            t.set_data_from_numpy(value)
            inputs.append(t)
        t0 = time.perf_counter()
        c.async_stream_infer("smollm2-135m-instruct", inputs)
        first, tokens = None, 0
        while True:
            result, error = q.get()
            if error:
                raise error
            text = result.as_numpy("TEXT")[0]
            if first is None and text:
                first = time.perf_counter()
            if result.as_numpy("FINISH_REASON")[0]:
                tokens = int(result.as_numpy("COMPLETION_TOKENS")[0])
                break
        end = time.perf_counter()
        c.stop_stream()
        if i == 0:
            continue
        ttfts.append(first - t0)
        rates.append((tokens - 1) / max(end - first, 1e-6))
    report("direct gRPC", ttfts, rates)


if __name__ == "__main__":
    if sys.argv[1] == "gateway":
        gateway(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 20)
    else:
        direct(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 20)
