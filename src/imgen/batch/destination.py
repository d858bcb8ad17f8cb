"""Where a Parquet dataset goes: a local folder or any fsspec URL (`s3://`, `gs://`, `memory://`).

A `Destination` is a folder on some filesystem, named by a path or a URL, with the few
operations a sharded dataset needs: whole files written so that a reader sees the old version
or the new one and nothing between, files listed with their sizes, files copied to and from
local spool files. On a local filesystem a file is written beside its final name, fsynced and
renamed; object stores (S3, GCS) make an upload visible only once it is complete, so a file is
uploaded to its final key directly.

fsspec and the filesystem's own package (`s3fs`, `gcsfs`) are imported when a destination is
opened, never by `import imgen`. Credentials come from the filesystem's usual places
(environment variables such as `AWS_ACCESS_KEY_ID`, config files) or from `storage_options`;
they are never part of a destination's name, repr or error messages.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgen.batch.files import is_temporary, sync_folder
from imgen.errors import ConfigurationError, InvalidInputError
from imgen.images import write_atomically

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["Destination", "DestinationError", "StorageOptions", "is_url", "redact"]

_URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")
_USERINFO = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@")
# The extra of imgen that installs each filesystem's fsspec package.
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether `location` is a URL (`scheme://...`) rather than a local path."""
    return isinstance(location, str) and _URL.match(location) is not None


def redact(url: str) -> str:
    """`url` without the `user:password@` part a URL may carry."""
    return _USERINFO.sub(r"\g<scheme>***@", url)


class DestinationError(OSError):
    """The destination refused an operation: what fsspec's filesystem raised, as an OSError
    whose message holds no secret."""


class StorageOptions(dict[str, Any]):
    """fsspec storage options (`key`, `secret`, `endpoint_url`...), kept out of every repr:
    they may hold credentials, and reprs end up in logs and tracebacks."""

    def __repr__(self) -> str:
        return f"StorageOptions({', '.join(sorted(self))})" if self else "StorageOptions()"

    __str__ = __repr__


