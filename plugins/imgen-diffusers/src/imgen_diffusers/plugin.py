"""The imgen plugin entry point: registers the `diffusers` backend.

Nothing heavy is imported here; the backend class is imported when the hook runs, and torch and
diffusers only when a model loads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgen import hookimpl


@hookimpl
def register_backends(register: Callable[..., Any]) -> None:
    """Register `DiffusersImageGeneration` under the name "diffusers"."""
    from imgen_diffusers.model import DiffusersImageGeneration

    register(DiffusersImageGeneration)
