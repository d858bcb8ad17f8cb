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
from pathlib import Path

import pytest

from batch_support import assert_complete, read_metadata, wait_for_images, wait_until, write_lines
from imgen.batch import BatchInterrupted, run_batch
from imgen.signals import Interrupted, exit_code, stop_on_signals

ROWS = 24
CLI = [sys.executable, "-c", "from imgen.cli import main; main()"]
API_JOB = """
import sys
from imgen.batch import BatchInterrupted, run_batch
from imgen.testing.fake import FakeImageGeneration

try:
    run_batch(FakeImageGeneration(latency=0.05), sys.argv[1], sys.argv[2], progress=False)
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
    assert 0 < len(done) < 2 * ROWS

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