class Destination:
    """A folder on a local or remote filesystem, named by a path or an fsspec URL.

    Args:
        location: A local path, `file://...`, or any URL fsspec knows (`s3://bucket/prefix`,
            `gs://...`, `memory://...`).
        storage_options: Keyword arguments of the fsspec filesystem (credentials, an
            `endpoint_url`...). Environment variables and config files work as well.

    Raises:
        ConfigurationError: fsspec, or the filesystem's own package, is not installed.
        InvalidInputError: fsspec knows no filesystem for the URL's scheme.
    """

    def __init__(
        self, location: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self.location = os.fspath(location)
        self.storage_options = StorageOptions(storage_options or {})
        self.display = redact(self.location) if is_url(self.location) else self.location
        """The location as it may be shown: without credentials."""
        self.fs, self.root = _open_filesystem(self.location, self.storage_options, self.display)
        self.local_root: Path | None = Path(self.root) if _is_local(self.fs) else None
        """The folder itself on a local filesystem; None on a remote one."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt where it is unpickled (a Ray actor), from its location and options.
        return (Destination, (self.location, dict(self.storage_options)))

    def __repr__(self) -> str:
        return f"Destination({self.display!r})"

    def path(self, name: str) -> str:
        """The full path of `name` (relative, with `/`; "" for the folder itself)."""
        return f"{self.root.rstrip('/')}/{name}" if name else self.root

    def where(self, name: str) -> str:
        """`name` as it may be shown: the location, then the name."""
        return f"{self.display.rstrip('/')}/{name}"

    def check_writable(self) -> None:
        """Fail before any work when the folder cannot be created or written.

        Raises:
            InvalidInputError: The location is a file, the bucket does not exist, access is
                denied, or the filesystem cannot be reached; the message says which.
        """
        try:
            if self.fs.isfile(self.root):
                raise InvalidInputError(f"Output dir {self.display!r} is a file, not a folder.")
            if self.local_root is not None:
                self.local_root.mkdir(parents=True, exist_ok=True)
            # Object stores have no folders to make, and making a missing bucket is not a
            # job's business: the probe's upload fails there instead.
            probe = f".imgen-probe-{os.getpid()}.tmp"
            self.write_bytes(probe, b"")
            self.remove(probe)
        except InvalidInputError:
            raise
        except Exception as exc:
            raise InvalidInputError(
                f"Cannot write to {self.display!r}: {_reason(exc)}. Check that the bucket or "
                "folder exists, that the credentials allow writing there, and that the "
                "endpoint is reachable."
            ) from None

    def read_bytes(self, name: str) -> bytes | None:
        """The content of `name`, or None when there is no such file."""
        with _translated(self, name):
            try:
                return bytes(self.fs.cat_file(self.path(name)))
            except FileNotFoundError:
                return None

    def write_bytes(self, name: str, data: bytes) -> None:
        """Replace `name` with `data` in one step (see the module's docstring)."""
        with _translated(self, name):
            if self.local_root is not None:
                target = self._local_file(name)
                write_atomically(target, data)
                sync_folder(target.parent)
            else:
                self.fs.pipe_file(self.path(name), data)

    def put_file(self, spool: Path, name: str) -> None:
        """Move the local file `spool` to `name` in one step; `spool` is gone afterwards.

        On a local destination `spool` must lie in `spool_folder(name)`.
        """
        with _translated(self, name):
            if self.local_root is not None:
                target = self.local_root / name
                with open(spool, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(spool, target)
                sync_folder(target.parent)
            else:
                try:
                    self.fs.put_file(os.fspath(spool), self.path(name))
                finally:
                    spool.unlink(missing_ok=True)

    def get_file(self, name: str, spool: Path) -> None:
        """Copy `name` to the local file `spool`."""
        with _translated(self, name):
            if self.local_root is not None:
                shutil.copyfile(self.local_root / name, spool)
            else:
                self.fs.get_file(self.path(name), os.fspath(spool))

    def spool_folder(self, name: str) -> Path | None:
        """Where a local file bound for `name` is written first: beside it on a local
        filesystem (so it is renamed into place), None (any temporary folder) otherwise."""
        if self.local_root is None:
            return None
        return self._local_file(name).parent

    def _local_file(self, name: str) -> Path:
        """The local path of `name`, its subfolder made if needed; never the destination's own
        folder, which `check_writable` made: one removed while the job runs stays removed, and
        the write fails (FileNotFoundError), which stops the job instead of starting an empty
        dataset behind the user's back."""
        assert self.local_root is not None
        folder = self.local_root
        for part in Path(name).parent.parts:  # data/, made one level at a time from the root
            folder = folder / part
            folder.mkdir(exist_ok=True)
        return self.local_root / name

    def sizes(self, folder: str) -> dict[str, int]:
        """The files of `folder` ("" for the destination itself) by relative name
        (`folder/...`), with their sizes; {} when it does not exist."""
        with _translated(self, folder):
            try:
                entries = self.fs.ls(self.path(folder), detail=True)
            except FileNotFoundError:
                return {}
        prefix = f"{folder}/" if folder else ""
        return {
            prefix + entry["name"].rstrip("/").rsplit("/", 1)[-1]: int(entry.get("size") or 0)
            for entry in entries
            if entry.get("type") == "file"
        }

    def remove(self, name: str) -> None:
        """Remove `name`, if it exists."""
        with _translated(self, name), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path(name))

    def remove_temporary(self, folder: str) -> None:
        """Remove what torn writes left in `folder` ("" for the destination itself): the
        hidden `.tmp` files."""
        for name in self.sizes(folder):
            if is_temporary(name.rsplit("/", 1)[-1]):
                self.remove(name)


def _is_local(fs: AbstractFileSystem) -> bool:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return "file" in protocols or "local" in protocols


def _open_filesystem(
    location: str, storage_options: Mapping[str, Any], display: str
) -> tuple[AbstractFileSystem, str]:
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise ConfigurationError(
            "Parquet datasets need pyarrow and fsspec: pip install 'imgen[parquet]'."
        ) from None
    scheme = match["scheme"].lower() if (match := _URL.match(location)) else "file"
    try:
        # A fresh filesystem: fsspec's cached one may hold the credentials or endpoint that the
        # environment had when it was made.
        fs, root = url_to_fs(location, **{"skip_instance_cache": True, **storage_options})
    except ImportError:
        extra = _EXTRAS.get(scheme)
        install = f"pip install 'imgen[{extra}]'" if extra else "install its fsspec package"
        raise ConfigurationError(
            f"Writing to {scheme}:// URLs such as {display!r} needs the filesystem's fsspec "
            f"package: {install}."
        ) from None
    except ValueError as exc:
        if "Protocol not known" not in str(exc):
            raise InvalidInputError(f"Bad output location {display!r}: {_reason(exc)}.") from None
        raise InvalidInputError(
            f"Unknown URL scheme {scheme!r} in {display!r}: use a local path, file://, "
            "memory://, s3:// or gs:// (or another scheme fsspec knows)."
        ) from None
    except TypeError as exc:  # a storage option the filesystem does not take
        raise InvalidInputError(
            f"The storage options ({', '.join(sorted(storage_options))}) do not suit "
            f"{scheme}://: {_reason(exc)}."
        ) from None
    return fs, str(root)


def _reason(exc: BaseException) -> str:
    """What went wrong, in words that hold no secret: the exception's type and message, which
    for the filesystems' own errors name the bucket or the endpoint, never the keys."""
    text = str(exc).strip() or "no details"
    return text if isinstance(exc, DestinationError) else f"{type(exc).__name__}: {text}"


@contextlib.contextmanager
def _translated(destination: Destination, name: str) -> Any:
    """Let OSErrors through; turn any other failure of the filesystem (botocore's connection
    errors, say) into a `DestinationError`, so that the job sees a failed write as one."""
    try:
        yield
    except OSError:
        raise
    except Exception as exc:
        raise DestinationError(f"{destination.where(name)}: {_reason(exc)}") from None
