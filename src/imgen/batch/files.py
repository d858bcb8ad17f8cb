"""Durable file writes: lines appended and fsynced, groups of files made durable at once.

Whole files are replaced with `imgen.images.write_atomically`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, BinaryIO

__all__ = ["append_durably", "is_temporary", "lock_exclusively", "make_durable"]

_TEMPORARY_SUFFIX = ".tmp"


def append_durably(handle: BinaryIO, data: bytes) -> None:
    """Append `data` and wait until it is on disk, so a crash never loses what was reported."""
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())


def make_durable(paths: Iterable[Path], folder: Path) -> None:
    """Wait until files written without fsync, and their names in `folder`, are on disk.

    On Linux one `sync()` does it for any number of files: there it returns only once the
    writes are done (other systems may return sooner), and it costs far less than an fsync per
    file. Elsewhere each file, then the folder, is fsynced.
    """
    if sys.platform == "linux":
        os.sync()
        return
    for path in paths:
        _fsync_path(path, os.O_RDWR)
    if os.name == "posix":  # the renames; Windows cannot open a folder, and journals them
        _fsync_path(folder, os.O_RDONLY)


def _fsync_path(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_exclusively(path: Path) -> IO[bytes]:
    """Open `path` and hold an exclusive lock on it until the returned file is closed.

    The lock is advisory and exists on POSIX systems only; elsewhere the file is just opened.

    Raises:
        BlockingIOError: Another open file holds the lock.
    """
    handle = path.open("ab")
    try:
        import fcntl
    except ImportError:  # Windows
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        handle.close()
        raise
    return handle


def is_temporary(name: str) -> bool:
    """Whether a file name is a leftover of `imgen.images.write_atomically` (a torn write)."""
    return name.startswith(".") and name.endswith(_TEMPORARY_SUFFIX)
