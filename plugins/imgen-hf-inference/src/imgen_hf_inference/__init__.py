"""imgen-hf-inference: the Hugging Face Inference backend for imgen.

The model class is imported on first access, so `import imgen_hf_inference` stays cheap and
never imports huggingface_hub.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgen_hf_inference.model import InferenceEndpointsImageGeneration, InferenceRequestError

__all__ = ["InferenceEndpointsImageGeneration", "InferenceRequestError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("imgen_hf_inference.model"), name)
    raise AttributeError(f"module 'imgen_hf_inference' has no attribute {name!r}")
