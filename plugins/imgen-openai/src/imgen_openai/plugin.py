"""The imgen plugin: registers the `openai` backend and its model aliases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgen import hookimpl

# Each alias resolves to the `openai` backend with the model id of the same name.
MODEL_ALIASES = {name: name for name in ("dall-e-2", "dall-e-3", "gpt-image-1")}


@hookimpl
def register_backends(register: Callable[..., Any]) -> None:
    """Register `OpenAIImageGeneration` as `openai`, with its model aliases."""
    from imgen_openai.model import OpenAIImageGeneration

    register(OpenAIImageGeneration, aliases=MODEL_ALIASES)
