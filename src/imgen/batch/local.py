"""The local engine: generation in this process.

Async models go prompt by prompt through the core engine, at most `max_concurrency` requests in
flight, and each row is settled the moment it completes, so one slow request holds up nothing
else. Sync models run in a worker thread, a chunk of prompts per `generate` call, while a
second thread writes the images of the rows already made; when the job stops early, the model
is interrupted and its thread waited for.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from imgen.base import AsyncImageGenerationModel, ImageGenerationModel
from imgen.batch.engines import Settle
from imgen.batch.inputs import PromptRow
from imgen.batch.outcomes import Outcome, agenerate_outcome, generate_outcomes
from imgen.batch.threads import stream_from_thread

__all__ = ["LocalEngine"]

T = TypeVar("T")
_CHUNK_SIZE = 4
# Rows generated but not yet written, at most: enough to keep generating through a group sync.
_BUFFERED_ROWS = 256


@dataclass(frozen=True)
class LocalEngine:
    """Generates in this process: async models concurrently, sync models in chunks.

    Attributes:
        chunk_size: Prompts per `generate` call of a sync model. None uses the model's
            `batch_size` field when it has one, else 4: a few prompts per call spread its fixed
            cost, and an interrupted run loses little.
    """

    chunk_size: int | None = None

    def check(self) -> None:
        """The local engine runs anywhere."""

    def run(
        self,
        model: ImageGenerationModel,
        rows: list[PromptRow],
        num_generations: int,
        generation_kwargs: Mapping[str, Any],
        settle: Settle[T],
    ) -> AsyncGenerator[T, None]:
        """Settle each row as soon as it completes (see `Engine.run`)."""
        if isinstance(model, AsyncImageGenerationModel):
            return _run_async(model, rows, num_generations, generation_kwargs, settle)
        chunk_size = self.chunk_size or getattr(model, "batch_size", None) or _CHUNK_SIZE
        return _run_sync(model, rows, num_generations, generation_kwargs, settle, chunk_size)


class _Failed(NamedTuple):
    """What a worker hands on instead of a result when settling a row raised."""

    error: Exception


def _rows_in_flight(model: AsyncImageGenerationModel, num_generations: int) -> int:
    """Rows to run at once so that at most `max_concurrency` requests are in flight.

    A model that cannot make `n` images in one request fans each row out into `n` requests.
    """
    fans_out = not model.supports_num_generations
    limit = model.max_concurrency or 1
    per_row = min(num_generations, limit) if fans_out else 1
    return max(1, limit // per_row)


async def _run_async(
    model: AsyncImageGenerationModel,
    rows: list[PromptRow],
    num_generations: int,
    generation_kwargs: Mapping[str, Any],
    settle: Settle[T],
) -> AsyncGenerator[T, None]:
    loaded_here = not model.is_loaded
    if loaded_here:
        model.load()
    todo = iter(rows)
    workers = min(_rows_in_flight(model, num_generations), len(rows))
    finished: asyncio.Queue[T | _Failed] = asyncio.Queue(maxsize=workers)

    async def work() -> None:
        try:
            for row in todo:  # the workers share one iterator: each row runs once
                outcome = await agenerate_outcome(model, row, num_generations, generation_kwargs)
                await finished.put(settle(row, outcome))
        except Exception as exc:  # settle failed (a full disk, say): the job stops
            await finished.put(_Failed(exc))

    tasks = [asyncio.create_task(work()) for _ in range(workers)]
    try:
        for _ in rows:
            item = await finished.get()
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if loaded_here:
            model.unload()


def _run_sync(
    model: ImageGenerationModel,
    rows: list[PromptRow],
    num_generations: int,
    generation_kwargs: Mapping[str, Any],
    settle: Settle[T],
    chunk_size: int,
) -> AsyncGenerator[T, None]:
    def produce(emit: Callable[[tuple[PromptRow, Outcome]], None], stop: threading.Event) -> None:
        loaded_here = not model.is_loaded
        if loaded_here:
            model.load()
        try:
            for start in range(0, len(rows), chunk_size):
                if stop.is_set():
                    return
                chunk = rows[start : start + chunk_size]
                outcomes = generate_outcomes(model, chunk, num_generations, generation_kwargs)
                for row, outcome in zip(chunk, outcomes, strict=True):
                    emit((row, outcome))
        finally:
            if loaded_here:
                model.unload()

    return stream_from_thread(
        produce,
        lambda pair: settle(*pair),
        buffer=max(_BUFFERED_ROWS, chunk_size),
        name="imgen-batch-generate",
        interrupt=model.interrupt,
    )
