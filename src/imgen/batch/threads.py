"""Stream what a producer thread makes into the event loop, with back-pressure.

Sync models and Ray's blocking iterators run in a daemon thread that settles each item there
(the job writes its images) and hands the result to the loop. When the consumer stops
(Ctrl-C, an error), the thread is told to stop: a settle in progress is waited for, so no
file is left half-written, but a generate call in progress cannot be interrupted and is
abandoned, so the process need not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

__all__ = ["Produce", "stream_from_thread"]

R = TypeVar("R")
T = TypeVar("T")
Produce = Callable[[Callable[[R], None], threading.Event], None]
"""`produce(emit, stop)`: call `emit(item)` for each item; return early once `stop` is set."""

_POLL_SECONDS = 0.1


class _Stopped(Exception):
    """The consumer went away: the producer should stop."""


async def stream_from_thread(
    produce: Produce[R], settle: Callable[[R], T], buffer: int, name: str
) -> AsyncGenerator[T, None]:
    """Run `produce` in a daemon thread, settle each item it emits there, yield the results.

    Args:
        produce: The producer, see `Produce`. What it raises is raised here.
        settle: Applied to each item in the producer's thread.
        buffer: Settled items not yet consumed, at most; the producer waits for room.
        name: The thread's name.
    """
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
    room = threading.Semaphore(buffer)
    stop = threading.Event()
    settling = threading.Lock()

    def emit(item: R) -> None:
        with settling:
            if stop.is_set():
                raise _Stopped
            settled = settle(item)
        while not room.acquire(timeout=_POLL_SECONDS):
            if stop.is_set():
                raise _Stopped
        loop.call_soon_threadsafe(items.put_nowait, (False, settled))

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
        with settling:  # let a settle in progress finish its files
            pass
