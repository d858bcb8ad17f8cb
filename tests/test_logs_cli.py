"""`imgen logs`, and the entry every `imgen generate` and `imgen batch` leaves in it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result

import imgen
from imgen.cli import main
from imgen.logs import SCHEMA_VERSION
from imgen.testing.fake import FakeImageGeneration

IMGEN = [sys.executable, "-c", "from imgen.cli import main; main()"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def logged() -> list[dict[str, Any]]:
    result = invoke("logs", "-n", "0", "--json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def one_line_error(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


# -- what a generation leaves -------------------------------------------------------------------


def test_generate_logs_what_it_did(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    result = invoke(
        "generate", "fake", "a red fox", "a cat", "-n", "2", "-p", "seed=7", "-O", "width=16",
        "-o", str(tmp_path), "--json",
    )  # fmt: skip
    written = [json.loads(line) for line in result.stdout.splitlines()]

    [entry] = logged()

    started = datetime.fromisoformat(entry.pop("started_at"))
    assert before - timedelta(seconds=1) <= started <= datetime.now(UTC)
    assert 0 < entry.pop("duration_s") < 60
    assert entry == {
        "id": 1,
        "command": "generate",
        "imgen_version": "0.1.0",
        "backend": "fake",
        "model": "fake:fake-v1",
        "prompts": ["a red fox", "a cat"],
        "generation_kwargs": {"seed": 7},
        "num_generations": 2,
        "fields": {
            "compression_level": None,
            "image_quality": 90,
            "width": 16,
            "height": 64,
            "image_format": "png",
            "latency": 0.0,
            "cpu_seconds": 0.0,
            "failure_rate": 0.0,
            "failure_seed": 0,
        },
        "seeds": [record["seed"] for record in written],
        "outputs": [record["path"] for record in written],
        "input": None,
        "summary": None,
        "outcome": "ok",
        "error": None,
    }
    assert entry["seeds"] == [7, 8, 7, 8]


def test_output_paths_are_logged_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    invoke("generate", "fake", "a fox", "-o", "out")
    assert logged()[0]["outputs"] == [str(tmp_path / "out" / "a-fox-0.png")]


def test_a_failure_is_logged_with_the_error_it_printed(tmp_path: Path) -> None:
    bad_kwarg = invoke("generate", "fake", "a fox", "-p", "sed=1", "-o", str(tmp_path))
    unknown = invoke("generate", "fak", "a fox", "-o", str(tmp_path))
    partial = invoke(
        "generate", "fake-async", "first fails", "second works", "-o", str(tmp_path),
        "-O", "failure_rate=0.5", "-O", "failure_seed=1", "-O", "max_retries=0",
        "-O", "max_concurrency=1",
    )  # fmt: skip

    entries = logged()

    assert [e["outcome"] for e in entries] == ["failed"] * 3
    for entry, result in zip(entries, [bad_kwarg, unknown, partial], strict=True):
        printed = result.stderr.splitlines()[-1].removeprefix("Error: ")
        assert printed.startswith(entry["error"])  # the log has no "rerun with --debug" hint
    assert entries[0]["model"] == "fake" and "Did you mean 'seed'" in entries[0]["error"]
    assert (entries[1]["model"], entries[1]["backend"]) == ("fak", None)
    assert entries[2]["outputs"] == [str(tmp_path / "second-works-0.png")]
    assert "1 of 2 prompts failed; prompt 1: RetryableError" in entries[2]["error"]


def test_batch_logs_one_entry_with_its_summary(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a fox\na cat\na owl\n")
    out = tmp_path / "out"
    first = invoke("batch", "fake", str(prompts), "-o", str(out), "-n", "2", "--json")
    failing = invoke(
        "batch", "fake-async", str(prompts), "-o", str(tmp_path / "bad"),
        "-O", "failure_rate=1", "-O", "max_retries=0",
    )  # fmt: skip

    ok, failed = logged()

    assert ok["summary"] == json.loads(first.stdout)
    assert (ok["command"], ok["model"], ok["num_generations"]) == ("batch", "fake:fake-v1", 2)
    assert (ok["input"], ok["outputs"], ok["prompts"]) == (str(prompts), [str(out)], [])
    assert (ok["outcome"], ok["error"]) == ("ok", None)
    assert failing.exit_code == 1
    assert failed["outcome"] == "failed"
    assert failed["error"] == f"3 of 3 rows failed; see {tmp_path / 'bad' / 'errors.jsonl'}."
    assert failed["summary"]["rows_failed"] == 3


def test_a_batch_logs_its_job_seed_and_its_prompts_file_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("prompts.txt").write_text("a fox\n")
    seeded = invoke("batch", "fake", "prompts.txt", "-o", "out", "--json")
    unseeded = invoke("batch", "openai", "prompts.txt", "-o", "none", "-O", "api_key=sk-x")

    entry, no_seed = logged()

    assert entry["seeds"] == [json.loads(seeded.stdout)["seed"]]  # beside the dataset it seeded
    assert entry["input"] == str(tmp_path / "prompts.txt")
    assert f"  seed:    {entry['seeds'][0]} (the job seed)\n" in invoke("logs").stdout
    assert unseeded.exit_code == 1 and no_seed["seeds"] == []  # openai takes no seed


def test_a_run_whose_model_cannot_be_built_is_found_by_its_backend(tmp_path: Path) -> None:
    invoke("generate", "dall-e-3", "a fox", "-O", "nosuch=1", "-o", str(tmp_path))
    invoke("generate", "fake", "a cat", "-p", "sed=1", "-o", str(tmp_path))

    [aliased] = json.loads(invoke("logs", "-m", "openai", "--json").stdout)
    [misspelled] = json.loads(invoke("logs", "-m", "fake", "--json").stdout)

    assert (aliased["backend"], aliased["model"], aliased["outcome"]) == (
        "openai",
        "dall-e-3",
        "failed",
    )
    assert "unknown field 'nosuch'" in aliased["error"]
    assert (misspelled["backend"], misspelled["prompts"]) == ("fake", ["a cat"])


def test_an_interrupted_batch_is_logged_as_such(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"prompt {i}\n" for i in range(200)))
    out = tmp_path / "out"
    options = ["-o", str(out), "-O", "latency=0.05", "-O", "max_concurrency=1"]
    job = subprocess.Popen(
        [*IMGEN, "batch", "fake-async", str(prompts), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not list(out.glob("images/*.png")) and time.monotonic() < deadline:
        time.sleep(0.05)

    job.send_signal(signal.SIGINT)
    job.communicate(timeout=60)

    assert job.returncode == 130
    [entry] = logged()
    assert (entry["outcome"], entry["error"]) == ("interrupted", "Interrupted.")
    assert entry["summary"]["interrupted"] is True
    assert 0 < entry["summary"]["rows_done"] < 200


# -- turning it off ----------------------------------------------------------------------------


def test_no_log_and_logs_off_leave_no_entry(tmp_path: Path, _private_user_dir: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a fox\n")
    invoke("generate", "fake", "a fox", "-o", str(tmp_path), "--no-log")
    invoke("batch", "fake", str(prompts), "-o", str(tmp_path / "a"), "--no-log")
    assert not (_private_user_dir / "logs.db").exists()

    assert invoke("logs", "off").exit_code == 0
    invoke("generate", "fake", "a cat", "-o", str(tmp_path))
    shown = invoke("logs")
    assert shown.stdout == ""
    assert shown.stderr == "Logging is off: `imgen logs on` turns it back on.\n"
    assert "Logging is off." in invoke("logs", "status").stdout

    assert invoke("logs", "on").exit_code == 0
    invoke("generate", "fake", "an owl", "-o", str(tmp_path))
    assert [entry["prompts"] for entry in logged()] == [["an owl"]]


# -- imgen logs ---------------------------------------------------------------------------------


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """Four runs: three generations (one failed) and a batch."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a lighthouse\n")
    invoke("generate", "fake", "a red fox", "-p", "seed=3", "-o", str(tmp_path))
    invoke("generate", "fake-async", "a blue whale", "-o", str(tmp_path))
    invoke("generate", "fak", "a red panda", "-o", str(tmp_path))
    invoke("batch", "fake", str(prompts), "-o", str(tmp_path / "out"))
    return tmp_path


