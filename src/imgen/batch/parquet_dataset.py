"""A Parquet dataset that a batch job fills and resumes, on any filesystem fsspec reaches.

    DIR/data/train-00000.parquet    the shards (see `imgen.batch.shards` for which rows each
                                    holds, `imgen.batch.parquet` for their columns)
    DIR/shards.json                 the committed shards: a descriptor each (rows, size, SHA-256)
    DIR/errors.jsonl                the rows that failed in the latest run, retried on the next
    DIR/job.json                    the manifest (see `imgen.batch.manifest`)

DIR is a local folder or a URL (`s3://bucket/prefix`). A shard is written whole, in one step
(see `imgen.batch.destination`), and only then committed: its descriptor goes into
shards.json, which is replaced in one step too. So after any crash, shards.json names whole
shards, and what can be left over is a spool file or a shard written but not committed.
`ParquetDataset.open` removes both, and drops the descriptor of a shard whose file is missing
or not the size committed (a shard torn by a crash, or replaced): its rows are made again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from imgen.batch.dataset import DoneImages
from imgen.batch.destination import Destination
from imgen.batch.files import lock_exclusively, unlock_and_remove
from imgen.batch.inputs import PromptSource
from imgen.batch.manifest import JobManifest, resumable_manifest, settle_manifest
from imgen.batch.shards import SHARD_FOLDER, ShardDescriptor, prompts_digest
from imgen.errors import InvalidInputError

__all__ = ["ParquetDataset"]

MANIFEST = "job.json"
SHARDS = "shards.json"
ERRORS = "errors.jsonl"
LOCK = ".imgen-batch.lock"
SHARDS_FORMAT = "imgen-shards/1"
# What an imagefolder dataset keeps, removed when a Parquet one replaces it.
IMAGEFOLDER_LINES = "metadata.jsonl"
IMAGEFOLDER_IMAGES = "images"

logger = logging.getLogger("imgen.batch")


class DoneShards(DoneImages):
    """What a Parquet dataset holds already: its committed shards, and their rows."""

    def __init__(self, shards: dict[int, ShardDescriptor], location: str) -> None:
        super().__init__()
        self.shards = shards
        self._location = location
        for shard in shards.values():
            for row, count in shard.generations().items():
                self.generations[row] = set(range(count))

    def check_prompts(self, source: PromptSource, root: object = None) -> None:
        """Refuse to resume when the prompts of a committed shard's rows changed.

        Raises:
            InvalidInputError: Naming the shard whose rows' prompts changed.
        """
        prompts = {row.row: row.prompt for row in source.rows}
        for shard in self.shards.values():
            rows = shard.generations()
            if not all(row in prompts for row in rows):
                continue  # rows gone from the source keep their images; the others are checked
            if prompts_digest((row, prompts[row]) for row in rows) != shard.prompts:
                first, last = min(rows), max(rows)
                raise InvalidInputError(
                    f"The prompts of rows {first} to {last} of {source.origin} changed since "
                    f"their images were made (shard {shard.path} of {self._location!r}). Pass "
                    "--no-resume (resume=False) to start over, or choose another output dir."
                )


class ParquetDataset:
    """A batch job's Parquet dataset: checked and repaired by `open`, then committed to.

    Args:
        location: A local folder or an fsspec URL.
        storage_options: The fsspec filesystem's options (credentials, endpoint...).
    """

    def __init__(
        self, location: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
    ) -> None:
        self.destination = Destination(location, storage_options)
        self.manifest: JobManifest | None = None
        """The job's manifest, once `open` has settled it (seed and shard size included)."""
        self.shards: dict[int, ShardDescriptor] = {}
        """The committed shards, by index."""
        self._failures: list[str] = []
        self._failures_written = 0
        self._lock: IO[bytes] | None = None

    @property
    def location(self) -> str:
        """Where the dataset is, as it may be shown (without credentials)."""
        root = self.destination.local_root
        return str(root.resolve()) if root is not None else self.destination.display

    @property
    def output_dir(self) -> Path | str:
        """The dataset's folder, absolute, or its URL (without credentials)."""
        root = self.destination.local_root
        return root.resolve() if root is not None else self.destination.display

    @property
    def errors_location(self) -> str:
        """Where this run's failures are listed."""
        return self.destination.where(ERRORS)

    def check_location(self) -> None:
        """Fail early when the destination cannot hold a dataset (see
        `Destination.check_writable`)."""
        self.destination.check_writable()

    def open(
        self,
        manifest: JobManifest,
        columns: Iterable[str] = (),
        *,
        resume: bool,
        force: bool,
        seeded: bool = False,
    ) -> DoneShards:
        """Make sure the dataset is this job's, repair what a crash left, get ready to commit.

        Args:
            manifest: This job's manifest; it replaces the one at the destination.
            columns: Unused: a shard's columns come from its images' metadata.
            resume: Keep the shards made already; False starts the dataset over.
            force: Replace another job's dataset instead of refusing.
            seeded: The job has a seed (see `ImageFolder.open`).

        Returns:
            The rows the dataset holds already.

        Raises:
            InvalidInputError: The location holds another job's dataset and `force` is False,
                or another process is writing to it.
        """
        del columns
        self.check_location()
        root = self.destination.local_root
        if root is not None:
            try:
                self._lock = lock_exclusively(root / LOCK)
            except BlockingIOError:
                raise InvalidInputError(
                    f"Another imgen batch job is writing to {self.location!r}; wait for it to "
                    "end or choose another output dir."
                ) from None
        try:
            recorded = resumable_manifest(
                manifest, self._recorded, self._leftovers, self.location, force=force
            )
            if recorded is None or not resume:
                self._clear()
                recorded = None
            manifest = settle_manifest(manifest, recorded, seeded=seeded)
            self.destination.write_bytes(MANIFEST, manifest.to_text().encode())
            self.manifest = manifest
            self.shards = self._recover()
            self.destination.write_bytes(ERRORS, b"")  # this run's failures only
        except BaseException:
            self.close()
            raise
        return DoneShards(dict(self.shards), self.location)

    def close(self) -> None:
        """Write the failures not yet written; let other jobs in."""
        try:
            if self.manifest is not None:
                self.write_failures()
        except OSError as exc:  # what stopped the job matters more; say it and go on
            logger.warning("Could not write %s: %s", self.errors_location, exc)
        finally:
            if self._lock is not None and self.destination.local_root is not None:
                unlock_and_remove(self._lock, self.destination.local_root / LOCK)
            self._lock = None

    def commit(self, descriptors: Iterable[ShardDescriptor]) -> None:
        """Record shards written to the destination: replace shards.json in one step.

        Raises:
            OSError: The destination refused the write.
        """
        for descriptor in descriptors:
            self.shards[descriptor.index] = descriptor
        self._write_shards()
        self.write_failures()

    def unify_schemas(self) -> int:
        """Give every committed shard the same schema, the one that holds them all (see
        `imgen.batch.parquet.unify`): rewrite those that differ. Shards written apart rarely
        differ (a column null in one and text in another, a column one lacks), but `datasets`
        reads a dataset's shards with one schema.

        Returns:
            How many shards were rewritten.

        Raises:
            OSError: The destination refused a write.
        """
        from imgen.batch import parquet
        from imgen.batch.shard_writer import conform_shard

        schemas = {i: parquet.schema_from_text(s.schema) for i, s in self.shards.items()}
        target = parquet.unify(schemas[i] for i in sorted(schemas))
        differing = [i for i, schema in schemas.items() if not schema.equals(target)]
        for index in sorted(differing):
            logger.info("Rewriting %s with the dataset's schema.", self.shards[index].path)
            self.commit([conform_shard(self.destination, self.shards[index], target)])
        return len(differing)

    def record_failure(self, row: int, prompt: str | None, stage: str, error: str) -> None:
        """Note a row that failed (stage "generation") or could not be read (stage "input");
        failures reach errors.jsonl with the next commit, or when the dataset closes."""
        line = {"row": row, "prompt": prompt, "stage": stage, "error": error}
        self._failures.append(json.dumps(line, ensure_ascii=False, default=str) + "\n")

    def write_failures(self) -> None:
        """Write errors.jsonl when failures were noted since it was last written.

        Raises:
            OSError: The destination refused the write.
        """
        failures = list(self._failures)  # record_failure may add one meanwhile
        if len(failures) == self._failures_written:
            return
        text = "".join(failures)
        self.destination.write_bytes(ERRORS, text.encode("utf-8", "backslashreplace"))
        self._failures_written = len(failures)

    # -- opening: ownership, starting over, repairs ---------------------------------------

    def _recorded(self) -> JobManifest | None:
        text = self.destination.read_bytes(MANIFEST)
        if text is None:
            return None
        return JobManifest.parse(text.decode("utf-8", "replace"), self.destination.where(MANIFEST))

    def _leftovers(self) -> str | None:
        if self.destination.read_bytes(SHARDS) is not None or self.destination.sizes(SHARD_FOLDER):
            return (
                f"it has {SHARDS} or {SHARD_FOLDER}/ but no {MANIFEST}: imgen batch did not make it"
            )
        return None

    def _clear(self) -> None:
        # The manifest stays until the new one replaces it (see ImageFolder._clear).
        for name in [*self.destination.sizes(SHARD_FOLDER), SHARDS, ERRORS, IMAGEFOLDER_LINES]:
            self.destination.remove(name)
        if self.destination.local_root is not None:  # an imagefolder this one replaces
            shutil.rmtree(self.destination.local_root / IMAGEFOLDER_IMAGES, ignore_errors=True)

    def _recover(self) -> dict[int, ShardDescriptor]:
        """The committed shards whose files are whole; every other file of data/ removed, and
        what a torn write of job.json, shards.json or errors.jsonl left."""
        self.destination.remove_temporary("")
        shards = self._read_shards()
        on_disk = self.destination.sizes(SHARD_FOLDER)
        kept = {i: s for i, s in shards.items() if on_disk.get(s.path) == s.bytes}
        for index in sorted(shards.keys() - kept.keys()):
            logger.warning(
                "%s is missing or torn (not the %d bytes committed); its rows are made again.",
                self.destination.where(shards[index].path),
                shards[index].bytes,
            )
        committed = {shard.path for shard in kept.values()}
        for name in on_disk.keys() - committed:
            self.destination.remove(name)  # spool files and shards never committed
        if kept.keys() != shards.keys():
            self.shards = kept
            self._write_shards()
        return kept

    def _read_shards(self) -> dict[int, ShardDescriptor]:
        text = self.destination.read_bytes(SHARDS)
        if text is None:
            return {}
        try:
            data = json.loads(text)
            if data.get("format") != SHARDS_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {SHARDS_FORMAT!r}")
            shards = [ShardDescriptor.from_dict(entry) for entry in data["shards"]]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidInputError(
                f"{self.destination.where(SHARDS)!r} is not a readable list of shards ({exc}); "
                "pass --no-resume (resume=False) to start over."
            ) from None
        return {shard.index: shard for shard in shards}

    def _write_shards(self) -> None:
        # A shard a line: the file stays readable, and diffs of it small.
        lines = ",\n".join(
            "  " + json.dumps(self.shards[index].to_dict()) for index in sorted(self.shards)
        )
        text = f'{{"format": "{SHARDS_FORMAT}", "shards": [\n{lines}\n]}}\n'
        self.destination.write_bytes(SHARDS, text.encode())
