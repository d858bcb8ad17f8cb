"""Durable file writes and the dataset's lock.

Lines are appended and fsynced; groups of files written without fsync are made durable at once;
a lock file keeps two jobs out of one dataset. Whole files are replaced with
`imgen.images.write_atomically`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, BinaryIO

__all__ = [
    "append_durably",
    "is_temporary",
    "lock_exclusively",
    "make_durable",
    "sync_folder",
    "unlock_and_remove",
]

_TEMPORARY_SUFFIX = ".tmp"
# From this many files on, one syncfs of their filesystem costs less than an fsync per file
# (measured on ext4: about 0.15 ms per fsync against 4-5 ms per syncfs).
_SYNCFS_FROM = 32


def append_durably(handle: BinaryIO, data: bytes) -> None:
    """Append `data` and wait until it is on disk, so a crash never loses what was reported."""
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())


def make_durable(paths: Sequence[Path], folder: Path) -> None:
    """Wait until files written without fsync, and their names in `folder`, are on disk.

    Only the dataset's own filesystem is flushed, never the whole host's. A small group (the
    usual case: images take longer to make than to write) gets an fsync per file and one for
    the folder. A large group gets one `syncfs` of the folder's filesystem where there is one
    (Linux), which costs less than hundreds of fsyncs.

    Raises:
        OSError: The disk refused the writes (full, gone, read-only).
    """
    if len(paths) >= _SYNCFS_FROM and _syncfs(folder):
        return
    for path in paths:
        _fsync_path(path, os.O_RDWR)
    sync_folder(folder)


def sync_folder(folder: Path) -> None:
    """Make the names in `folder` (files created, renamed or removed) durable."""
    if os.name == "posix":  # Windows cannot open a folder, and journals its names anyway
        _fsync_path(folder, os.O_RDONLY)


def _fsync_path(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(folder: Path) -> bool:
    """`syncfs` the filesystem holding `folder`; False where the system has no syncfs."""
    syncfs = _libc_syncfs()
    if syncfs is None:
        return False
    fd = os.open(folder, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            import ctypes

            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(folder))
    finally:
        os.close(fd)
    return True


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):  # a C library without syncfs
        return None
    syncfs.argtypes = [ctypes.c_int]
    syncfs.restype = ctypes.c_int
    return syncfs  # type: ignore[no-any-return]


def lock_exclusively(path: Path) -> IO[bytes]:
    """Open `path` and hold an exclusive lock on it until `unlock_and_remove` (or close).

    The lock is advisory and exists on POSIX systems only; elsewhere the file is just opened.

    Raises:
        BlockingIOError: Another open file holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        return path.open("ab")
    while True:
        handle = path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            # A job that ends removes the file while it holds the lock: a lock taken on a file
            # that is no longer at `path` guards nothing, so take the one there now.
            if os.path.samestat(os.fstat(handle.fileno()), os.stat(path)):
                return handle
        except FileNotFoundError:
            pass
        except BaseException:
            handle.close()
            raise
        handle.close()


def unlock_and_remove(handle: IO[bytes], path: Path) -> None:
    """Remove the lock file `lock_exclusively` opened, then release the lock.

    A crash leaves the file behind; the next job locks it as usual.
    """
    if os.name != "posix":  # no lock to keep while removing, and an open file stays
        handle.close()
        with contextlib.suppress(OSError):  # another job's open file
            path.unlink(missing_ok=True)
        return
    try:
        path.unlink(missing_ok=True)
    finally:
        handle.close()


def is_temporary(name: str) -> bool:
    """Whether a file name is a leftover of `imgen.images.write_atomically` (a torn write)."""
    return name.startswith(".") and name.endswith(_TEMPORARY_SUFFIX)
