"""The two dataset formats a job writes, and where each may go.

`imagefolder` (the default): images as files and a metadata line per image, in a local folder.
`parquet`: shards of `shard_rows` rows, in a local folder or at any fsspec URL (`s3://...`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeAlias

from imgen.batch.dataset import ImageFolder
from imgen.batch.destination import is_url, redact
from imgen.batch.manifest import DATASET_FORMATS
from imgen.batch.parquet_dataset import ParquetDataset
from imgen.errors import ConfigurationError, InvalidInputError, brief_repr

__all__ = ["DatasetFormat", "open_dataset"]

DatasetFormat: TypeAlias = Literal["imagefolder", "parquet"]
_FILE_URL = "file://"


def open_dataset(
    location: str | os.PathLike[str],
    dataset_format: str,
    shard_rows: int | None,
    storage_options: Mapping[str, Any] | None,
) -> ImageFolder | ParquetDataset:
    """The dataset a job writes to `location` in `dataset_format`, not opened yet.

    Raises:
        InvalidInputError: An unknown format, options that do not apply to it, or a URL an
            imagefolder cannot go to.
        ConfigurationError: pyarrow, fsspec, or the URL's filesystem package is missing.
    """
    if not isinstance(location, str | os.PathLike) or not str(location).strip():
        raise InvalidInputError(
            "The output dir must be a path or a URL such as 's3://bucket/prefix', got "
            f"{type(location).__name__}: {brief_repr(location)}."
        )
    if not (isinstance(dataset_format, str) and dataset_format in DATASET_FORMATS):
        raise InvalidInputError(
            f"Unknown dataset format {brief_repr(dataset_format)}: use "
            f"{' or '.join(map(repr, DATASET_FORMATS))}."
        )
    if shard_rows is not None and (
        not isinstance(shard_rows, int) or isinstance(shard_rows, bool) or shard_rows < 1
    ):
        raise InvalidInputError(
            f"shard_rows must be a whole number >= 1, not {brief_repr(shard_rows)}."
        )
    if storage_options is not None and not (
        isinstance(storage_options, Mapping) and all(isinstance(k, str) for k in storage_options)
    ):
        # Not echoed: storage options hold credentials.
        raise InvalidInputError(
            "storage_options must be a mapping of option names to values, e.g. "
            f"{{'endpoint_url': 'http://localhost:9000'}}; got {type(storage_options).__name__}."
        )
    if dataset_format == "imagefolder":
        if shard_rows is not None:
            raise InvalidInputError("--shard-rows (shard_rows) applies to --format parquet.")
        if storage_options:
            raise InvalidInputError("storage_options apply to --format parquet.")
        return ImageFolder(_local_folder(location))
    _check_pyarrow()
    return ParquetDataset(location, dict(storage_options or {}))


def _local_folder(location: str | os.PathLike[str]) -> Path:
    """The local folder of an imagefolder: a path, or a file:// URL.

    Raises:
        InvalidInputError: Any other URL: a folder of millions of files belongs on a local
            disk, and object stores take Parquet shards.
    """
    if isinstance(location, str) and location.startswith(_FILE_URL):
        return Path(location.removeprefix(_FILE_URL))
    if is_url(location):
        raise InvalidInputError(
            f"An imagefolder dataset goes to a local folder, not to {redact(str(location))!r}: "
            "pass --format parquet (format='parquet') to write Parquet shards there."
        )
    return Path(location)


def _check_pyarrow() -> None:
    import importlib.util

    for package in ("pyarrow", "fsspec"):
        if importlib.util.find_spec(package) is None:
            raise ConfigurationError(
                f"--format parquet needs {package}: pip install 'imgen[parquet]'."
            )
