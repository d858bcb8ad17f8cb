"""Signals, in real subprocesses: SIGTERM and SIGHUP stop a command the way Ctrl-C does.

`imgen batch` stops taking rows, writes what is done, prints its summary and exits with 128 +
the signal's number (130 for Ctrl-C, 143 for SIGTERM); the next run resumes, and the dataset
ends up exactly as a run straight through makes it. `imgen generate` exits with one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from batch_support import assert_complete, read_metadata, wait_for_images, wait_until, write_lines
from imgen import ImageGenerationModel
from imgen.batch import BatchInterrupted, run_batch
from imgen.batch.engines import Settle
from imgen.batch.inputs import PromptRow
from imgen.batch.outcomes import generate_outcomes
from imgen.batch.shard_writer import ShardWriter
from imgen.batch.shards import ShardReport, ShardTask
from imgen.signals import Interrupted, exit_code, stop_on_signals
from imgen.testing.fake import FakeImageGeneration
from parquet_support import committed

ROWS = 24
CLI = [sys.executable, "-c", "from imgen.cli import main; main()"]
API_JOB = """
import sys
from imgen.batch import BatchInterrupted, run_batch
from imgen.testing.fake import FakeImageGeneration

try:
    run_batch(FakeImageGeneration(latency=0.1), sys.argv[1], sys.argv[2], progress=False)
except BatchInterrupted as stopped:
    print(stopped.signum, stopped.summary.signal, stopped.summary.rows_done, flush=True)
    sys.exit(3)
"""


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "prompts.txt", *(f"prompt number {i}" for i in range(ROWS)))


def handles(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` now (Linux: /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


@pytest.mark.parametrize(
    ("spec", "options"),
    [
        # Slow enough that the job cannot finish while the test sends its signal.
        ("fake", ["-O", "latency=0.2"]),
        ("fake-async", ["-O", "latency=0.2", "-O", "max_concurrency=2"]),
    ],
)
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_batch_stopped_by_a_signal_prints_its_summary_and_resumes_to_the_same_dataset(
    tmp_path: Path, prompts_file: Path, spec: str, options: list[str], signum: int, code: int
) -> None:
    out = tmp_path / "out"
    command = [*CLI, "batch", spec, str(prompts_file), "-o", str(out), "-n", "2", "-p", "seed=3"]
    job = subprocess.Popen([*command, *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_images(out, 6, job)

    job.send_signal(signum)
    stdout, stderr = job.communicate(timeout=60)

    assert job.returncode == code, (stdout, stderr)
    text = stdout.decode()
    assert text.startswith("Interrupted in ")
    assert f"by {signal.Signals(signum).name}:" in text
    assert "Job seed: 3 " in text
    assert "Run the same command again to resume." in text
    assert b"Traceback" not in stderr
    assert not (out / ".imgen-batch.lock").exists()
    done = read_metadata(out)
    assert 0 < len(done) < 2 * ROWS, (text, stderr)

    again = subprocess.run([*command, *options], capture_output=True, timeout=120, check=False)

    assert again.returncode == 0, again.stderr
    resumed = assert_complete(out, rows=range(1, ROWS + 1), num_generations=2)
    run_batch(
        spec, prompts_file, tmp_path / "straight", num_generations=2, generation_kwargs={"seed": 3}
    )
    straight = read_metadata(tmp_path / "straight")
    assert {line["file_name"]: line for line in resumed} == {
        line["file_name"]: line for line in straight
    }
    for line in straight:
        name = line["file_name"]
        assert (out / name).read_bytes() == (tmp_path / "straight" / name).read_bytes()


def test_ctrl_c_stops_a_long_sync_call_at_once(tmp_path: Path, prompts_file: Path) -> None:
    """The model is interrupted: the job does not wait out a generate call of a minute."""
    out = tmp_path / "out"
    command = [*CLI, "batch", "fake", str(prompts_file), "-o", str(out), "-O", "latency=60"]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: (out / "job.json").exists(), job)
    time.sleep(0.5)  # into the first generate call

    started = time.monotonic()
    job.send_signal(signal.SIGINT)
    stdout, stderr = job.communicate(timeout=60)

    assert job.returncode == 130, stderr
    assert time.monotonic() - started < 20
    assert stdout.decode().startswith("Interrupted in ")
    assert b"Traceback" not in stderr


def test_run_batch_turns_sigterm_into_batch_interrupted(tmp_path: Path, prompts_file: Path) -> None:
    out = tmp_path / "out"
    job = subprocess.Popen(
        [sys.executable, "-c", API_JOB, str(prompts_file), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for_images(out, 3, job)

    job.send_signal(signal.SIGTERM)
    stdout, stderr = job.communicate(timeout=60)

    assert job.returncode == 3, stderr
    signum, name, rows_done = stdout.decode().split()
    assert (int(signum), name) == (signal.SIGTERM, "SIGTERM")
    assert int(rows_done) >= 3


@pytest.mark.parametrize(
    ("spec", "signum", "code", "line"),
    [
        ("fake", signal.SIGINT, 130, "Interrupted by SIGINT (Ctrl-C)."),
        ("fake-async", signal.SIGINT, 130, "Interrupted by SIGINT (Ctrl-C)."),
        ("fake", signal.SIGTERM, 143, "Interrupted by SIGTERM."),
    ],
)
def test_generate_stopped_by_a_signal_exits_with_one_line(
    tmp_path: Path, spec: str, signum: int, code: int, line: str
) -> None:
    command = [*CLI, "generate", spec, "a fox", "-O", "latency=60", "-o", str(tmp_path)]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not handles(job.pid, signal.SIGTERM):  # the command runs: its handlers are set
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()
        time.sleep(0.01)
    time.sleep(0.3)

    job.send_signal(signum)
    stdout, stderr = job.communicate(timeout=30)

    assert job.returncode == code
    assert stderr.decode() == line + "\n"
    assert stdout == b""
    assert os.listdir(tmp_path) == []


def test_stop_on_signals_keeps_handlers_set_by_the_application() -> None:
    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not called here")

    before = signal.signal(signal.SIGTERM, mine), signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        with stop_on_signals():
            assert signal.getsignal(signal.SIGTERM) is mine
            assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGHUP, before[1])


def test_exit_codes_are_128_plus_the_signal() -> None:
    assert exit_code(KeyboardInterrupt()) == 130
    assert exit_code(Interrupted(signal.SIGTERM)) == 143
    assert issubclass(BatchInterrupted, KeyboardInterrupt)


# The kernel may hand a process's signal to any of its threads; Python runs the handler in the
# main thread once that thread wakes. Here the signal goes to a helper thread on purpose.
SIGNALLED_ELSEWHERE = """
import signal, sys, threading, time
from imgen.batch import BatchInterrupted, run_batch
from imgen.testing.fake import AsyncFakeImageGeneration, FakeImageGeneration