def test_logs_shows_the_latest_entries_oldest_first(history: Path) -> None:
    text = invoke("logs").stdout
    headers = [line.split("  ")[0::2] for line in text.splitlines() if line.startswith("#")]

    assert headers == [
        ["#1", "generate", "ok"],
        ["#2", "generate", "ok"],
        ["#3", "generate", "failed"],
        ["#4", "batch", "ok"],
    ]
    image = history / "a-red-fox-0.png"
    assert f"  prompt:  a red fox\n  params:  seed=3\n  image:   {image}  (seed 3)\n" in text
    assert "  error:   Unknown backend 'fak'." in text
    assert f"  input:   {history / 'prompts.txt'}\n  dataset: {history / 'out'}\n" in text
    assert "  summary: 1 rows done, 0 skipped, 0 failed; 1 images\n" in text


@pytest.mark.parametrize(
    ("args", "ids"),
    [
        (["-n", "2"], [3, 4]),
        (["-n", "0"], [1, 2, 3, 4]),
        (["--model", "fake"], [1, 4]),
        (["--model", "fake-async:fake-v1"], [2]),
        (["-m", "fak", "-m", "fake-async"], [2, 3]),
        (["-q", "red"], [1, 3]),
        (["-q", "prompts.txt"], [4]),  # a batch's prompts file
        (["-q", "red", "-n", "1"], [3]),
        (["-q", "red", "--model", "fake"], [1]),
        (["-q", "zebra"], []),
        (["-q", "whal pand"], []),  # every word
        (["-q", "whal"], [2]),  # a word's beginning finds it
        (["-q", "ed"], []),  # never its middle
    ],
)
def test_logs_filters(history: Path, args: list[str], ids: list[int]) -> None:
    assert [entry["id"] for entry in json.loads(invoke("logs", *args, "--json").stdout)] == ids


