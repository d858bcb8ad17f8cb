"""A one-line progress report on stderr, for terminals: done, rate, failures, time left."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["ProgressLine"]

_REDRAW_SECONDS = 0.1


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class ProgressLine:
    """Redraws `images done/total, images/s, failed rows, time left` at most 10 times a second.

    Args:
        total: Images this run has to make.
        stream: Where to draw, normally stderr.
    """

    def __init__(self, total: int, stream: TextIO) -> None:
        self._total = total
        self._stream = stream
        self._start = time.monotonic()
        self._drawn_at = 0.0
        self._drawn = False

    def update(self, images: int, failed: int, *, force: bool = False) -> None:
        """Redraw, unless the last redraw was under 0.1 s ago and `force` is False."""
        now = time.monotonic()
        if not force and now - self._drawn_at < _REDRAW_SECONDS:
            return
        self._drawn_at = now
        elapsed = now - self._start
        rate = images / elapsed if elapsed > 0 else 0.0
        percent = 100 * images / self._total if self._total else 100.0
        left = f", {_clock((self._total - images) / rate)} left" if rate > 0 else ""
        failures = f", {failed} rows failed" if failed else ""
        self._stream.write(
            f"\rimgen batch: {images}/{self._total} images ({percent:.0f}%), "
            f"{rate:.1f} images/s{failures}{left}\x1b[K"
        )
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the line, so what is printed next starts on a fresh one."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
