"""imgen's own plugin: registers the built-in `fake` backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgen.hookspecs import hookimpl


@hookimpl
def register_backends(register: Callable[..., Any]) -> None:
    """Register `fake` (sync) and `fake-async`."""
    from imgen.testing.fake import AsyncFakeImageGeneration, FakeImageGeneration

    register(FakeImageGeneration)
    register(AsyncFakeImageGeneration)