def signal_another_thread():
    time.sleep(1.0)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

signal.signal(signal.SIGTERM, signal.default_int_handler)  # a KeyboardInterrupt, like Ctrl-C
threading.Thread(target=signal_another_thread, daemon=True).start()
started = time.monotonic()
try:
    if sys.argv[1] == "batch":
        run_batch(FakeImageGeneration(latency=60), sys.argv[2], sys.argv[3], progress=False)
    elif sys.argv[1] == "sync":
        FakeImageGeneration(latency=60).generate_outputs(["a fox"])
    else:
        AsyncFakeImageGeneration(latency=60).generate_outputs(["a fox"])
except KeyboardInterrupt:
    print(time.monotonic() - started)
"""


@pytest.mark.parametrize("waiting_in", ["batch", "sync", "async"])
def test_a_signal_delivered_to_another_thread_still_stops_the_main_one_at_once(
    tmp_path: Path, prompts_file: Path, waiting_in: str
) -> None:
    argv = [sys.executable, "-c", SIGNALLED_ELSEWHERE, waiting_in, str(prompts_file)]
    done = subprocess.run([*argv, str(tmp_path / "out")], capture_output=True, timeout=50)

    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 10, "the main thread slept through the signal"


class StoppedAfterSettling:
    """An engine that writes the first `rows` rows (or the first shard), then is stopped by
    Ctrl-C before the job has taken what it wrote: the window a signal can fall into."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def check(self) -> None:
        """Runs anywhere."""

    async def run(
        self,
        model: ImageGenerationModel,
        rows: list[PromptRow],
        num_generations: int,
        generation_kwargs: dict[str, object],
        settle: Settle[object],
    ) -> AsyncIterator[object]:
        model.load()
        chunk = rows[: self.rows]
        for row, outcome in zip(
            chunk, generate_outcomes(model, chunk, num_generations, generation_kwargs), strict=True
        ):
            settle(row, outcome)
        raise KeyboardInterrupt
        yield  # an async generator

    async def run_shards(
        self,
        model: ImageGenerationModel,
        tasks: list[ShardTask],
        num_generations: int,
        generation_kwargs: dict[str, object],
        writer: ShardWriter,
        settle: Callable[[ShardReport], object],
    ) -> AsyncIterator[object]:
        model.load()
        builder = writer.start(tasks[0])
        rows = tasks[0].rows
        for row, outcome in zip(
            rows, generate_outcomes(model, rows, num_generations, generation_kwargs), strict=True
        ):
            builder.add(row, outcome)
        settle(builder.write())
        raise KeyboardInterrupt
        yield  # an async generator


@pytest.mark.parametrize("dataset_format", ["imagefolder", "parquet"])
def test_what_was_written_before_a_stop_is_committed_though_the_job_had_not_taken_it(
    tmp_path: Path, prompts_file: Path, dataset_format: str
) -> None:
    out = tmp_path / "out"
    options: dict[str, Any] = {"format": dataset_format}
    if dataset_format == "parquet":
        options["shard_rows"] = 5

    stops = StoppedAfterSettling(5)
    with pytest.raises(BatchInterrupted) as stopped:
        run_batch(FakeImageGeneration(), prompts_file, out, engine=stops, **options)

    assert stopped.value.summary.rows_done == 5
    if dataset_format == "parquet":
        assert [shard["rows"] for shard in committed(out)] == [[[1, 5, 1]]]
    else:
        assert sorted(line["row"] for line in read_metadata(out)) == [1, 2, 3, 4, 5]
    resumed = run_batch(FakeImageGeneration(), prompts_file, out, **options)
    assert (resumed.rows_skipped, resumed.rows_done) == (5, ROWS - 5)
