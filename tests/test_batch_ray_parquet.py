"""The Ray engine with --format parquet: the actors write the shards themselves, to a local
folder or to S3 (moto's server on 127.0.0.1); the driver only commits their descriptors.

Marked `ray` (startup takes seconds), so it can run in a session of its own: `pytest -m ray`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from batch_support import write_lines
from imgen.batch import LocalEngine, RayEngine, run_batch
from imgen.batch.destination import Destination
from imgen.batch.shards import ShardReport
from imgen.testing import FakeImageGeneration
from parquet_support import assert_complete_parquet, assert_images_are_the_fakes, checksums
from s3_support import moto_server, s3_environment

pytestmark = pytest.mark.ray
ROWS = 14


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def local_ray(s3_endpoint: str) -> Iterator[None]:
    import ray

    # Secrets reach the workers through runtime_env, as on a remote cluster.
    env = s3_environment(s3_endpoint)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env},
    )
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # the driver writes job.json and shards.json itself
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    ray.shutdown()


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "prompts.txt", *(f"a heron, number {i}" for i in range(ROWS)))


@pytest.mark.usefixtures("local_ray")
def test_actors_write_the_shards_and_the_driver_gets_descriptors_only(
    tmp_path: Path, prompts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def driver_writes(*args: Any) -> None:
        raise AssertionError("the driver wrote a shard")

    # Patched in this process, the driver, only: the actors are processes of their own.
    monkeypatch.setattr(Destination, "put_file", driver_writes)
    payloads: list[int] = []
    original = ShardReport.from_json.__func__  # type: ignore[attr-defined]

    def measured(cls: type[ShardReport], text: str) -> ShardReport:
        payloads.append(len(text))
        return original(cls, text)  # type: ignore[no-any-return]

    monkeypatch.setattr(ShardReport, "from_json", classmethod(measured))
    # Uncompressed PNGs: 12 KB each, so a shard weighs far more than its report.
    model = FakeImageGeneration(compression_level=0, failure_rate=0.3, failure_seed=4)
    out = tmp_path / "ray"
    engine = RayEngine(num_actors=2, batch_size=2)

    first = run_batch(
        model, prompts, out, format="parquet", shard_rows=4, engine=engine,
        generation_kwargs={"seed": 9},
    )  # fmt: skip
    failed = [json.loads(line)["row"] for line in (out / "errors.jsonl").read_text().splitlines()]
    second = run_batch(
        FakeImageGeneration(compression_level=0), prompts, out, format="parquet", engine=engine
    )

    assert 0 < first.rows_failed == len(failed) < ROWS
    assert (second.rows_skipped, second.rows_done) == (ROWS - len(failed), len(failed))
    # A report per shard: 4 the first time, then one per shard with failed rows, amended.
    assert len(payloads) == 4 + len({(row - 1) // 4 for row in failed})
    assert max(payloads) < 2_000 < 4 * 12_000
    records = assert_complete_parquet(out, range(1, ROWS + 1), 1, shard_rows=4)
    assert len(records[0]["image"]["bytes"]) > 12_000
    local = tmp_path / "local"
    monkeypatch.undo()
    run_batch(
        FakeImageGeneration(compression_level=0), prompts, local, format="parquet", shard_rows=4,
        engine=LocalEngine(), generation_kwargs={"seed": 9},
    )  # fmt: skip
    assert checksums(out) == checksums(local)


@pytest.mark.usefixtures("local_ray")
def test_actors_write_to_s3_with_secrets_from_the_runtime_env(
    tmp_path: Path, prompts: Path
) -> None:
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("ray-bucket")
    url = "s3://ray-bucket/herons"

    summary = run_batch(
        FakeImageGeneration(), prompts, url, format="parquet", shard_rows=5,
        engine=RayEngine(num_actors=2), num_generations=2,
    )  # fmt: skip

    assert (summary.rows_done, summary.images_written) == (ROWS, 2 * ROWS)
    fs.get("ray-bucket/herons/", str(tmp_path / "copy"), recursive=True)
    records = assert_complete_parquet(tmp_path / "copy", range(1, ROWS + 1), 2, shard_rows=5)
    assert_images_are_the_fakes(tmp_path / "copy", records)
