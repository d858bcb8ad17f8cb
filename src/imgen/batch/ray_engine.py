"""The Ray engine: Ray Data over a pool of actors, each holding one loaded model.

Each actor rebuilds the model from its `dump()` with `imgen.load_model`, which resolves the
backend by its registered name: the backend's plugin must be installed where the actors run,
and secrets, which a dump never holds, come from the environment variables there (pass them
with Ray's `runtime_env` on a remote cluster).

For an imagefolder, the actors send the images back and the driver writes every file (in the
thread that collects the results), so the dataset's crash-safety rules hold unchanged. For a
Parquet dataset (`run_shards`), each actor makes whole shards and writes them straight to the
destination; the driver receives shard descriptors only, so its memory and traffic per image
stay in the size of the metadata.

Ray ships as the optional extra `imgen[ray]` and is imported only when this engine runs.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from contextlib import aclosing
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from imgen.base import ImageGenerationModel
from imgen.batch.engines import Settle
from imgen.batch.inputs import PromptRow
from imgen.batch.outcomes import Outcome, generate_outcomes
from imgen.batch.shard_writer import ShardWriter
from imgen.batch.shards import ShardReport, ShardTask
from imgen.batch.threads import stream_from_thread
from imgen.errors import ConfigurationError

__all__ = ["RayEngine"]

logger = logging.getLogger("imgen.batch")

R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True)
class RayEngine:
    """Generates on Ray: a pool of actors, each loading the model once.

    Uses the Ray instance this process is connected to, or the cluster `RAY_ADDRESS` names,
    or starts a local one for the job. With a Parquet dataset, the actors write the shards.

    Attributes:
        num_actors: Actors in the pool; None makes one per `num_gpus` GPUs of the cluster
            when `num_gpus` is set, else one per `num_cpus` CPUs.
        batch_size: Prompts per actor call.
        num_cpus: CPUs each actor reserves.
        num_gpus: GPUs each actor reserves.
    """

    num_actors: int | None = None
    batch_size: int = 4
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def check(self) -> None:
        """Fail unless Ray is installed.

        Raises:
            ConfigurationError: Ray is missing, with the command that installs it.
        """
        if importlib.util.find_spec("ray") is None:
            raise ConfigurationError(
                "The ray engine needs Ray: pip install 'imgen[ray]'. Or use --engine local."
            )

    async def run(
        self,
        model: ImageGenerationModel,
        rows: list[PromptRow],
        num_generations: int,
        generation_kwargs: Mapping[str, Any],
        settle: Settle[T],
    ) -> AsyncGenerator[T, None]:
        """Settle each row as the actors finish it (see `Engine.run`)."""
        by_number = {row.row: row for row in rows}
        # Rows travel with their seeds: which actor makes a row never changes its images.
        items = [
            {"row": row.row, "prompt": row.prompt}
            if row.seed is None
            else {"row": row.row, "prompt": row.prompt, "seed": row.seed}
            for row in rows
        ]

        def unpack(batch: dict[str, Any]) -> Iterator[tuple[PromptRow, Outcome]]:
            for number, payload in zip(batch["row"], batch["outcome"], strict=True):
                yield by_number[int(number)], Outcome(**json.loads(payload))

        stream = self._stream(
            items,
            _ActorGenerator,
            {
                "config": model.dump(),
                "num_generations": num_generations,
                "generation_kwargs": dict(generation_kwargs),
            },
            self.batch_size,
            unpack,
            lambda pair: settle(*pair),
        )
        async with aclosing(stream) as results:
            async for result in results:
                yield result

    async def run_shards(
        self,
        model: ImageGenerationModel,
        tasks: list[ShardTask],
        num_generations: int,
        generation_kwargs: Mapping[str, Any],
        writer: ShardWriter,
        settle: Callable[[ShardReport], T],
    ) -> AsyncGenerator[T, None]:
        """Make each task's shard on an actor, which writes it to the destination itself; as
        shards are written, settle the actors' reports (descriptors and failures, never images)
        in a thread and yield what `settle` returns."""

        def unpack(batch: dict[str, Any]) -> Iterator[ShardReport]:
            for payload in batch["report"]:
                yield ShardReport.from_json(str(payload))

        stream = self._stream(
            [{"task": task.to_json()} for task in tasks],
            _ShardActor,
            {
                "config": model.dump(),
                "num_generations": num_generations,
                "generation_kwargs": dict(generation_kwargs),
                "writer": writer,
                "batch_size": self.batch_size,
            },
            1,  # a shard per call
            unpack,
            settle,
        )
        async with aclosing(stream) as reports:
            async for report in reports:
                yield report

    async def _stream(
        self,
        items: list[dict[str, Any]],
        actor: type,
        actor_kwargs: dict[str, Any],
        batch_size: int,
        unpack: Callable[[dict[str, Any]], Iterator[R]],
        settle: Callable[[R], T],
    ) -> AsyncGenerator[T, None]:
        """Map `items` through a pool of `actor`s; settle and yield what `unpack` finds in the
        results, as they come."""
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            # The workers' output stays in Ray's logs: this process's stdout is the job's
            # summary (JSON with --json), and Ray's notes about the actors it stops at the end
            # would garble it.
            ray.init(log_to_driver=False)
        try:
            actors = self._pool_size()
            # RAY_ADDRESS makes ray.init connect to a cluster, which may grow.
            self._check_resources(actors, fixed=started_here and not os.environ.get("RAY_ADDRESS"))
            results = _Results(self._dataset(items, actor, actor_kwargs, batch_size, actors))
            stream = stream_from_thread(
                lambda emit, stop: results.produce(unpack, emit, stop),
                settle,
                buffer=4 * self.batch_size,
                name="imgen-batch-ray-results",
            )
            try:
                async with aclosing(stream) as settled:
                    async for result in settled:
                        yield result
            finally:
                # Ray Data's executor must stop before Ray does, or it reports the actors it
                # loses as errors.
                results.close()
        finally:
            if started_here:
                ray.shutdown()

    def _dataset(
        self,
        items: list[dict[str, Any]],
        actor: type,
        actor_kwargs: dict[str, Any],
        batch_size: int,
        actors: int,
    ) -> Any:
        import ray.data

        # The job draws its own progress line; Ray's bars would garble it.
        ray.data.DataContext.get_current().enable_progress_bars = False
        return ray.data.from_items(items).map_batches(
            actor,
            fn_constructor_kwargs=actor_kwargs,
            compute=ray.data.ActorPoolStrategy(size=actors),
            batch_size=batch_size,
            batch_format="numpy",
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
        )

    def _check_resources(self, actors: int, *, fixed: bool) -> None:
        """Refuse a pool the cluster cannot hold, rather than wait for it forever.

        Args:
            actors: The pool size.
            fixed: The cluster cannot grow (the job started it): too few resources is an error,
                not a warning.

        Raises:
            ConfigurationError: The pool needs more CPUs or GPUs than a fixed cluster has.
        """
        import ray

        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        for name, per_actor in (("CPU", self.num_cpus), ("GPU", self.num_gpus)):
            needed, available = actors * per_actor, resources.get(name, 0)
            if needed <= available:
                continue
            message = (
                f"{actors} Ray actors of {per_actor:g} {name}(s) each need {needed:g} {name}s, "
                f"but the Ray cluster has {available:g}"
            )
            if fixed:
                raise ConfigurationError(f"{message}: lower --actors or --gpus-per-actor.")
            logger.warning("%s; the job waits for the cluster to grow.", message)

    def _pool_size(self) -> int:
        if self.num_actors is not None:
            return self.num_actors
        import ray

        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        if self.num_gpus:
            return max(1, int(resources.get("GPU", 0) // self.num_gpus))
        return max(1, int(resources.get("CPU", 1) // self.num_cpus))


class _ActorGenerator:
    """A Ray Data actor: loads the model once, then generates a batch of prompts per call."""

    def __init__(
        self, config: dict[str, Any], num_generations: int, generation_kwargs: dict[str, Any]
    ) -> None:
        from imgen.serialization import load_model

        self._model = load_model(config)
        self._model.load()
        self._num_generations = num_generations
        self._generation_kwargs = generation_kwargs

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Generate for the batch's rows; each outcome travels back as a JSON string."""
        seeds = batch.get("seed")
        rows = [
            PromptRow(int(number), str(prompt), seed=None if seeds is None else int(seeds[i]))
            for i, (number, prompt) in enumerate(zip(batch["row"], batch["prompt"], strict=True))
        ]
        outcomes = generate_outcomes(
            self._model, rows, self._num_generations, self._generation_kwargs
        )
        return {
            "row": batch["row"],
            # default=str: metadata JSON cannot hold must not fail the whole batch here.
            "outcome": [json.dumps(asdict(outcome), default=str) for outcome in outcomes],
        }


