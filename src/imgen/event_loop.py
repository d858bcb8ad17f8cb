"""A model's own event loop, running in a background thread.

The sync `generate()` of an async model submits its coroutine here. That works the same from a
plain script, from inside a running loop (Jupyter, async web handlers) and from many threads
at once, without `run_until_complete` on a running loop or a global `set_event_loop`. The SDK
clients a backend creates stay on one loop for the model's whole life.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import queue
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from imgen.signals import wait_interruptibly

__all__ = ["BackgroundLoop", "release_later"]

_T = TypeVar("_T")

# Every loop still open, so that interpreter exit can stop them while their threads still run:
# from a finaliser at shutdown, a daemon thread is frozen and waiting for it would hang.
_OPEN_LOOPS: weakref.WeakSet[BackgroundLoop] = weakref.WeakSet()
_exiting = False


class BackgroundLoop:
    """An event loop in a daemon thread, created on first use."""

    def __init__(self, name: str = "imgen-loop") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        _OPEN_LOOPS.add(self)
        _start_releaser()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, started on first access."""
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(loop, ready), name=self._name, daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        loop.call_soon(ready.set)
        loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run `coro` on the loop and block the calling thread until it finishes.

        Raises:
            RuntimeError: Called from the loop's own thread, where it would deadlock.
        """
        loop = self.loop
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "The sync generate() was called from inside the model's own event loop; "
                "await agenerate_outputs() there instead."
            )
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            wait_interruptibly(lambda timeout: concurrent.futures.wait([future], timeout).done)
            return future.result()
        except BaseException:
            # Ctrl-C or a failure: don't leave the work running unattended.
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the loop and its thread; safe to call twice and at interpreter exit."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or loop.is_closed():
            return
        if loop.is_running() and thread is not threading.current_thread():
            # Work still in flight (after Ctrl-C, say) is cancelled and awaited, so no task is
            # destroyed while pending.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_cancel_pending(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if not loop.is_running():
            loop.close()


async def _cancel_pending() -> None:
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@atexit.register
def _close_open_loops() -> None:
    global _exiting
    _exiting = True
    for loop in list(_OPEN_LOOPS):
        with contextlib.suppress(Exception):
            loop.close()


# Finalisers hand their blocking clean-up to this one daemon thread: a finaliser runs wherever
# the collector happens to run (an event loop's thread included) and must never wait there.
# The thread starts with the first loop, in ordinary code, so a finaliser only enqueues.
_releases: queue.SimpleQueue[tuple[Callable[[], object], ...]] = queue.SimpleQueue()
_releaser_lock = threading.Lock()
_releaser: threading.Thread | None = None


def _start_releaser() -> None:
    global _releaser
    if _releaser is not None:
        return
    with _releaser_lock:
        if _releaser is None:
            _releaser = threading.Thread(target=_release_forever, name="imgen-release", daemon=True)
            _releaser.start()


def _release_forever() -> None:
    while True:
        _run(_releases.get())  # a call, so nothing of a released model outlives it


def _run(steps: tuple[Callable[[], object], ...]) -> None:
    for step in steps:
        with contextlib.suppress(Exception):  # a finaliser's clean-up never raises
            step()


def release_later(*steps: Callable[[], object]) -> None:
    """Run each of `steps` soon, in order, in a background thread; safe to call from `__del__`.

    A step that raises does not stop the next one; errors are swallowed, as a finaliser's
    must be. Nothing happens once the interpreter is exiting: the exit hook has stopped every
    loop already.
    """
    if _exiting or sys.is_finalizing() or _releaser is None:
        return
    _releases.put(steps)  # SimpleQueue.put is safe even inside a finaliser