class AliasedFake(FakeImageGeneration):
    """The fake under another name, with an alias."""

    backend_name: ClassVar[str] = "aliased-fake"


def test_logs_model_filter_resolves_aliases(tmp_path: Path) -> None:
    imgen.register_backend(AliasedFake, aliases={"tiny": "tiny-v1"})
    try:
        invoke("generate", "tiny", "a fox", "-o", str(tmp_path))
        invoke("generate", "aliased-fake:other", "a fox", "-o", str(tmp_path))
        found = json.loads(invoke("logs", "-m", "tiny", "--json").stdout)
    finally:
        imgen.unregister_backend("aliased-fake")
    assert [entry["model"] for entry in found] == ["aliased-fake:tiny-v1"]


def test_logs_with_damaged_settings_shows_no_entry_before_the_error(
    _private_user_dir: Path, tmp_path: Path
) -> None:
    invoke("generate", "fake", "a fox", "-o", str(tmp_path))
    (_private_user_dir / "config.json").write_text("{")

    result = invoke("logs")

    assert result.stdout == ""
    assert "The imgen settings file" in one_line_error(result, 2)


def test_logs_status_and_an_empty_log(_private_user_dir: Path, tmp_path: Path) -> None:
    database = _private_user_dir / "logs.db"
    assert invoke("logs").output == ""
    assert json.loads(invoke("logs", "--json").stdout) == []
    assert invoke("logs", "status").stdout == (
        f"Logging is on.\nDatabase: {database} (not created yet)\n"
    )
    invoke("generate", "fake", "a fox", "-o", str(tmp_path))
    status = invoke("logs", "status").stdout
    assert status.startswith(f"Logging is on.\nDatabase: {database} (1 entries, ")


# -- many at once, and user dirs in a bad state ---------------------------------------------------


