"""Batch benchmarks: the local engine against a plain loop writing the same PNGs, and the Ray
engine (2 actors) against the local one on CPU-bound work."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.harness import Row, side_by_side
from imgen.batch import Engine, RayEngine, run_batch
from imgen.testing.fake import FakeImageGeneration, fake_image

IMAGES = 1_000
ROUNDS = 7
# Big enough that the pool's start-up (a few seconds) is not what the Ray row measures.
CPU_IMAGES = 1_000
CPU_SECONDS = 0.02
RAY_ACTORS = 2


def _prompts(count: int) -> list[str]:
    return [f"a watercolor of lighthouse number {i}" for i in range(count)]


def _batch_seconds(
    model: FakeImageGeneration, prompts: list[str], engine: Engine | None = None
) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        summary = run_batch(
            model, prompts, Path(folder) / "dataset", engine=engine or "local", progress=False
        )
        elapsed = time.perf_counter() - start
    assert summary.images_written == len(prompts), summary
    return elapsed


def _plain_loop_seconds(prompts: list[str]) -> float:
    """What any script does: make each image and write it to a file."""
    with tempfile.TemporaryDirectory() as folder:
        images = Path(folder) / "images"
        images.mkdir()
        start = time.perf_counter()
        for row, prompt in enumerate(prompts, 1):
            (images / f"{row:06d}-0.png").write_bytes(fake_image(prompt, 0, 64, 64, "png"))
        return time.perf_counter() - start


def local_overhead() -> Row:
    prompts = _prompts(IMAGES)
    model = FakeImageGeneration()
    ours, plain = side_by_side(
        lambda: _batch_seconds(model, prompts), lambda: _plain_loop_seconds(prompts), ROUNDS
    )
    return Row(
        f"{IMAGES} fake 64x64 PNGs: local engine (dataset, fsynced) vs a plain write loop",
        f"{ours:.2f} s",
        f"{plain:.2f} s",
        ours / plain,
        "<= 1.2x",
        comment="Durability: before their metadata lines are written, each group of images is "
        "made durable with os.sync(), which on Linux waits for every filesystem of the host, "
        "other processes' writes included; the plain loop never waits for the disk.",
    )


def ray_against_local(rounds: int = 2) -> list[Row]:
    """Two rows: throughput on a job big enough that the pool's start-up is a small part of it,
    and that start-up on its own (a job of one image per actor)."""
    import ray

    ray.init(num_cpus=RAY_ACTORS, include_dashboard=False, log_to_driver=False)
    try:
        prompts = _prompts(CPU_IMAGES)
        model = FakeImageGeneration(cpu_seconds=CPU_SECONDS)
        engine = RayEngine(num_actors=RAY_ACTORS, batch_size=2)
        tiny = prompts[:RAY_ACTORS]
        ray_start_up, local_start_up = side_by_side(
            lambda: _batch_seconds(model, tiny, engine), lambda: _batch_seconds(model, tiny), 3
        )
        ray_seconds, local_seconds = side_by_side(
            lambda: _batch_seconds(model, prompts, engine),
            lambda: _batch_seconds(model, prompts),
            rounds,
        )
    finally:
        ray.shutdown()
    return [
        Row(
            f"{CPU_IMAGES:,} fake images of {CPU_SECONDS * 1000:.0f} ms CPU each: ray engine "
            f"({RAY_ACTORS} actors, pool start-up included) vs local",
            f"{CPU_IMAGES / ray_seconds:.1f} images/s",
            f"{CPU_IMAGES / local_seconds:.1f} images/s",
            local_seconds / ray_seconds,
            "report",
            kind="throughput",
            comment="Includes starting the actor pool (the start-up row below), and depends on "
            "the cores free for the actors.",
        ),
        Row(
            f"start-up: a {RAY_ACTORS}-image job, ray engine ({RAY_ACTORS} actors load the "
            "model) vs local",
            f"{ray_start_up:.2f} s",
            f"{local_start_up:.2f} s",
            ray_start_up / local_start_up,
            "report",
        ),
    ]


def run() -> list[Row]:
    return [local_overhead(), *ray_against_local()]


if __name__ == "__main__":
    for result in run():
        print(result)
