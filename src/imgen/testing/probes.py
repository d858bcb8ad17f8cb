"""What the conformance kit puts on a live model: counters, spies, settings held for a block,
and a look at the tasks left on its event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from imgen.base import AsyncImageGenerationModel, ImageGenerationModel

__all__ = [
    "SYNC_BACKEND",
    "Agenerate",
    "InFlight",
    "async_only",
    "fast_backoff",
    "tasks_left",
    "temporarily",
    "wrap_agenerate",
]

SYNC_BACKEND = "sync backend: the async engine's limits do not apply"


Agenerate = Callable[..., Awaitable[Any]]


class InFlight:
    """Counts entries into a block: how many now, the most at once, and in all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = self.peak = self.total = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self.now -= 1


def async_only(model: ImageGenerationModel) -> AsyncImageGenerationModel:
    if not isinstance(model, AsyncImageGenerationModel):
        pytest.skip(SYNC_BACKEND)
    return model


def wrap_agenerate(
    monkeypatch: pytest.MonkeyPatch,
    model: AsyncImageGenerationModel,
    around: Callable[[Agenerate, Any, Any], Awaitable[Any]],
) -> None:
    """Route every agenerate call of the model's class through `around(real, args, kwargs)`."""
    real = type(model).agenerate

    @functools.wraps(real)  # keeps the signature the core validates kwargs against
    async def spy(*args: Any, **kwargs: Any) -> Any:
        return await around(real, args, kwargs)

    monkeypatch.setattr(type(model), "agenerate", spy)


def fast_backoff(monkeypatch: pytest.MonkeyPatch, model: AsyncImageGenerationModel) -> None:
    monkeypatch.setattr(type(model), "retry_initial_delay", 0.001)
    monkeypatch.setattr(type(model), "retry_max_delay", 0.001)


@contextlib.contextmanager
def temporarily(model: ImageGenerationModel, **values: Any) -> Iterator[None]:
    """Set fields for the block, then set them back: the model may be shared by other tests."""
    saved = {name: getattr(model, name) for name in values}
    try:
        for name, value in values.items():
            setattr(model, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(model, name, value)


def tasks_left(model: AsyncImageGenerationModel, grace: float = 1.0) -> list[str]:
    """The tasks on the model's own event loop, once cancellation had `grace` seconds to act."""

    async def others() -> list[str]:
        current = asyncio.current_task()
        return [repr(task.get_coro()) for task in asyncio.all_tasks() if task is not current]

    deadline = time.monotonic() + grace
    while True:
        left: list[str] = model.run_on_own_loop(others())
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.01)
