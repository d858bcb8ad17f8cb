"""The dataset on disk: a Hugging Face `imagefolder` that a batch job fills and resumes.

    DIR/images/<row:06d>-<k>.<ext>  the images
    DIR/metadata.jsonl              a line per image: file_name, prompt, model, row, generation,
                                    the generation kwargs, the image's own metadata (seed,
                                    revised prompt...) and the row's carried fields
    DIR/errors.jsonl                the rows that failed in the latest run, retried on the next
    DIR/job.json                    the manifest (see `imgen.batch.manifest`)

Crash safety rests on one order: an image is written to a temporary file and renamed into
place; once it is on disk (a group of images is synced at once), its metadata line is
appended, flushed and fsynced. So after any crash, power cuts included, every line names a
whole image, and all that can be left over is a torn last line, images with no line, and
temporary files; `ImageFolder.open` clears all three. A row is done when each of its
generations has a line.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar, cast

from imgen import local_paths
from imgen.batch.files import (
    append_durably,
    is_temporary,
    lock_exclusively,
    make_durable,
    sync_folder,
    unlock_and_remove,
)
from imgen.batch.inputs import PromptRow, PromptSource
from imgen.batch.manifest import JobManifest, resumable_manifest, settle_manifest
from imgen.batch.records import FIXED_COLUMNS, SEED_COLUMN, image_records
from imgen.errors import InvalidInputError, brief_repr
from imgen.images import write_atomically

__all__ = ["DatasetWriteError", "DoneImages", "ImageFolder"]

IMAGES = "images"
METADATA = "metadata.jsonl"
ERRORS = "errors.jsonl"
MANIFEST = "job.json"
LOCK = ".imgen-batch.lock"

logger = logging.getLogger("imgen.batch")
F = TypeVar("F", bound=Callable[..., Any])


class DatasetWriteError(Exception):
    """The dataset could not be written: a fault of the job, not of a row.

    Attributes:
        cause: What the system said (a full disk, a removed folder...).
    """

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _writes_the_dataset(method: F) -> F:
    """Raise `DatasetWriteError` for the OSErrors of `method`, so they are told apart from
    anything else that fails (a backend's connection error is an OSError too)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except OSError as exc:
            raise DatasetWriteError(exc) from exc

    return cast(F, wrapper)


@dataclass
class DoneImages:
    """What a dataset holds already.

    Attributes:
        generations: Row number mapped to the generations that have a metadata line.
        prompts: Row number mapped to the prompt its lines record.
    """

    generations: dict[int, set[int]] = field(default_factory=dict)
    prompts: dict[int, str] = field(default_factory=dict)

    def missing(self, row: int, num_generations: int) -> list[int]:
        """The generations of `row` still to make."""
        have = self.generations.get(row, set())
        return [k for k in range(num_generations) if k not in have]

    def check_prompts(self, source: PromptSource, root: Path) -> None:
        """Refuse to resume when a row's prompt changed since its images were made.

        Raises:
            InvalidInputError: Naming the first row whose prompt changed.
        """
        for row in source.rows:
            recorded = self.prompts.get(row.row)
            if recorded is not None and recorded != row.prompt:
                raise InvalidInputError(
                    f"Row {row.row} of {source.origin} is {row.prompt!r:.80}, but the dataset in "
                    f"{str(root)!r} made its images for {recorded!r:.80}: the prompts changed "
                    "since the job started. Pass --no-resume (resume=False) to start over, or "
                    "choose another output dir."
                )


class ImageFolder:
    """A batch job's imagefolder dataset: checked and repaired by `open`, then appended to.

    `write_images` may run in any thread, and in several at once; `append_metadata` in one
    thread at a time.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.images = self.root / IMAGES
        self.metadata_path = self.root / METADATA
        self.errors_path = self.root / ERRORS
        self.manifest_path = self.root / MANIFEST
        self.manifest: JobManifest | None = None
        """The job's manifest, once `open` has settled it (its seed included)."""
        self._columns: dict[str, None] = {}
        self._metadata: BinaryIO | None = None
        self._errors: BinaryIO | None = None
        self._lock: IO[bytes] | None = None

    @property
    def location(self) -> str:
        """Where the dataset is: its folder, absolute."""
        return str(self.root.resolve())

    @property
    def errors_location(self) -> str:
        """Where this run's failures are listed."""
        return str(self.errors_path)

    @property
    def output_dir(self) -> Path:
        """The dataset's folder, absolute, as the summary gives it."""
        return self.root.resolve()

    def check_location(self) -> None:
        """Fail early when the output dir cannot hold a dataset.

        Raises:
            InvalidInputError: The output dir is a file.
        """
        if local_paths.exists(self.root) and not local_paths.is_dir(self.root):
            raise InvalidInputError(f"Output dir {str(self.root)!r} is a file, not a folder.")

    def open(
        self,
        manifest: JobManifest,
        columns: Iterable[str],
        *,
        resume: bool,
        force: bool,
        seeded: bool = False,
    ) -> DoneImages:
        """Make sure the dataset is this job's, repair what a crash left, get ready to append.

        Args:
            manifest: This job's manifest; it replaces the one on disk.
            columns: The metadata columns of this job besides the fixed ones and those the
                images bring (generation kwargs, carried fields). Every line has them all.
            resume: Keep the images made already; False starts the dataset over.
            force: Replace another job's dataset instead of refusing.
            seeded: The job has a seed: when `manifest` names none, the dataset's recorded
                seed is reused, or a new one drawn for a new dataset. See `self.manifest`.

        Returns:
            The images the dataset holds already.

        Raises:
            InvalidInputError: The dir holds another job's dataset and `force` is False,
                another process is writing to it, or it cannot be created.
        """
        self.check_location()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only parent, a name too long for the filesystem
            raise InvalidInputError(
                f"Cannot create the output dir {brief_repr(str(self.root))}: "
                f"{exc.strerror or exc}. Choose another output dir."
            ) from None
        try:
            self._lock = lock_exclusively(self.root / LOCK)
        except BlockingIOError:
            raise InvalidInputError(
                f"Another imgen batch job is writing to {str(self.root)!r}; wait for it to end "
                "or choose another output dir."
            ) from None
        try:
            recorded = resumable_manifest(
                manifest,
                lambda: JobManifest.read(self.manifest_path),
                self._leftovers,
                str(self.root),
                force=force,
            )
            if recorded is None or not resume:
                self._clear()
                recorded = None
            manifest = settle_manifest(manifest, recorded, seeded=seeded)
            manifest.write(self.manifest_path)
            self.manifest = manifest
            done = self._recover()
            # Made here only: a job whose folder goes away stops, rather than fill a new one.
            self.images.mkdir(exist_ok=True)
            self._columns.update(
                dict.fromkeys(
                    ["file_name", *FIXED_COLUMNS, *([SEED_COLUMN] if seeded else []), *columns]
                )
            )
            self._metadata = self.metadata_path.open("ab")
            self._errors = self.errors_path.open("wb")  # this run's failures only
            sync_folder(self.root)
        except BaseException:
            self.close()
            raise
        return done

    def close(self) -> None:
        """Close the metadata and error files, remove the lock file and let other jobs in."""
        for handle in (self._metadata, self._errors):
            if handle is not None:
                handle.close()
        if self._lock is not None:
            unlock_and_remove(self._lock, self.root / LOCK)
        self._metadata = self._errors = self._lock = None

    @_writes_the_dataset
    def write_images(
        self, row: PromptRow, output: Mapping[str, Any], generations: Iterable[int]
    ) -> list[dict[str, Any]]:
        """Write some images of a row's output; return their metadata records, not yet appended.

        Nothing is written unless every image asked for is a whole image and its metadata can
        be saved (see `imgen.batch.records.image_records`).

        Args:
            row: The row the output is for.
            output: Its output: `{"images": [b64, ...], ...metadata}`.
            generations: Which of its images to write (those the dataset lacks).

        Raises:
            InvalidOutputError: The output lacks an image, an image is not base64 or not a PNG,
                JPEG, WebP or GIF, or its metadata cannot be saved as JSON (a row failure).
            DatasetWriteError: The dataset cannot be written (a fault of the job).
        """
        assert self.manifest is not None, "open() the folder first"
        images = image_records(row, output, generations, self.manifest)
        for image in images:
            # Not fsynced one by one: `append_metadata` makes a whole group durable at once.
            write_atomically(self.images / image.name, image.data, durable=False)
        return [{"file_name": f"{IMAGES}/{image.name}", **image.metadata} for image in images]

    @_writes_the_dataset
    def append_metadata(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Make the records' images durable, then append their lines and fsync.

        Every line has the same keys (null where unknown), which keeps the column types steady
        for the JSON loader of `datasets`: it infers them from the first lines.

        Raises:
            DatasetWriteError: The dataset cannot be written, or was removed while the job ran.
        """
        assert self._metadata is not None, "open() the folder first"
        records = list(records)
        if os.fstat(self._metadata.fileno()).st_nlink == 0:
            raise FileNotFoundError(
                errno.ENOENT, "the dataset was removed while the job ran", str(self.metadata_path)
            )
        make_durable([self.root / r["file_name"] for r in records], self.images)
        for record in records:
            self._columns.update(dict.fromkeys(record))
        text = "".join(
            json.dumps({c: r.get(c) for c in self._columns}, ensure_ascii=False, default=str) + "\n"
            for r in records
        )
        append_durably(self._metadata, text.encode())

    @_writes_the_dataset
    def record_failure(self, row: int, prompt: str | None, stage: str, error: str) -> None:
        """Note a row that failed (stage "generation") or could not be read (stage "input").

        Text that UTF-8 cannot hold (a lone surrogate) is written as a JSON escape.
        """
        assert self._errors is not None, "open() the folder first"
        line = {"row": row, "prompt": prompt, "stage": stage, "error": error}
        text = json.dumps(line, ensure_ascii=False, default=str) + "\n"
        self._errors.write(text.encode("utf-8", "backslashreplace"))
        self._errors.flush()

    # -- opening: ownership, starting over, repairs ---------------------------------------

    def _leftovers(self) -> str | None:
        """Why the folder holds a dataset though it has no job.json; None when it holds none."""
        if self.metadata_path.exists() or (self.images.is_dir() and any(self.images.iterdir())):
            return "it has metadata.jsonl or images/ but no job.json: imgen batch did not make it"
        return None

    def _clear(self) -> None:
        # The manifest stays until the new one replaces it: cut short, a clear leaves a
        # dataset that a rerun still recognises (and repairs), not an unknown one.
        for path in (self.metadata_path, self.errors_path, self.root / "shards.json"):
            path.unlink(missing_ok=True)
        # images/, and data/ where a Parquet dataset that this one replaces kept its shards.
        for folder in (self.images, self.root / "data"):
            shutil.rmtree(folder, ignore_errors=True)

    def _recover(self) -> DoneImages:
        for folder in (self.root, self.images):
            if folder.is_dir():
                for entry in os.scandir(folder):
                    if is_temporary(entry.name):
                        os.unlink(entry.path)
        on_disk = {e.name for e in os.scandir(self.images)} if self.images.is_dir() else set()
        done, named = self._read_metadata(on_disk)
        orphans = on_disk - named
        for name in orphans:
            (self.images / name).unlink()
        if orphans:
            logger.info("Removed %d image(s) with no metadata line, to make again.", len(orphans))
        return done

    def _read_metadata(self, on_disk: set[str]) -> tuple[DoneImages, set[str]]:
        """Read the lines; cut a torn last line, drop lines whose image is gone or repeated."""
        done = DoneImages()
        named: set[str] = set()
        if not self.metadata_path.exists():
            return done, named
        dropped: set[int] = set()
        with self.metadata_path.open("r+b") as handle:
            end = 0
            for index, raw in enumerate(handle):
                if not raw.endswith(b"\n"):
                    break  # torn by a crash mid-append: its image is made again
                end += len(raw)
                parsed = _parse_line(raw)
                if parsed is None:
                    dropped.add(index)
                    continue
                row, generation, name, prompt, keys = parsed
                if name not in on_disk or generation in done.generations.get(row, set()):
                    dropped.add(index)
                    continue
                done.generations.setdefault(row, set()).add(generation)
                done.prompts.setdefault(row, prompt)
                named.add(name)
                self._columns.update(dict.fromkeys(keys))
            if end < handle.seek(0, os.SEEK_END):
                logger.warning("Dropped a torn last line of %s.", self.metadata_path)
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
        if dropped:
            logger.warning(
                "Dropped %d line(s) of %s that were unreadable, repeated or named a missing "
                "image; those images are made again.",
                len(dropped),
                self.metadata_path,
            )
            with self.metadata_path.open("rb") as handle:
                kept = b"".join(raw for i, raw in enumerate(handle) if i not in dropped)
            write_atomically(self.metadata_path, kept)
        return done, named


def _parse_line(raw: bytes) -> tuple[int, int, str, str, list[str]] | None:
    """Row, generation, image name, prompt and keys of a metadata line; None if it is not one."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    row, generation = record.get("row"), record.get("generation")
    file_name, prompt = record.get("file_name"), record.get("prompt")
    folder, _, name = file_name.partition("/") if isinstance(file_name, str) else ("", "", "")
    if not (
        type(row) is int and type(generation) is int and folder == IMAGES and name
    ) or not isinstance(prompt, str):
        return None
    return row, generation, name, prompt, list(record)
