"""imgen-openai: the OpenAI Images backend for imgen.

Importing the package never imports the openai SDK: the backend imports it in `load()`.
"""

from __future__ import annotations

from imgen_openai.model import OpenAIImageGeneration, OpenAIRequestError

__all__ = ["OpenAIImageGeneration", "OpenAIRequestError"]
