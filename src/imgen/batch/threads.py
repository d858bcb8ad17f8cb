"""Stream what a producer thread makes into the event loop, with back-pressure.

Sync models and Ray's blocking iterators run in a daemon thread that hands each item to the
loop. When the consumer stops (Ctrl-C, an error), the thread is told to stop and is otherwise
abandoned: a generate call in progress cannot be interrupted, and the process need not wait
for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

__all__ = ["Produce", "stream_from_thread"]

T = TypeVar("T")
Produce = Callable[[Callable[[T], None], threading.Event], None]
"""`produce(emit, stop)`: call `emit(item)` for each item; return early once `stop` is set."""

_POLL_SECONDS = 0.1


class _Stopped(Exception):
    """The consumer went away while the producer waited for room."""


async def stream_from_thread(
    produce: Produce[T], buffer: int, name: str
) -> AsyncGenerator[T, None]:
    """Run `produce` in a daemon thread and yield what it emits, in order.

    Args:
        produce: The producer, see `Produce`. What it raises is raised here.
        buffer: Items made but not yet consumed at most; the producer waits for room.
        name: The thread's name.
    """
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
    room = threading.Semaphore(buffer)
    stop = threading.Event()

    def emit(item: T) -> None:
        while not room.acquire(timeout=_POLL_SECONDS):
            if stop.is_set():
                raise _Stopped
        loop.call_soon_threadsafe(items.put_nowait, (False, item))

    def run() -> None:
        failure: BaseException | None = None
        try:
            produce(emit, stop)
        except _Stopped:
            return
        except BaseException as exc:
            failure = exc
        # RuntimeError: the loop has closed, so nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(items.put_nowait, (True, failure))

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        while True:
            finished, value = await items.get()
            if finished:
                if value is not None:
                    raise value
                return
            room.release()
            yield value
    finally:
        stop.set()
