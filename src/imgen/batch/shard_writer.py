"""Making one shard: take its rows' outputs as they come, then write it whole.

A `ShardWriter` is what a worker needs to write shards: the destination and the job's
manifest. It travels to Ray actors (it pickles to its location and options), so each actor
writes its shards straight to the destination. `ShardWriter.start(task)` gives a
`ShardBuilder`, which takes the rows' outcomes in any order and, once none is missing, writes
the shard: the images it held before (when it is written again) and the new ones, sorted, to a
spool file, which then goes to its place in one step (see `Destination.put_file`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from imgen.batch.destination import Destination
from imgen.batch.inputs import PromptRow
from imgen.batch.manifest import JobManifest
from imgen.batch.outcomes import Outcome
from imgen.batch.records import ImageRecord, image_records
from imgen.batch.shards import (
    ShardDescriptor,
    ShardReport,
    ShardTask,
    prompts_digest,
    shard_name,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ShardBuilder", "ShardWriter", "conform_shard"]

logger = logging.getLogger("imgen.batch")
_HASH_CHUNK = 1 << 20


class ShardWriter:
    """Writes the shards of one job to its destination.

    Args:
        destination: Where the dataset is.
        manifest: The job's manifest (model spec, kwargs, images per row).
    """

    def __init__(self, destination: Destination, manifest: JobManifest) -> None:
        self.destination = destination
        self.manifest = manifest

    def start(self, task: ShardTask) -> ShardBuilder:
        """A builder for the shard of `task`."""
        return ShardBuilder(self, task)


class ShardBuilder:
    """One shard in the making. `add` and `write` may run in any thread, one at a time."""

    def __init__(self, writer: ShardWriter, task: ShardTask) -> None:
        self._writer = writer
        self.task = task
        self._waiting = {row.row for row in task.rows}
        self._images: list[ImageRecord] = []
        self._done: dict[int, str] = {}
        self._failures: list[tuple[int, str, str]] = []

    @property
    def ready(self) -> bool:
        """Whether every row of the task has its outcome."""
        return not self._waiting

    def add(self, row: PromptRow, outcome: Outcome) -> ShardReport:
        """Take a row's outcome: its images, or why it failed; a report for progress."""
        self._waiting.discard(row.row)
        error = outcome.error or "no output"
        if outcome.output is not None:
            try:
                images = image_records(
                    row, outcome.output, self.task.generations[row.row], self._writer.manifest
                )
            except Exception as exc:  # whatever this row's output holds fails this row only
                error = f"{type(exc).__name__}: {exc}"
            else:
                self._images.extend(images)
                self._done[row.row] = row.prompt
                return ShardReport(self.task.index, made=len(images))
        failure = (row.row, row.prompt, error)
        self._failures.append(failure)
        return ShardReport(self.task.index, failures=[failure])

    def write(self) -> ShardReport:
        """Write the shard with the images taken, and those of its previous version; a report
        with its descriptor, or without one when no row succeeded (the shard stays as it was).

        Raises:
            OSError: The destination refused the shard (a fault of the job).
        """
        if not self._images:
            return ShardReport(self.task.index)
        import pyarrow as pa

        from imgen.batch import parquet

        table = parquet.build_table(self._images)
        self._images = []  # the table holds the bytes now
        previous = self.task.previous
        destination = self._writer.destination
        earlier = None if previous is None else _get_table(destination, previous)
        if earlier is not None:
            schema = parquet.unify([earlier.schema, table.schema])
            table = pa.concat_tables(
                [parquet.conform(earlier, schema), parquet.conform(table, schema)]
            )
        table = parquet.sort_rows(table)
        rows = table.column("row").to_pylist()
        counts = dict.fromkeys(rows, 0)
        for row in rows:
            counts[row] += 1
        prompts = dict(zip(rows, table.column("prompt").to_pylist(), strict=True))
        size, sha256 = _put_table(destination, shard_name(self.task.index), table)
        descriptor = ShardDescriptor.describe(
            self.task.index,
            counts,
            size,
            sha256,
            prompts_digest(prompts.items()),
            parquet.schema_to_text(table.schema),
        )
        new_images = len(rows) - (0 if earlier is None else len(earlier))
        return ShardReport(
            self.task.index, descriptor=descriptor, rows_done=len(self._done), images=new_images
        )


def _spool_path(destination: Destination | None, name: str) -> Path:
    """A fresh local file for the shard `name` on its way to `destination` (beside its place
    on a local one), or back from it (`destination` None)."""
    folder = None if destination is None else destination.spool_folder(name)
    base = name.rsplit("/", 1)[-1]
    if folder is None:
        folder = Path(tempfile.gettempdir())
    # Hidden and ending in .tmp: a run that finds one knows a write was cut short.
    return folder / f".{base}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def conform_shard(
    destination: Destination, descriptor: ShardDescriptor, schema: pa.Schema
) -> ShardDescriptor:
    """Rewrite a committed shard with the columns and types of `schema`; its new descriptor
    (the same, when its file is not the one committed any more).

    Raises:
        OSError: The destination refused the shard.
    """
    from imgen.batch import parquet

    table = _get_table(destination, descriptor)
    if table is None:
        return descriptor
    table = parquet.conform(table, schema)
    size, sha256 = _put_table(destination, descriptor.path, table)
    return replace(
        descriptor, bytes=size, sha256=sha256, schema=parquet.schema_to_text(table.schema)
    )


def _get_table(destination: Destination, descriptor: ShardDescriptor) -> pa.Table | None:
    """The table of a committed shard; None when its file is not the one committed any more
    (the job then makes its rows again)."""
    from imgen.batch import parquet

    spool = _spool_path(None, descriptor.path)
    try:
        destination.get_file(descriptor.path, spool)
        if _sha256(spool) != descriptor.sha256:
            logger.warning(
                "%s changed since it was committed; the next run makes its images again.",
                destination.where(descriptor.path),
            )
            return None
        return parquet.read_table(spool)
    finally:
        spool.unlink(missing_ok=True)


def _put_table(destination: Destination, name: str, table: pa.Table) -> tuple[int, str]:
    """Write `table` as the shard `name`, in one step; its size and SHA-256."""
    from imgen.batch import parquet

    spool = _spool_path(destination, name)
    try:
        parquet.write_table(table, spool)
        size, sha256 = spool.stat().st_size, _sha256(spool)
        destination.put_file(spool, name)
    finally:
        spool.unlink(missing_ok=True)
    return size, sha256
