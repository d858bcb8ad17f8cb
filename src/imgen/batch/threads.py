"""Stream what a producer thread makes into the event loop, settled on the way.

Sync models and Ray's blocking iterators run in a daemon thread. Each item it emits is settled
(the job writes its images) in a second thread, so writing one row overlaps generating the
next, and the results are handed to the loop, which is woken once for whatever piled up since
it last looked rather than once per item.

When the consumer stops (Ctrl-C, an error), the producer emits nothing more, and what it
emitted before is still settled and waited for: images already made are written, not made
again by the next run, and no file is left half-written. A producer that can be interrupted
(a sync model's `interrupt`) is interrupted and waited for: a process that exits while a native
library (torch) still computes in one of its threads may abort. Any other producer is
abandoned, so the process need not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import AsyncGenerator, Callable
from typing import Any, Generic, TypeVar

__all__ = ["Produce", "Unclaimed", "stream_from_thread"]

K = TypeVar("K")
R = TypeVar("R")
T = TypeVar("T")
Produce = Callable[[Callable[[R], None], threading.Event], None]
"""`produce(emit, stop)`: call `emit(item)` for each item; return early once `stop` is set."""

_POLL_SECONDS = 0.1
# How long an interrupted producer may take before the wait for it is reported.
_QUIET_WAIT_SECONDS = 1.0

logger = logging.getLogger("imgen.batch")


class _Stopped(Exception):
    """The consumer went away: the producer should stop."""


class Unclaimed(Generic[K, T]):
    """What a settle made durable that the loop has not taken yet, by key; thread-safe.

    A stream that stops drops the results it has not yielded, but their settle already wrote
    them: the job claims them here to commit them anyway.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[K, T] = {}

    def put(self, key: K, value: T) -> None:
        """From the settling thread: `value` is done."""
        with self._lock:
            self._items[key] = value

    def take(self, key: K) -> T:
        """The value of `key`, which the loop now owns."""
        with self._lock:
            return self._items.pop(key)

    def take_all(self) -> list[T]:
        """Every value not taken yet, in the order they were put."""
        with self._lock:
            values, self._items = list(self._items.values()), {}
        return values


class _Handoff:
    """Items passed from a thread to the loop, waking the loop once per pile."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pile: list[tuple[bool, Any]] = []
        self._ready = asyncio.Event()

    def put(self, finished: bool, value: Any) -> None:
        """From another thread: add an item, or the end (`value` is its failure or None)."""
        with self._lock:
            self._pile.append((finished, value))
            first = len(self._pile) == 1
        if first:
            self._loop.call_soon_threadsafe(self._ready.set)

    async def take(self) -> list[tuple[bool, Any]]:
        """On the loop: everything added since the last take, waiting for at least one."""
        await self._ready.wait()
        self._ready.clear()
        with self._lock:
            pile, self._pile = self._pile, []
        return pile


async def stream_from_thread(
    produce: Produce[R],
    settle: Callable[[R], T],
    buffer: int,
    name: str,
    interrupt: Callable[[], None] | None = None,
) -> AsyncGenerator[T, None]:
    """Run `produce` in a daemon thread, settle what it emits in another, yield the results.

    Args:
        produce: The producer, see `Produce`. What it raises is raised here.
        settle: Applied to each item in order, in a thread of its own. What it raises is
            raised here.
        buffer: Items emitted but not yet consumed, at most; the producer waits for room.
        name: The name of the threads.
        interrupt: Stops the producer's work in progress. When given, a consumer that stops
            early interrupts the producer and waits for its thread to end.
    """
    handoff = _Handoff(asyncio.get_running_loop())
    emitted: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
    room = threading.Semaphore(buffer)
    stop = threading.Event()
    settled = threading.Event()

    def emit(item: R) -> None:
        # Checked before and after waiting for room: what a producer makes once the consumer
        # has stopped (the outcome of an interrupted call, say) is not settled.
        while stop.is_set() or not room.acquire(timeout=_POLL_SECONDS):
            if stop.is_set():
                raise _Stopped
        emitted.put((False, item))

    def run_producer() -> None:
        failure: BaseException | None = None
        try:
            produce(emit, stop)
        except _Stopped:
            pass
        except BaseException as exc:
            failure = exc
        emitted.put((True, failure))

    def next_emitted() -> tuple[bool, Any] | None:
        """The next item; once stopped, only what is already there (None: nothing left)."""
        while True:
            try:
                return emitted.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if stop.is_set():
                    return None

    def run_settler() -> None:
        finished = False
        try:
            while not finished and (item := next_emitted()) is not None:
                finished, value = item
                if not finished:
                    try:
                        value = settle(value)
                    except BaseException as exc:
                        finished, value = True, exc
                # RuntimeError: the loop has closed, so nobody is listening any more.
                with contextlib.suppress(RuntimeError):
                    handoff.put(finished, value)
        finally:
            settled.set()

    producer = threading.Thread(target=run_producer, name=name, daemon=True)
    producer.start()
    threading.Thread(target=run_settler, name=f"{name}-settle", daemon=True).start()
    completed = False
    try:
        while True:
            for finished, value in await handoff.take():
                if finished:
                    if value is not None:
                        raise value
                    completed = True
                    return
                room.release()
                yield value
    finally:
        stop.set()
        if interrupt is not None and not completed:
            interrupt()
        if not settled.wait(_QUIET_WAIT_SECONDS):
            logger.warning("Writing what was made before the stop...")
            settled.wait()
        if interrupt is not None:
            producer.join(_QUIET_WAIT_SECONDS)
            if producer.is_alive():
                logger.warning("Waiting for the generate call in progress to stop...")
                producer.join()
