"""Parquet jobs killed (SIGKILL), interrupted (Ctrl-C) or stopped (SIGTERM) part way, then
resumed, on the local and the Ray engines: the dataset ends complete, and its shards are the
bytes of a run straight through."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_support import wait_until, write_lines
from imgen.batch import RayEngine, run_batch
from imgen.testing.fake import AsyncFakeImageGeneration, FakeImageGeneration
from parquet_support import assert_complete_parquet, assert_images_are_the_fakes, checksums

ROWS = 30
SHARD_ROWS = 3
JOB = """
import sys
from imgen.batch import RayEngine, run_batch
from imgen.testing.fake import AsyncFakeImageGeneration, FakeImageGeneration

kind, prompts, out = sys.argv[1:4]
if kind == "async":
    model, engine = AsyncFakeImageGeneration(latency=0.1, max_concurrency=4), "local"
elif kind == "sync":
    model, engine = FakeImageGeneration(latency=0.2), "local"
else:
    import ray

    ray.init(address=sys.argv[4])  # the cluster the test started
    model, engine = FakeImageGeneration(latency=0.1), RayEngine(num_actors=2, batch_size=1)
run_batch(
    model, prompts, out, num_generations=2, generation_kwargs={"seed": 12}, progress=False,
    format="parquet", shard_rows=3, engine=engine,
)
"""
BATCH_COMMAND = "from imgen.cli import main; main()"


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "prompts.txt", *(f"prompt number {i}" for i in range(ROWS)))


def committed_shards(out: Path) -> int:
    try:  # shards.json is replaced in one step: a read sees a whole version
        return len(json.loads((out / "shards.json").read_text())["shards"])
    except (FileNotFoundError, ValueError):
        return 0


def straight_run(model: Any, prompts_file: Path, out: Path) -> dict[str, str]:
    run_batch(
        model, prompts_file, out, num_generations=2, generation_kwargs={"seed": 12},
        format="parquet", shard_rows=SHARD_ROWS,
    )  # fmt: skip
    return checksums(out)


def assert_resumed_completely(out: Path, prompts_file: Path, model: Any, **options: Any) -> None:
    summary = run_batch(model, prompts_file, out, num_generations=2, format="parquet", **options)
    assert summary.complete
    records = assert_complete_parquet(out, range(1, ROWS + 1), 2, shard_rows=SHARD_ROWS)
    assert_images_are_the_fakes(out, records)


@pytest.mark.parametrize(("kind", "killed_after"), [("async", 1), ("async", 6), ("sync", 3)])
def test_a_killed_job_resumes_into_the_shards_of_a_straight_run(
    tmp_path: Path, prompts_file: Path, kind: str, killed_after: int
) -> None:
    out = tmp_path / "out"
    job = subprocess.Popen([sys.executable, "-c", JOB, kind, str(prompts_file), str(out)])
    wait_until(lambda: committed_shards(out) >= killed_after, job)

    job.send_signal(signal.SIGKILL)
    job.wait()

    assert committed_shards(out) < ROWS // SHARD_ROWS
    model = AsyncFakeImageGeneration() if kind == "async" else FakeImageGeneration()
    assert_resumed_completely(out, prompts_file, model)
    assert checksums(out) == straight_run(model, prompts_file, tmp_path / "straight")


def test_ctrl_c_commits_what_was_made_and_the_next_run_completes(
    tmp_path: Path, prompts_file: Path
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-c", BATCH_COMMAND, "batch", "fake-async", str(prompts_file)]
    options = ["-o", str(out), "-n", "2", "-p", "seed=12", "--format", "parquet"]
    options += ["--shard-rows", "3", "-O", "latency=0.1", "-O", "max_concurrency=2", "--json"]
    job = subprocess.Popen([*command, *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: committed_shards(out) >= 2, job)

    job.send_signal(signal.SIGINT)
    stdout, stderr = job.communicate(timeout=30)

    assert job.returncode == 130, (stdout, stderr)
    assert b"Traceback" not in stderr
    summary = json.loads(stdout)
    assert summary["interrupted"]
    # What was made before Ctrl-C is in shards: the open shards were written, partly.
    in_shards = sum(d["images"] for d in json.loads((out / "shards.json").read_text())["shards"])
    assert in_shards == summary["images_written"] > 0
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

    again = subprocess.run([*command, *options], capture_output=True, timeout=60, check=False)

    assert again.returncode == 0, again.stderr
    assert_complete_parquet(out, range(1, ROWS + 1), 2, shard_rows=SHARD_ROWS)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray instance that the jobs' own processes connect to; its GCS address."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.mark.ray
def test_a_killed_ray_driver_resumes_into_the_shards_of_a_straight_run(
    tmp_path: Path, prompts_file: Path, ray_cluster: str
) -> None:
    out = tmp_path / "out"
    argv = [sys.executable, "-c", JOB, "ray", str(prompts_file), str(out), ray_cluster]
    job = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: committed_shards(out) >= 2, job)

    job.send_signal(signal.SIGKILL)
    job.wait()

    assert committed_shards(out) < ROWS // SHARD_ROWS
    engine = RayEngine(num_actors=2)
    assert_resumed_completely(out, prompts_file, FakeImageGeneration(), engine=engine)
    assert checksums(out) == straight_run(FakeImageGeneration(), prompts_file, tmp_path / "s")


@pytest.mark.ray
def test_sigterm_stops_a_ray_job_cleanly_and_the_next_run_completes(
    tmp_path: Path, prompts_file: Path
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-c", BATCH_COMMAND, "batch", "fake", str(prompts_file)]
    options = ["-o", str(out), "-n", "2", "--format", "parquet", "--shard-rows", "3"]
    options += ["--engine", "ray", "--actors", "2", "-O", "latency=0.2"]
    job = subprocess.Popen([*command, *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: committed_shards(out) >= 1, job)

    job.send_signal(signal.SIGTERM)
    stdout, stderr = job.communicate(timeout=60)

    assert job.returncode == 143, (stdout.decode(), stderr.decode()[-3000:])
    assert stdout.decode().startswith("Interrupted in ")
    # Ray Data's executor is stopped before Ray is: no error about the actors it loses.
    assert b"Traceback" not in stderr, stderr.decode()
    again = subprocess.run([*command, *options[:-2]], capture_output=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert_complete_parquet(out, range(1, ROWS + 1), 2, shard_rows=SHARD_ROWS)
