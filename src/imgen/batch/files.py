"""Durable file writes: whole files replaced atomically, lines appended and fsynced."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

__all__ = ["append_durably", "is_temporary", "write_atomically"]

_TEMPORARY_SUFFIX = ".tmp"


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step: a crash leaves the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMPORARY_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_durably(handle: BinaryIO, data: bytes) -> None:
    """Append `data` and wait until it is on disk, so a crash never loses what was reported."""
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())


def is_temporary(name: str) -> bool:
    """Whether a file name is a leftover of `write_atomically` or `imgen.images.write_image`."""
    return name.startswith(".") and name.endswith(_TEMPORARY_SUFFIX)
