"""Batch benchmarks: the local engine against a plain loop writing the same PNGs, Parquet shards
against an imagefolder, and the Ray engine (2 actors) against the local one on CPU-bound work.

Driver memory (Ray + Parquet against local + imagefolder) is measured in `bench.batch_memory`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import Row, side_by_side
from imgen.batch import Engine, RayEngine, run_batch
from imgen.testing.fake import FakeImageGeneration, fake_image

IMAGES = 1_000
ROUNDS = 7
FORMAT_IMAGES = 5_000
FORMAT_ROUNDS = 3
SHARD_ROWS = 1_000
# Big enough that the pool's start-up (a few seconds) is not what the Ray row measures.
CPU_IMAGES = 1_200
CPU_SECONDS = 0.05
RAY_ACTORS = 2


def _prompts(count: int) -> list[str]:
    return [f"a watercolor of lighthouse number {i}" for i in range(count)]


def _batch_seconds(
    model: FakeImageGeneration,
    prompts: list[str],
    engine: Engine | None = None,
    files: list[int] | None = None,
    **options: Any,
) -> float:
    """Seconds of one job into a fresh folder; the number of files it made goes to `files`."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        summary = run_batch(
            model,
            prompts,
            Path(folder) / "dataset",
            engine=engine or "local",
            progress=False,
            **options,
        )
        elapsed = time.perf_counter() - start
        if files is not None:
            files.append(sum(1 for path in Path(folder).rglob("*") if path.is_file()))
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
        "made durable (an fsync per image, or one syncfs of the dataset's filesystem for a "
        "large group); the plain loop never waits for the disk.",
    )


def parquet_against_imagefolder() -> Row:
    """The same job written as Parquet shards and as an imagefolder: time and files made."""
    prompts = _prompts(FORMAT_IMAGES)
    model = FakeImageGeneration()
    parquet_files: list[int] = []
    folder_files: list[int] = []
    parquet, folder = side_by_side(
        lambda: _batch_seconds(
            model, prompts, files=parquet_files, format="parquet", shard_rows=SHARD_ROWS
        ),
        lambda: _batch_seconds(model, prompts, files=folder_files),
        FORMAT_ROUNDS,
    )
    return Row(
        f"{FORMAT_IMAGES:,} fake 64x64 PNGs, local engine: --format parquet (shards of "
        f"{SHARD_ROWS:,} rows) vs imagefolder",
        f"{parquet:.2f} s, {parquet_files[0]:,} files",
        f"{folder:.2f} s, {folder_files[0]:,} files",
        parquet / folder,
        "<= 1.0x",
        comment="Files counted in the output folder, job.json, shards.json or metadata.jsonl "
        "and errors.jsonl included. A shard is written and fsynced once, where an imagefolder "
        "writes a file per image.",
    )


def ray_against_local(rounds: int = 2) -> list[Row]:
    """Two rows: throughput on a job big enough that the pool's start-up is a small part of it,
    and that start-up on its own (a job of one image per actor). Both engines write Parquet
    shards: on Ray the actors write them, so the driver does not compete for the cores."""
    import ray

    ray.init(num_cpus=RAY_ACTORS, include_dashboard=False, log_to_driver=False)
    try:
        prompts = _prompts(CPU_IMAGES)
        model = FakeImageGeneration(cpu_seconds=CPU_SECONDS)
        engine = RayEngine(num_actors=RAY_ACTORS, batch_size=2)
        options = {"format": "parquet", "shard_rows": CPU_IMAGES // 12}
        tiny = prompts[:RAY_ACTORS]
        ray_start_up, local_start_up = side_by_side(
            lambda: _batch_seconds(model, tiny, engine, **options),
            lambda: _batch_seconds(model, tiny, **options),
            3,
        )
        ray_seconds, local_seconds = side_by_side(
            lambda: _batch_seconds(model, prompts, engine, **options),
            lambda: _batch_seconds(model, prompts, **options),
            rounds,
        )
    finally:
        ray.shutdown()
    return [
        Row(
            f"{CPU_IMAGES:,} fake images of {CPU_SECONDS * 1000:.0f} ms CPU each, Parquet: ray "
            f"engine ({RAY_ACTORS} actors, pool start-up included) vs local",
            f"{CPU_IMAGES / ray_seconds:.1f} images/s",
            f"{CPU_IMAGES / local_seconds:.1f} images/s",
            local_seconds / ray_seconds,
            ">= 1.5x",
            kind="throughput",
            comment="Includes starting the actor pool (the start-up row below); two actors on "
            "two cores make at most 2x, less what the driver and Ray itself use.",
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
    return [local_overhead(), parquet_against_imagefolder(), *ray_against_local()]


if __name__ == "__main__":
    for result in run():
        print(result)
