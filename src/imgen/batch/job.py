"""`run_batch`: check everything, open the dataset, then generate and write until done.

Everything that can be wrong with the request (the prompts, the output dir, the model, its
generation kwargs, the dataset already there) is checked before the model loads. Then, for an
imagefolder, the engine yields rows as they complete, each row's images are written at once,
and a committer makes them durable and appends their metadata lines a group at a time (all the
rows that arrived since the last group, a quarter of a second ago at least), so the disk's
latency is paid once per group, not once per image. A Parquet dataset is written a shard at a
time instead (see `imgen.batch.shard_job`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from typing import Any, Literal

from imgen.base import ImageGenerationModel
from imgen.batch.dataset import DatasetWriteError, ImageFolder
from imgen.batch.engines import Engine, resolve_engine
from imgen.batch.formats import DatasetFormat, open_dataset
from imgen.batch.inputs import PromptRow, PromptSource, PromptsText, read_prompts, row_noun
from imgen.batch.manifest import JobManifest
from imgen.batch.outcomes import Outcome
from imgen.batch.parquet_dataset import ParquetDataset
from imgen.batch.progress import ProgressLine
from imgen.batch.records import RESERVED_COLUMNS
from imgen.batch.seeding import check_seed_range, row_seeds
from imgen.batch.shard_job import ShardJob
from imgen.batch.shards import plan_shards
from imgen.batch.summary import BatchInterrupted, BatchStopped, BatchSummary
from imgen.batch.threads import Unclaimed
from imgen.errors import InvalidInputError, brief_repr
from imgen.registry import get_model
from imgen.seeds import SEED, takes_seed
from imgen.signals import signal_name, signal_of, stop_on_signals, wait_interruptibly

__all__ = ["run_batch"]

logger = logging.getLogger("imgen.batch")

_BAD_ROWS_LOGGED = 10
# Seconds between two syncs of the dataset at most; a crash loses no more than that of work.
_COMMIT_INTERVAL = 0.25
Record = dict[str, Any]


def run_batch(
    model: ImageGenerationModel | str,
    prompts: str | os.PathLike[str] | PromptsText | Iterable[str | Mapping[str, Any]],
    output_dir: str | os.PathLike[str],
    *,
    num_generations: int = 1,
    generation_kwargs: Mapping[str, Any] | None = None,
    prompt_column: str | None = None,
    engine: Literal["local", "ray"] | Engine = "local",
    resume: bool = True,
    progress: bool | None = None,
    force: bool = False,
    format: DatasetFormat = "imagefolder",
    shard_rows: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> BatchSummary:
    """Generate images for every prompt into a resumable Hugging Face dataset.

    An imagefolder (the default) gets its images in `output_dir/images/<row:06d>-<k>.<ext>` and
    a line per image in `output_dir/metadata.jsonl`;
    `datasets.load_dataset("imagefolder", data_dir=output_dir)` loads it. A Parquet dataset
    gets shards of `shard_rows` rows in `output_dir/data/`, which may be a URL such as
    `s3://bucket/prefix`; `datasets.load_dataset(output_dir)` loads it. A rerun skips the rows
    already done and retries the failed ones.

    When the backend takes a seed, the job has one: `generation_kwargs["seed"]`, or one drawn
    on the first run and kept in `job.json`. Each image's seed derives from it, its row and its
    index (see `imgen.batch.seeding`), and is in its metadata line. A row that fails (a bad
    prompt, a backend error, an image that cannot be saved) is recorded in `errors.jsonl` and
    the job goes on. SIGTERM and SIGHUP stop the job as Ctrl-C does.

    Args:
        model: A model, or a spec such as "openai:gpt-image-1".
        prompts: A .txt (a prompt a line), .jsonl or .csv file, the same in memory as
            `PromptsText` (such as stdin's), or an iterable of prompts and mappings. Fields
            other than the prompt are carried into the metadata.
        output_dir: The dataset's folder, created if needed; for Parquet, also a URL that
            fsspec reaches (`s3://`, `gs://`, `memory://`...).
        num_generations: Images per prompt.
        generation_kwargs: Generation kwargs, over the model's `generation_kwargs` field.
        prompt_column: The prompt field of .jsonl/.csv rows and mappings (default "prompt").
        engine: "local" (in this process), "ray" (a Ray actor pool) or an engine instance
            such as `RayEngine(num_actors=4)`.
        resume: Keep what an earlier run of the same job made; False starts over.
        progress: Draw a progress line on stderr; None draws it when stderr is a terminal.
        force: Replace a dataset that another job (another model or kwargs) made in
            `output_dir`, instead of refusing.
        format: "imagefolder" or "parquet".
        shard_rows: Parquet only: the source rows each shard covers (default: the dataset's
            own when it resumes, else 1000). See `imgen.batch.shards`.
        storage_options: Parquet only: options of the fsspec filesystem (credentials, an
            `endpoint_url`...); environment variables and fsspec's config work too.

    Returns:
        The counts of the run.

    Raises:
        InvalidInputError: An argument of the wrong type, a missing or unknown prompts file,
            a missing prompt column, an output dir that is a file, holds another job's dataset
            or cannot be written (a missing bucket, denied access), a bad count or kwarg.
        ConfigurationError: An extra is missing: Ray, pyarrow, or the filesystem of a URL.
        BatchInterrupted: Ctrl-C or a signal stopped the run cleanly; `.summary` tells what it
            did.
        BatchStopped: The dataset could not be written (a full disk, a removed folder);
            `.summary` tells what the run did.
    """
    with stop_on_signals():  # SIGTERM and SIGHUP stop the job the way Ctrl-C does
        return _run(
            model,
            prompts,
            output_dir,
            num_generations,
            generation_kwargs or {},
            prompt_column,
            engine,
            resume=resume,
            progress=progress,
            force=force,
            dataset_format=format,
            shard_rows=shard_rows,
            storage_options=storage_options,
        )


def _run(
    model: ImageGenerationModel | str,
    prompts: str | os.PathLike[str] | PromptsText | Iterable[str | Mapping[str, Any]],
    output_dir: str | os.PathLike[str],
    num_generations: int,
    generation_kwargs: Mapping[str, Any],
    prompt_column: str | None,
    engine: Literal["local", "ray"] | Engine,
    *,
    resume: bool,
    progress: bool | None,
    force: bool,
    dataset_format: str,
    shard_rows: int | None,
    storage_options: Mapping[str, Any] | None,
) -> BatchSummary:
    started = time.perf_counter()
    if not isinstance(model, ImageGenerationModel | str):
        raise InvalidInputError(
            "model must be a model or a spec such as 'openai:gpt-image-1', got "
            f"{type(model).__name__}: {brief_repr(model)}."
        )
    folder = open_dataset(output_dir, dataset_format, shard_rows, storage_options)
    folder.check_location()
    source = read_prompts(prompts, prompt_column)
    runner = resolve_engine(engine)
    built = get_model(model) if isinstance(model, str) else model
    kwargs = built.prepare_generation(["check"], num_generations, generation_kwargs)
    seeded = takes_seed(built)
    job_seed = _job_seed(built, kwargs, num_generations) if seeded else None
    _check_carried_columns(source, [*kwargs, *([SEED] if seeded else [])])
    manifest = JobManifest.describe(
        built,
        num_generations,
        kwargs,
        source.origin,
        prompt_column,
        seed=job_seed,
        dataset_format=dataset_format,
        shard_rows=shard_rows,
    )
    columns = [*kwargs, *source.columns]
    done = folder.open(manifest, columns, resume=resume, force=force, seeded=seeded)
    assert folder.manifest is not None
    job_seed = folder.manifest.seed
    summary = BatchSummary(
        folder.output_dir,
        source.origin,
        rows_total=len(source.rows),
        seed=job_seed,
        dataset_format=dataset_format,
    )
    try:
        done.check_prompts(source, Path(folder.location))
        _report_bad_rows(source, folder, summary)
        pending = {
            row.row: missing
            for row in source.rows
            if (missing := done.missing(row.row, num_generations))
        }
        summary.rows_skipped = len(source.rows) - len(pending)
        if pending:
            draw = sys.stderr.isatty() if progress is None else progress
            line = ProgressLine(sum(map(len, pending.values())), sys.stderr) if draw else None
            rows = [row for row in source.rows if row.row in pending]
            if job_seed is not None:
                seeds = row_seeds(job_seed, pending)
                rows = [dataclasses.replace(row, seed=seeds[row.row]) for row in rows]
            if isinstance(folder, ParquetDataset):
                assert folder.manifest.shard_rows is not None
                tasks = plan_shards(rows, pending, folder.manifest.shard_rows, folder.shards)
                run = ShardJob(folder, summary, line).run(
                    runner, built, tasks, num_generations, kwargs
                )
            else:
                run = _Job(folder, summary, pending, line).run(
                    runner, built, rows, num_generations, kwargs
                )
            try:
                _run_on_fresh_loop(run)
            finally:
                if line is not None:
                    line.close()
        if isinstance(folder, ParquetDataset):
            try:
                folder.unify_schemas()
            except OSError as exc:
                raise DatasetWriteError(exc) from exc
    except KeyboardInterrupt as stop:
        summary.interrupted = True
        summary.signal = signal_name(signal_of(stop))
        raise BatchInterrupted(summary, signal_of(stop)) from None
    except DatasetWriteError as fault:  # the job itself failed, not one of its rows
        raise BatchStopped(summary, fault.cause) from fault.cause
    finally:
        folder.close()
        summary.seconds = time.perf_counter() - started
    return summary


def _job_seed(
    model: ImageGenerationModel, kwargs: dict[str, Any], num_generations: int
) -> int | None:
    """Take the job seed out of the generation kwargs; None when the job must draw one.

    Raises:
        InvalidInputError: The seed is not one int, or the backend cannot take the seeds
            derived from it.
    """
    seed = kwargs.pop(SEED, None)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidInputError(
            f"A batch job takes one int seed (-p seed=S), not {seed!r:.40}: every image's seed "
            "derives from it."
        )
    check_seed_range(model, num_generations)
    return seed


def _check_carried_columns(source: PromptSource, generation_columns: list[str]) -> None:
    clashes = [c for c in source.columns if c in RESERVED_COLUMNS or c in generation_columns]
    if clashes:
        raise InvalidInputError(
            f"{source.origin} has the column(s) {', '.join(map(repr, clashes))}, which the "
            f"dataset's metadata uses already ({', '.join(sorted(RESERVED_COLUMNS))}, the "
            "generation kwargs and, in a seeded job, seed): rename them."
        )


def _report_bad_rows(
    source: PromptSource, folder: ImageFolder | ParquetDataset, summary: BatchSummary
) -> None:
    summary.bad_rows = list(source.bad_rows)
    for index, bad in enumerate(source.bad_rows):
        folder.record_failure(bad.row, bad.prompt, "input", bad.reason)
        if index < _BAD_ROWS_LOGGED:
            noun = row_noun(source.origin)
            logger.warning("Skipped %s %d of %s: %s.", noun, bad.row, source.origin, bad.reason)
    hidden = len(source.bad_rows) - _BAD_ROWS_LOGGED
    if hidden > 0:
        logger.warning("Skipped %d more bad rows; see %s.", hidden, folder.errors_location)


def _run_on_fresh_loop(job: Coroutine[Any, Any, None]) -> None:
    """Run `job` on a new event loop in a helper thread and wait for it.

    This works the same from a script and from inside a running loop (Jupyter). On Ctrl-C the
    job is cancelled and its cleanup awaited before KeyboardInterrupt propagates.
    """
    state: dict[str, Any] = {}
    started, finished = threading.Event(), threading.Event()

    async def main() -> None:
        state["loop"], state["task"] = asyncio.get_running_loop(), asyncio.current_task()
        started.set()
        await job

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            state["error"] = exc
        finally:
            started.set()
            finished.set()

    threading.Thread(target=target, name="imgen-batch", daemon=True).start()
    # An Event, not Thread.join: on Python 3.11 a join interrupted by Ctrl-C may take the
    # thread for finished, and later joins return at once.
    try:
        wait_interruptibly(finished.wait)
    except KeyboardInterrupt:
        started.wait()
        if "task" in state:
            with contextlib.suppress(RuntimeError):  # the loop closed: the job just ended
                state["loop"].call_soon_threadsafe(state["task"].cancel)
        wait_interruptibly(finished.wait)
        raise
    if "error" in state:
        raise state["error"]


class _Job:
    """One run's writing side: images as rows finish, metadata lines in group commits."""

    def __init__(
        self,
        folder: ImageFolder,
        summary: BatchSummary,
        pending: dict[int, list[int]],
        progress: ProgressLine | None,
    ) -> None:
        self._folder = folder
        self._summary = summary
        self._pending = pending
        self._progress = progress
        # Rows whose images are written but which the loop has not taken yet (keyed by row): a
        # job stopped in between still commits them, so no image on disk is made twice.
        self._written = Unclaimed[int, list[Record]]()

    async def run(
        self,
        engine: Engine,
        model: ImageGenerationModel,
        rows: list[PromptRow],
        num_generations: int,
        generation_kwargs: Mapping[str, Any],
    ) -> None:
        """Write each row's images as it finishes; commit their lines in groups."""
        commits = _GroupCommit(self._folder, self._committed)
        try:
            stream = engine.run(model, rows, num_generations, generation_kwargs, self._write)
            async with aclosing(stream) as results:
                async for row, written in results:
                    if isinstance(written, str):
                        self._failed(row, written)
                    else:
                        commits.add(self._written.take(row.row))
            await commits.close()
        except BaseException:
            # Ctrl-C or a failing engine is no reason to make the images written so far again,
            # those the loop had yet to take included (the engine finished writing them).
            commits.stop()
            with contextlib.suppress(Exception):  # what went wrong first is what to report
                commits.commit_waiting(self._written.take_all())
            raise
        finally:
            commits.stop()
            self._redraw(force=True)

    def _write(self, row: PromptRow, outcome: Outcome) -> tuple[PromptRow, list[Record] | str]:
        """Write a finished row's missing images: their records, or why the row failed.

        The engine may call it from a thread of its own (see `Engine.run`).

        Raises:
            DatasetWriteError: The dataset cannot be written: a fault of the job, which stops.
        """
        if outcome.output is None:
            return row, outcome.error or "no output"
        try:
            records = self._folder.write_images(row, outcome.output, self._pending[row.row])
        except DatasetWriteError as exc:
            if exc.cause.errno != errno.EFBIG:  # only a file too big for the disk is the row's
                raise
            return row, f"{type(exc.cause).__name__}: {exc.cause}"
        except Exception as exc:  # whatever else this row's output holds fails this row only
            return row, f"{type(exc).__name__}: {exc}"
        self._written.put(row.row, records)
        return row, records

    def _committed(self, records: list[Record]) -> None:
        self._summary.images_written += len(records)
        for record in records:
            left = self._pending[record["row"]]
            left.remove(record["generation"])
            if not left:
                self._summary.rows_done += 1
        self._redraw()

    def _failed(self, row: PromptRow, error: str) -> None:
        self._folder.record_failure(row.row, row.prompt, "generation", error)
        self._summary.rows_failed += 1
        self._redraw()

    def _redraw(self, force: bool = False) -> None:
        if self._progress is not None:
            self._progress.update(
                self._summary.images_written, self._summary.rows_failed, force=force
            )


class _GroupCommit:
    """Makes images durable and appends their lines in a thread of its own, a group at a time:
    all the rows that arrived since the last group, at most every `_COMMIT_INTERVAL` seconds.
    The disk's latency is paid per group, not per image.

    Args:
        folder: The dataset.
        on_commit: Called on the loop with each group's records once they are on disk.
    """

    def __init__(self, folder: ImageFolder, on_commit: Callable[[list[Record]], None]) -> None:
        self._folder = folder
        self._on_commit = on_commit
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="imgen-batch-commit")
        self._waiting: list[Record] = []
        self._appending: tuple[list[Record], Future[None]] | None = None
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def add(self, records: list[Record]) -> None:
        """Queue a row's records for the next group."""
        if self._task.done():
            self._task.result()  # a failed append (a full disk, say) stops the job here
        self._waiting.extend(records)
        self._wake.set()

    async def close(self) -> None:
        """Commit everything queued, then stop."""
        self._closing.set()
        self._wake.set()
        await self._task

    def stop(self) -> None:
        """Stop now; a group being appended is finished. Lines still queued are dropped (their
        images are made again by the next run) unless `commit_waiting` follows."""
        self._task.cancel()
        self._thread.shutdown(wait=True, cancel_futures=True)

    def commit_waiting(self, more: Iterable[list[Record]] = ()) -> None:
        """After `stop`, commit the queued lines and `more` rows' from this thread."""
        if self._appending is not None:
            group, appended = self._appending
            self._appending = None
            if appended.cancelled():
                self._waiting[:0] = group
            elif appended.exception() is None:
                self._on_commit(group)
        group, self._waiting = self._waiting, []
        group.extend(record for records in more for record in records)
        if group:
            self._folder.append_metadata(group)
            self._on_commit(group)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_commit = -_COMMIT_INTERVAL
        while True:
            await self._wake.wait()
            # Rows that come faster than the interval make one group: a sync costs about the
            # same for one image as for hundreds. Closing commits at once.
            pause = last_commit + _COMMIT_INTERVAL - loop.time()
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), pause)
            last_commit = loop.time()
            self._wake.clear()
            group, self._waiting = self._waiting, []
            if group:
                appended = self._thread.submit(self._folder.append_metadata, group)
                self._appending = group, appended
                await asyncio.wrap_future(appended)
                self._appending = None
                self._on_commit(group)
            if self._closing.is_set() and not self._waiting:
                return
