"""The pluggy markers and the hooks a plugin may implement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["PROJECT", "hookimpl", "hookspec", "register_backends"]

PROJECT = "imgen"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backends(register: Callable[..., Any]) -> None:
    """Register the plugin's backends.

    Call `register(BackendClass, aliases={"short-name": "model-id"})` once per backend class.
    An alias resolves to that backend with the given model id.

    Args:
        register: The registration callback.
    """
