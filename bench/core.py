"""Core benchmarks: `import imgen` against its dependencies; the engine against bare asyncio."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bench.harness import Row, processes_side_by_side, python
from imgen import AsyncImageGenerationModel

CALLS = 2_000
CONCURRENCY = 64
SLEEP = 0.005


class Sleeper(AsyncImageGenerationModel):
    """A backend whose every call just sleeps, so only the engine's own cost shows."""

    @property
    def model_name(self) -> str:
        return "sleeper"

    async def agenerate(self, input: str, num_generations: int = 1) -> list[dict[str, Any]]:
        """Sleep, then answer.

        Args:
            input: The prompt.
            num_generations: Images asked.
        """
        await asyncio.sleep(SLEEP)
        return [{"images": ["x"] * num_generations}]


async def _bare(prompts: list[str], model: Sleeper) -> float:
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(prompt: str) -> list[dict[str, Any]]:
        async with slots:
            return await model.agenerate(prompt)

    start = time.perf_counter()
    await asyncio.gather(*(one(p) for p in prompts))
    return CALLS / (time.perf_counter() - start)


async def _engine(prompts: list[str], model: Sleeper) -> float:
    start = time.perf_counter()
    await model.agenerate_outputs(prompts)
    return CALLS / (time.perf_counter() - start)


def engine_throughput(rounds: int = 7) -> Row:
    prompts = [f"prompt {i}" for i in range(CALLS)]
    model = Sleeper(max_concurrency=CONCURRENCY)
    model.load()

    async def measure() -> tuple[list[float], list[float]]:
        ours, bare = [], []
        await _engine(prompts[:100], model)  # warm-up: starts the model's loop
        for _ in range(rounds):
            ours.append(await _engine(prompts, model))
            bare.append(await _bare(prompts, model))
        return ours, bare

    ours, bare = asyncio.run(measure())
    model.unload()
    subject, baseline = statistics.median(ours), statistics.median(bare)
    return Row(
        f"{CALLS} agenerate calls (sleep {SLEEP * 1000:.0f} ms) at concurrency {CONCURRENCY}: "
        "engine vs Semaphore + gather",
        f"{subject:,.0f} calls/s",
        f"{baseline:,.0f} calls/s",
        subject / baseline,
        ">= 0.95x",
        kind="throughput",
    )


def import_cost(runs: int = 15) -> Row:
    ours, floor = processes_side_by_side(
        python("import imgen"),
        python("import pydantic, pluggy, docstring_parser, importlib_metadata, yaml"),
        runs,
    )
    return Row(
        "`import imgen` vs importing its dependencies",
        f"{ours * 1000:.0f} ms",
        f"{floor * 1000:.0f} ms",
        ours / floor,
        "<= 1.2x",
        comment="The gap is pydantic's model machinery: the floor imports the pydantic package, "
        "whose names load lazily, while imgen defines its base classes, which loads pydantic.main "
        "and builds their schemas (see `python -X importtime -c 'import imgen'`). Any package "
        "that defines one pydantic model at import pays most of it.",
    )


def run() -> list[Row]:
    return [import_cost(), engine_throughput()]
