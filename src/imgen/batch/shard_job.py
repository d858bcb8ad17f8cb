"""The writing side of a Parquet job: shards made by the engine, committed as they come.

An engine that writes shards where it generates (`RayEngine.run_shards`: each actor writes its
own) yields a report per shard, and the job commits each descriptor. Any other engine yields
rows: the job takes each into its shard (`ShardBuilder`) and, once a shard has all its rows,
writes it in a thread of its own while the engine goes on, then commits it.

When the job is stopped (Ctrl-C, a signal), the shards being written are finished and
committed, and so are the shards the workers wrote and the rows made so far of the shards still
open: a shard written with some of its rows is completed by the next run, like one whose rows
failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing
from typing import Any, Protocol, TypeVar

from imgen.base import ImageGenerationModel
from imgen.batch.dataset import DatasetWriteError
from imgen.batch.engines import Engine
from imgen.batch.inputs import PromptRow
from imgen.batch.outcomes import Outcome
from imgen.batch.parquet_dataset import ParquetDataset
from imgen.batch.progress import ProgressLine
from imgen.batch.shard_writer import ShardBuilder, ShardWriter
from imgen.batch.shards import ShardReport, ShardTask
from imgen.batch.summary import BatchSummary
from imgen.batch.threads import Unclaimed

__all__ = ["ShardEngine", "ShardJob"]

T = TypeVar("T")


class ShardEngine(Protocol):
    """An engine that writes shards where it generates (see `RayEngine.run_shards`)."""

    def run_shards(
        self,
        model: ImageGenerationModel,
        tasks: list[ShardTask],
        num_generations: int,
        generation_kwargs: Mapping[str, Any],
        writer: ShardWriter,
        settle: Callable[[ShardReport], T],
    ) -> AsyncGenerator[T, None]:
        """Make and write each task's shard; as each is written, settle its report (in a thread
        of the engine's) and yield what `settle` returns."""
        ...


class ShardJob:
    """One run's writing side for a Parquet dataset.

    Args:
        dataset: The dataset, opened.
        summary: The run's counts, updated as shards are committed.
        progress: The progress line, if one is drawn.
    """

    def __init__(
        self, dataset: ParquetDataset, summary: BatchSummary, progress: ProgressLine | None
    ) -> None:
        self._dataset = dataset
        self._summary = summary
        self._progress = progress
        self._made = 0
        # Shard writes and commits, one at a time and in order: commits never race.
        self._io = ThreadPoolExecutor(1, thread_name_prefix="imgen-batch-shards")
        self._in_flight: list[Future[None]] = []

    async def run(
        self,
        engine: Engine,
        model: ImageGenerationModel,
        tasks: list[ShardTask],
        num_generations: int,
        generation_kwargs: Mapping[str, Any],
    ) -> None:
        """Make every task's shard and commit it."""
        assert self._dataset.manifest is not None, "open() the dataset first"
        writer = ShardWriter(self._dataset.destination, self._dataset.manifest)
        try:
            if hasattr(engine, "run_shards"):
                shard_engine: ShardEngine = engine  # type: ignore[assignment]
                await self._run_there(
                    shard_engine, model, tasks, num_generations, generation_kwargs, writer
                )
            else:
                await self._run_here(
                    engine, model, tasks, num_generations, generation_kwargs, writer
                )
            for written in self._in_flight:
                await asyncio.wrap_future(written)
            self._check_in_flight()
        finally:
            self._io.shutdown(wait=True)
            self._redraw(force=True)

    async def _run_there(
        self,
        engine: ShardEngine,
        model: ImageGenerationModel,
        tasks: list[ShardTask],
        num_generations: int,
        generation_kwargs: Mapping[str, Any],
        writer: ShardWriter,
    ) -> None:
        arrivals = itertools.count()
        # Reports of shards the workers wrote that the loop has not taken yet, by arrival.
        unclaimed = Unclaimed[int, ShardReport]()

        def settle(report: ShardReport) -> int:
            arrival = next(arrivals)
            unclaimed.put(arrival, report)
            return arrival

        try:
            stream = engine.run_shards(
                model, tasks, num_generations, generation_kwargs, writer, settle
            )
            async with aclosing(stream) as arrived:
                async for arrival in arrived:
                    self._take(unclaimed.take(arrival))
                    self._check_in_flight()
        except BaseException:
            # Stopped: the shards the workers wrote are committed, those the loop had yet to
            # take included. What goes wrong doing so must not hide why the job stopped.
            for report in unclaimed.take_all():
                with contextlib.suppress(Exception):
                    self._take(report)
            raise

    async def _run_here(
        self,
        engine: Engine,
        model: ImageGenerationModel,
        tasks: list[ShardTask],
        num_generations: int,
        generation_kwargs: Mapping[str, Any],
        writer: ShardWriter,
    ) -> None:
        builders = {task.index: writer.start(task) for task in tasks}
        shard_of = {row.row: builders[task.index] for task in tasks for row in task.rows}
        rows = [row for task in tasks for row in task.rows]

        def settle(row: PromptRow, outcome: Outcome) -> tuple[ShardReport, ShardBuilder | None]:
            builder = shard_of[row.row]
            report = builder.add(row, outcome)
            return report, builder if builder.ready else None

        try:
            stream = engine.run(model, rows, num_generations, generation_kwargs, settle)
            async with aclosing(stream) as results:
                async for report, ready in results:
                    self._take(report)
                    if ready is not None:
                        del builders[ready.task.index]
                        self._in_flight.append(self._io.submit(self._write, ready))
                    self._check_in_flight()
        except BaseException:
            # Stopped: what was made is written and committed, so the next run need not make
            # it again. What goes wrong doing so must not hide why the job stopped.
            for builder in builders.values():
                self._in_flight.append(self._io.submit(self._write, builder))
            self._io.shutdown(wait=True)
            raise

    def _write(self, builder: ShardBuilder) -> None:
        """In the I/O thread: write a shard, then commit it."""
        try:
            report = builder.write()
        except OSError as exc:
            raise DatasetWriteError(exc) from exc
        self._commit(report)

    def _take(self, report: ShardReport) -> None:
        """On the loop: note a report's failures and progress; commit its shard (in order,
        in the I/O thread)."""
        if report.fault is not None:
            raise DatasetWriteError(OSError(report.fault))
        for row, prompt, error in report.failures:
            self._dataset.record_failure(row, prompt, "generation", error)
            self._summary.rows_failed += 1
        self._made += report.made
        if report.descriptor is not None:
            self._in_flight.append(self._io.submit(self._commit, report))
        self._redraw()

    def _commit(self, report: ShardReport) -> None:
        if report.descriptor is not None:
            try:
                self._dataset.commit([report.descriptor])
            except OSError as exc:
                raise DatasetWriteError(exc) from exc
        self._summary.rows_done += report.rows_done
        self._summary.images_written += report.images

    def _check_in_flight(self) -> None:
        """Raise what a finished write or commit raised (a full disk stops the job here)."""
        finished = [future for future in self._in_flight if future.done()]
        self._in_flight = [future for future in self._in_flight if not future.done()]
        for future in finished:
            future.result()

    def _redraw(self, force: bool = False) -> None:
        if self._progress is not None:
            made = max(self._made, self._summary.images_written)
            with contextlib.suppress(ValueError):  # stderr closed under us
                self._progress.update(made, self._summary.rows_failed, force=force)
