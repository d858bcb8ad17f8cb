"""The imgen plugin: registers the `hf-inference` backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgen import hookimpl


@hookimpl
def register_backends(register: Callable[..., Any]) -> None:
    """Register `InferenceEndpointsImageGeneration` as `hf-inference`.

    No aliases: a Hub model id names the model, and short names such as "flux-schnell" would
    collide with the local backends that serve the same weights.
    """
    from imgen_hf_inference.model import InferenceEndpointsImageGeneration

    register(InferenceEndpointsImageGeneration)
