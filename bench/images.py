"""Encoding speed vs size: one 1024x1024 photo-like image, each setting against PIL's default.

The baseline is what `image.save(buffer, "PNG")` does: zlib level 6. The first row is
imgen's default (`ImageEncoding()`: PNG with zlib's run-length strategy), the one whose time
the target bounds; the others show what the alternatives cost and save, and are the
measurement the docs quote for the choice of that default. Both sides run in the same
process, alternating, and each time is the median of `ROUNDS`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from bench.harness import Row
from bench.pictures import encoded, photo_like
from imgen.images import ImageEncoding

if TYPE_CHECKING:
    from PIL.Image import Image

SIZE = 1024
ROUNDS = 9
DEFAULT_TARGET_MS = 80
SETTINGS: list[tuple[str, ImageEncoding]] = [
    ("PNG, imgen's default (zlib run-length)", ImageEncoding()),
    ("PNG, zlib level 0 (none)", ImageEncoding(compression_level=0)),
    ("PNG, zlib level 1", ImageEncoding(compression_level=1)),
    ("PNG, zlib level 3", ImageEncoding(compression_level=3)),
    ("PNG, zlib level 9", ImageEncoding(compression_level=9)),
    ("JPEG, quality 90 (imgen's default)", ImageEncoding("jpeg")),
    ("WebP, quality 90 (imgen's default)", ImageEncoding("webp")),
]


def _encode(encoding: ImageEncoding, picture: Image) -> bytes:
    return encoding.encode(picture).data


def _timed(encode: Callable[[], bytes]) -> Callable[[], tuple[float, int]]:
    def run() -> tuple[float, int]:
        start = time.perf_counter()
        size = len(encode())
        return time.perf_counter() - start, size

    return run


def _medians(
    subject: Callable[[], tuple[float, int]], baseline: Callable[[], tuple[float, int]]
) -> tuple[float, float, int, int]:
    ours, theirs = [], []
    for _ in range(ROUNDS):
        ours.append(subject())
        theirs.append(baseline())
    return (
        statistics.median(t for t, _ in ours),
        statistics.median(t for t, _ in theirs),
        ours[-1][1],
        theirs[-1][1],
    )


def _describe(seconds: float, size: int) -> str:
    return f"{seconds * 1000:.0f} ms, {size / 1e6:.2f} MB"


def run() -> list[Row]:
    picture = photo_like(SIZE)
    pil_default = _timed(lambda: encoded(picture, "png"))
    rows = []
    for index, (name, encoding) in enumerate(SETTINGS):
        ours, theirs, our_size, their_size = _medians(
            _timed(partial(_encode, encoding, picture)), pil_default
        )
        rows.append(
            Row(
                f"encode one {SIZE}x{SIZE} photo-like image: {name} vs PIL's default "
                f"(PNG level 6); {our_size / their_size:.2f}x the size",
                _describe(ours, our_size),
                _describe(theirs, their_size),
                ours / theirs,
                f"<= {DEFAULT_TARGET_MS} ms" if index == 0 else "report",
                subject_ms=ours * 1000,
            )
        )
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row.benchmark}\n  {row.subject}  vs  {row.baseline}  ({row.ratio:.2f}x)")