def test_eight_generate_processes_at_once_lose_no_entry(tmp_path: Path) -> None:
    # A fresh user dir: the eight also race to create and migrate the database.
    jobs = [
        subprocess.Popen(
            [*IMGEN, "generate", "fake", f"prompt {i}", "-o", str(tmp_path / str(i))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(8)
    ]
    results = [(job.wait(timeout=120), job.stderr.read()) for job in jobs]  # type: ignore[union-attr]

    assert results == [(0, b"")] * 8
    entries = logged()
    assert sorted(entry["prompts"][0] for entry in entries) == [f"prompt {i}" for i in range(8)]
    assert sorted(entry["id"] for entry in entries) == list(range(1, 9))


def test_a_damaged_log_database_stops_generate_before_any_work(
    _private_user_dir: Path, tmp_path: Path
) -> None:
    database = _private_user_dir / "logs.db"
    database.write_bytes(b"this is not SQLite" * 100)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a fox\n")

    for args in (
        ["generate", "fake", "a fox", "-o", str(tmp_path)],
        ["batch", "fake", str(prompts), "-o", str(tmp_path / "out")],
        ["logs"],
    ):
        message = one_line_error(invoke(*args), 2)
        assert message.startswith(f"Error: The imgen log database {database} cannot be used: ")
        assert f"`mv {database} {database}.bak`" in message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["prompts.txt"]
    assert invoke("generate", "fake", "a fox", "-o", str(tmp_path), "--no-log").exit_code == 0


def test_a_log_database_without_its_tables_stops_generate_before_any_work(
    _private_user_dir: Path, tmp_path: Path
) -> None:
    with contextlib.closing(sqlite3.connect(_private_user_dir / "logs.db")) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    for args in (["generate", "fake", "a fox", "-o", str(tmp_path)], ["logs", "status"]):
        result = invoke(*args)
        assert "cannot be used: no entries table" in one_line_error(result, 2)
        assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_a_log_database_from_a_newer_imgen_is_refused(_private_user_dir: Path) -> None:
    with sqlite3.connect(_private_user_dir / "logs.db") as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    assert "from a newer imgen" in one_line_error(invoke("logs"), 2)


def test_a_user_dir_that_cannot_be_created_degrades_to_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("IMGEN_USER_DIR", str(blocker / "imgen"))

    result = invoke("generate", "fake", "a fox", "-o", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{tmp_path / 'out' / 'a-fox-0.png'}\n"
    assert result.stderr == (
        f"Warning: The log database {blocker / 'imgen' / 'logs.db'} cannot be written: Not a "
        "directory. This run is not logged: make the folder writable, set IMGEN_USER_DIR to "
        "a writable folder, or turn logging off (--no-log for one run, `imgen logs off` for "
        "all).\n"
    )


def _read_only_command(user_dir: Path, command: list[str]) -> list[str]:
    """`command`, run so that `user_dir` is read-only to it, even for root."""
    if os.geteuid() != 0:
        for path in (*user_dir.iterdir(), user_dir):
            path.chmod(0o555 if path.is_dir() else 0o444)
        return command
    # Root writes through permission bits; a read-only bind mount binds root too.
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode:
        pytest.skip("running as root without mount namespaces: cannot make a folder read-only")
    mount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", mount, str(user_dir), *command]


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing-database"])
def test_a_read_only_user_dir_degrades_to_a_warning(
    _private_user_dir: Path, tmp_path: Path, existing: bool
) -> None:
    if existing:
        invoke("generate", "fake", "first", "-o", str(tmp_path))
    command = _read_only_command(
        _private_user_dir, [*IMGEN, "generate", "fake", "a fox", "-o", str(tmp_path)]
    )

    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        for path in (_private_user_dir, *_private_user_dir.iterdir()):
            path.chmod(0o700 if path.is_dir() else 0o600)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path / 'a-fox-0.png'}\n"
    [warning] = done.stderr.splitlines()
    assert warning.startswith(f"Warning: The log database {_private_user_dir / 'logs.db'} ")
    assert "This run is not logged" in warning
    assert [entry["prompts"] for entry in logged()] == ([["first"]] if existing else [])


def test_a_usage_error_leaves_no_entry(_private_user_dir: Path) -> None:
    assert invoke("generate").exit_code == 2
    assert invoke("batch", "-o", "out").exit_code == 2
    assert logged() == []


def test_text_no_utf8_can_hold_is_logged_escaped(tmp_path: Path) -> None:
    # A prompt with a lone surrogate (valid JSON can carry one) fails, and is logged legibly.
    source = tmp_path / "p.jsonl"
    source.write_text('{"prompt": "a fox"}\n{"prompt": "bad \\ud800 fox"}\n')
    batch = invoke("batch", "fake", str(source), "-o", str(tmp_path / "out"))
    assert batch.exit_code == 1 and "Error" not in batch.stderr, batch.output
    generate = invoke("generate", "fake", "a \udcff fox", "-o", str(tmp_path))
    assert generate.exit_code == 2, generate.output

    batch_entry, generate_entry = logged()
    assert batch_entry["summary"]["rows_done"] == 1
    assert batch_entry["outcome"] == "failed"
    assert batch_entry["error"].startswith("0 of 1 rows failed, 1 bad row skipped; see ")
    assert generate_entry["prompts"] == ["a \\udcff fox"]
    assert "lone surrogate" in generate_entry["error"]
    shown = invoke("logs")
    assert shown.exit_code == 0 and "a \\udcff fox" in shown.stdout