class _ShardActor:
    """A Ray Data actor that makes whole shards: loads the model once, then per call
    generates a shard's rows (a chunk of prompts per `generate` call), writes the shard to the
    destination and returns only its report."""

    def __init__(
        self,
        config: dict[str, Any],
        num_generations: int,
        generation_kwargs: dict[str, Any],
        writer: ShardWriter,
        batch_size: int,
    ) -> None:
        from imgen.serialization import load_model

        self._model = load_model(config)
        self._model.load()
        self._num_generations = num_generations
        self._generation_kwargs = generation_kwargs
        self._writer = writer
        self._batch_size = batch_size

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Make the batch's shards; a JSON report each."""
        return {"report": [self._make(ShardTask.from_json(str(text))) for text in batch["task"]]}

    def _make(self, task: ShardTask) -> str:
        builder = self._writer.start(task)
        made, failures = 0, []
        for start in range(0, len(task.rows), self._batch_size):
            chunk = task.rows[start : start + self._batch_size]
            outcomes = generate_outcomes(
                self._model, chunk, self._num_generations, self._generation_kwargs
            )
            for row, outcome in zip(chunk, outcomes, strict=True):
                taken = builder.add(row, outcome)
                made += taken.made
                failures.extend(taken.failures)
        try:
            written = builder.write()
        except OSError as exc:  # the job stops; the driver says why
            return ShardReport(task.index, failures=failures, fault=str(exc)).to_json()
        return replace(written, failures=failures, made=made).to_json()


class _Results:
    """The results of a Ray dataset, iterated in the thread that calls `produce`; `close`,
    from any thread, stops the Ray Data executor the iteration started."""

    def __init__(self, dataset: Any) -> None:
        self._dataset = dataset
        self._before = _executors()

    def produce(
        self,
        unpack: Callable[[dict[str, Any]], Iterator[R]],
        emit: Callable[[R], None],
        stop: threading.Event,
    ) -> None:
        """Emit what `unpack` finds in each batch of results; return early once `stop` is set."""
        for batch in self._dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for item in unpack(batch):
                emit(item)
            if stop.is_set():
                return

    def close(self) -> None:
        """Shut down the executors the iteration started (a finished one is shut already)."""
        for executor in _executors() - self._before:
            executor.shutdown(force=False)


def _executors() -> set[Any]:
    """Ray Data's streaming executors running in this process (each is a thread)."""
    from ray.data._internal.execution.streaming_executor import StreamingExecutor

    return {thread for thread in threading.enumerate() if isinstance(thread, StreamingExecutor)}
