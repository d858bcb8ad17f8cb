"""Stopping on signals: SIGTERM and SIGHUP stop work the way Ctrl-C does.

Docker, systemd, Kubernetes and Ray stop a process with SIGTERM; a closed terminal sends
SIGHUP. Within `stop_on_signals()`, both raise `Interrupted`, a `KeyboardInterrupt`, in the
main thread, so the code that cleans up after Ctrl-C runs for them too. A command stopped by a
signal exits with 128 + its number, as a shell reports it: 130 for SIGINT (Ctrl-C), 143 for
SIGTERM, 129 for SIGHUP.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = [
    "WAKE_SECONDS",
    "Interrupted",
    "exit_code",
    "signal_name",
    "signal_of",
    "stop_on_signals",
    "wait_interruptibly",
]

_STOPPING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
WAKE_SECONDS = 0.1
"""How long a signal may wait for its handler, at most, while the main thread waits."""


class Interrupted(KeyboardInterrupt):
    """A signal other than SIGINT stopped the work, the way Ctrl-C would have.

    Attributes:
        signum: The signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal_name(signum)}")
        self.signum = signum


def signal_of(interrupt: KeyboardInterrupt) -> int:
    """The number of the signal that raised `interrupt`: SIGINT for a plain Ctrl-C."""
    return int(getattr(interrupt, "signum", signal.SIGINT))


def signal_name(signum: int) -> str:
    """`"SIGTERM"` for 15, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The exit code of a command stopped by `interrupt`: 128 + the signal's number."""
    return 128 + signal_of(interrupt)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `Interrupted` in the main thread.

    Handlers are set only from the main thread, and only for signals left at their default:
    an application's own handler, or a signal ignored on purpose (`nohup`), is kept. The
    previous handlers come back when the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    replaced = {
        signum: signal.signal(signum, _raise_interrupted)
        for signum in _STOPPING_SIGNALS
        if signal.getsignal(signum) is signal.SIG_DFL
    }
    try:
        yield
    finally:
        for signum, handler in replaced.items():
            signal.signal(signum, handler)


def wait_interruptibly(done: Callable[[float], object]) -> None:
    """Wait until `done(timeout)`, which waits up to `timeout` seconds, returns something true.

    The kernel may deliver a signal to any thread, and Python runs its handler in the main
    thread only once that thread runs again: an untimed wait there (`Event.wait()`,
    `Future.result()`) would leave Ctrl-C or SIGTERM unanswered until the work ends. Waking
    every tenth of a second lets the handler run (and raise) within that time.
    """
    while not done(WAKE_SECONDS):
        pass
