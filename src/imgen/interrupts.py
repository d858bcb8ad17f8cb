"""Stopping generate calls in progress from another thread: `ImageGenerationModel.interrupt`.

A sync backend whose calls run long (a local pipeline, CPU-bound work) keeps a
`CallInterrupter`, takes a `watch()` when a call starts, and checks it between two steps of the
work. `interrupt()` makes every call started before it raise `GenerationInterrupted` at its
next check; calls started afterwards run normally. Batch jobs interrupt the model when Ctrl-C
or SIGTERM stops them, so the process can end without waiting for a long call, and without
tearing down a native library's threads while they still run.
"""

from __future__ import annotations

import threading
import time

from imgen.errors import GenerationInterrupted
from imgen.signals import WAKE_SECONDS

__all__ = ["CallInterrupter", "CallWatch"]


class CallInterrupter:
    """Interrupts the calls that watch it; safe to use from any thread."""

    def __init__(self) -> None:
        self._interrupts = 0
        self._changed = threading.Condition()

    def interrupt(self) -> None:
        """Make the calls watching now stop at their next check."""
        with self._changed:
            self._interrupts += 1
            self._changed.notify_all()

    def watch(self) -> CallWatch:
        """A watch for a call starting now."""
        return CallWatch(self, self._interrupts)


class CallWatch:
    """What a call checks between two steps of its work."""

    def __init__(self, interrupter: CallInterrupter, seen: int) -> None:
        self._interrupter = interrupter
        self._seen = seen

    @property
    def interrupted(self) -> bool:
        """Whether `interrupt()` was called since the call started."""
        return self._interrupter._interrupts != self._seen

    def check(self) -> None:
        """Raise `GenerationInterrupted` if the call was interrupted."""
        if self.interrupted:
            raise GenerationInterrupted("The call was interrupted; its images were not made.")

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, or less if interrupted; then `check()`."""
        deadline = time.monotonic() + seconds
        changed = self._interrupter._changed
        with changed:
            # In short waits: in the main thread, a signal the kernel gave another thread has
            # its handler run only once this thread wakes (see `wait_interruptibly`).
            while not self.interrupted and (left := deadline - time.monotonic()) > 0:
                changed.wait(min(left, WAKE_SECONDS))
        self.check()
