"""Questions about a path a user typed, answered without an error for a name the OS refuses.

`Path.exists()` and its kin raise OSError for a name too long for the filesystem
(ENAMETOOLONG) and ValueError for one holding a NUL character. A mistyped path would then end
in a traceback instead of the clear "does not exist" or "cannot be created" that the caller
goes on to give.
"""

from __future__ import annotations

import os
import stat

__all__ = ["exists", "is_dir", "is_file"]


def _mode(path: str | os.PathLike[str]) -> int | None:
    try:
        return os.stat(path).st_mode
    except (OSError, ValueError):
        return None


def exists(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names something that can be reached (following links)."""
    return _mode(path) is not None


def is_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a regular file (following links)."""
    mode = _mode(path)
    return mode is not None and stat.S_ISREG(mode)


def is_dir(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a folder (following links)."""
    mode = _mode(path)
    return mode is not None and stat.S_ISDIR(mode)
