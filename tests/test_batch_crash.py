"""Batch jobs killed (SIGKILL) or interrupted (Ctrl-C) part way, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from batch_support import (
    assert_complete,
    assert_lines_name_whole_images,
    wait_for_images,
    write_lines,
)
from imgen.batch import run_batch
from imgen.batch.seeding import row_seed
from imgen.testing.fake import AsyncFakeImageGeneration, FakeImageGeneration, fake_image

ROWS = 30
JOB = """
import sys
from imgen.batch import run_batch
from imgen.batch.seeding import row_seed
from imgen.testing.fake import AsyncFakeImageGeneration, FakeImageGeneration

kind, prompts, out = sys.argv[1:]
if kind == "async":
    model = AsyncFakeImageGeneration(latency=0.03, max_concurrency=4)
else:
    model = FakeImageGeneration(latency=0.01)
run_batch(model, prompts, out, num_generations=2, progress=False)
"""
BATCH_COMMAND = "from imgen.cli import main; main()"


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "prompts.txt", *(f"prompt number {i}" for i in range(ROWS)))


def assert_images_are_the_fakes(out: Path, lines: list[dict[str, Any]]) -> None:
    """Every image holds exactly the bytes the fake makes for it (nothing torn survived), with
    the seed a run straight through gives it, however often the job was killed."""
    job_seed = json.loads((out / "job.json").read_text())["seed"]
    for line in lines:
        assert line["seed"] == row_seed(job_seed, line["row"]) + line["generation"]
        expected = fake_image(line["prompt"], line["seed"], 64, 64, "png")
        assert (out / line["file_name"]).read_bytes() == expected, line["file_name"]


@pytest.mark.parametrize(
    ("kind", "killed_after"), [("async", 1), ("async", 9), ("async", 30), ("sync", 5)]
)
def test_a_killed_job_resumes_into_a_complete_dataset(
    tmp_path: Path, prompts_file: Path, kind: str, killed_after: int
) -> None:
    out = tmp_path / "out"
    job = subprocess.Popen([sys.executable, "-c", JOB, kind, str(prompts_file), str(out)])
    wait_for_images(out, killed_after, job)

    job.send_signal(signal.SIGKILL)
    job.wait()

    assert_lines_name_whole_images(out, torn_tail=True)
    model = AsyncFakeImageGeneration() if kind == "async" else FakeImageGeneration()
    summary = run_batch(model, prompts_file, out, num_generations=2)
    lines = assert_complete(out, rows=range(1, ROWS + 1), num_generations=2)
    assert summary.rows_done + summary.rows_skipped == ROWS
    assert_images_are_the_fakes(out, lines)


def test_killed_again_and_again_it_still_ends_complete(tmp_path: Path, prompts_file: Path) -> None:
    out = tmp_path / "out"
    for _ in range(3):
        started = time.time() - 0.01  # file times are a little coarse
        job = subprocess.Popen([sys.executable, "-c", JOB, "async", str(prompts_file), str(out)])
        wait_for_images(out, 8, job, since=started)
        job.send_signal(signal.SIGKILL)
        job.wait()

    run_batch(AsyncFakeImageGeneration(), prompts_file, out, num_generations=2)

    assert_images_are_the_fakes(out, assert_complete(out, range(1, ROWS + 1), 2))


def test_ctrl_c_stops_cleanly_with_a_summary_and_the_next_run_resumes(
    tmp_path: Path, prompts_file: Path
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-c", BATCH_COMMAND, "batch", "fake-async", str(prompts_file)]
    # Slow enough that the job cannot finish while the test sends its signal.
    options = ["-o", str(out), "-n", "2", "-O", "latency=0.1", "-O", "max_concurrency=2"]
    job = subprocess.Popen([*command, *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_images(out, 6, job)

    job.send_signal(signal.SIGINT)
    stdout, stderr = job.communicate(timeout=30)

    assert job.returncode == 130, (stdout, stderr)
    assert stdout.decode().startswith("Interrupted in ")
    assert "Run the same command again to resume." in stdout.decode()
    assert b"Traceback" not in stderr
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    done = assert_lines_name_whole_images(out)
    assert 0 < len(done) < 2 * ROWS

    again = subprocess.run([*command, *options], capture_output=True, timeout=60, check=False)

    assert again.returncode == 0, again.stderr
    assert_complete(out, rows=range(1, ROWS + 1), num_generations=2)


def test_only_the_dataset_is_made_durable_never_the_whole_host(
    tmp_path: Path, prompts_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgen.batch import files

    def host_wide_sync() -> None:
        raise AssertionError("os.sync() flushes every filesystem of the host")

    monkeypatch.setattr(os, "sync", host_wide_sync)
    synced: list[str] = []
    fsync = os.fsync

    def recorded_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recorded_fsync)

    run_batch(FakeImageGeneration(latency=0.01), prompts_file, tmp_path / "out")

    assert_complete(tmp_path / "out", rows=range(1, ROWS + 1), num_generations=1)
    assert synced, "nothing was made durable"
    assert all(path.startswith(str(tmp_path / "out")) for path in synced)
    assert files._libc_syncfs() is not None  # Linux: big groups take one syncfs instead


@pytest.mark.parametrize(("count", "syncfs_calls", "fsync_calls"), [(3, 0, 4), (40, 1, 0)])
def test_a_big_group_of_images_takes_one_syncfs_a_small_one_an_fsync_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, syncfs_calls: int, fsync_calls: int
) -> None:
    from imgen.batch import files

    paths = [tmp_path / f"{i}.png" for i in range(count)]
    for path in paths:
        path.write_bytes(b"image")
    calls = {"syncfs": 0, "fsync": 0}
    syncfs, fsync = files._syncfs, os.fsync

    def counted_syncfs(folder: Path) -> bool:
        calls["syncfs"] += 1
        return syncfs(folder)

    def counted_fsync(fd: int) -> None:
        calls["fsync"] += 1
        fsync(fd)

    monkeypatch.setattr(files, "_syncfs", counted_syncfs)
    monkeypatch.setattr(os, "fsync", counted_fsync)

    files.make_durable(paths, tmp_path)

    assert calls == {"syncfs": syncfs_calls, "fsync": fsync_calls}
