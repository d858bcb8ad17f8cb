"""imgen-openai: the OpenAI Images backend for imgen.

The model class is imported on first access, so `import imgen_openai` stays cheap and never
imports the openai SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgen_openai.model import OpenAIImageGeneration, OpenAIRequestError

__all__ = ["OpenAIImageGeneration", "OpenAIRequestError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("imgen_openai.model"), name)
    raise AttributeError(f"module 'imgen_openai' has no attribute {name!r}")
