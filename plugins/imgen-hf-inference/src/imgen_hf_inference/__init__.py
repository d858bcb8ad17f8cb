"""imgen-hf-inference: the Hugging Face Inference backend for imgen.

Importing the package never imports huggingface_hub: the backend imports it in `load()`.
"""

from __future__ import annotations

from imgen_hf_inference.model import InferenceEndpointsImageGeneration, InferenceRequestError

__all__ = ["InferenceEndpointsImageGeneration", "InferenceRequestError"]
