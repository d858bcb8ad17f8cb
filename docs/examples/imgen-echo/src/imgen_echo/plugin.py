"""The entry point of the imgen-echo plugin: registers the `echo` backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgen import hookimpl


@hookimpl
def register_backends(register: Callable[..., Any]) -> None:
    """Register `EchoImageGeneration` as `echo`, with the alias `echo-solid`."""
    # Imported inside the hook, so discovering the plugin costs next to nothing.
    from imgen_echo.model import EchoImageGeneration

    register(EchoImageGeneration, aliases={"echo-solid": "solid"})
