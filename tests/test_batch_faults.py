"""One bad row never stops a job; only a fault of the job itself (its disk, its folder) does.

Every way a row can go wrong (text UTF-8 cannot hold, a prompt the backend refuses, any
exception from a backend, an output no dataset can hold) is recorded in errors.jsonl, the job
goes on, and the next run retries only the rows that failed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import Field, SecretStr

from batch_support import assert_complete, write_lines
from imgen import RuntimeParameter
from imgen.batch import BatchStopped, LocalEngine, dataset, run_batch
from imgen.errors import InvalidInputError
from imgen.images import encode_bytes
from imgen.testing.fake import AsyncFakeImageGeneration, FakeImageGeneration

LOAD_DATASET = """
import json, sys
import datasets

dataset = datasets.load_dataset("imagefolder", data_dir=sys.argv[1], split="train")
print(json.dumps(sorted(dataset["revised_prompt"])))
"""


def errors_of(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / "errors.jsonl").read_text().splitlines()]


def test_a_lone_surrogate_fails_its_row_only_and_is_recorded_escaped(tmp_path: Path) -> None:
    source = tmp_path / "p.jsonl"
    source.write_text(
        '{"prompt": "a red fox"}\n'
        '{"prompt": "bad \\ud800 fox"}\n'  # valid JSON, but no UTF-8 can hold it
        '{"prompt": "a cat", "note": "odd \\udfff"}\n'
        '{"prompt": "a dog"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"

    first = run_batch("fake", source, out)

    assert (first.rows_done, len(first.bad_rows)) == (2, 2)
    assert_complete(out, rows=[1, 4], num_generations=1)
    raw = (out / "errors.jsonl").read_bytes()
    raw.decode("utf-8")  # the file itself is valid UTF-8: the surrogate is a JSON escape
    assert b'"bad \\ud800 fox"' in raw
    errors = errors_of(out)
    assert [(e["row"], e["stage"], e["prompt"]) for e in errors] == [
        (2, "input", "bad \ud800 fox"),
        (3, "input", "a cat"),
    ]
    assert "lone surrogate ('\\ud800') at character 4" in errors[0]["error"]
    assert "the row['note'] holds a lone surrogate" in errors[1]["error"]

    source.write_text(source.read_text().replace("\\ud800", "\\u00e9"), encoding="utf-8")
    second = run_batch("fake", source, out)

    assert (second.rows_done, second.rows_skipped, len(second.bad_rows)) == (1, 2, 1)
    assert [e["row"] for e in errors_of(out)] == [3]


class PickyAboutLength(FakeImageGeneration):
    """Refuses prompts over 20 characters, the way an API with a prompt limit does."""

    backend_name: ClassVar[str] = "picky-about-length"

    def generate(
        self, inputs: list[str], num_generations: int = 1, seed: int | list[int] = 0
    ) -> list[list[dict[str, Any]]]:
        """Refuse long prompts.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            seed: The first seed, or one per prompt.
        """
        for prompt in inputs:
            if len(prompt) > 20:
                raise InvalidInputError(f"prompt is {len(prompt)} characters, at most 20")
        return super().generate(inputs, num_generations, seed)


class Erratic(AsyncFakeImageGeneration):
    """An async backend whose SDK raises anything at all for some prompts."""

    async def agenerate(
        self, input: str, num_generations: int = 1, seed: int = 0
    ) -> list[dict[str, Any]]:
        """Raise a KeyError or a ZeroDivisionError on cue.

        Args:
            input: The prompt.
            num_generations: Images to make.
            seed: The first seed.
        """
        if "key" in input:
            raise KeyError("data")
        if "zero" in input:
            return [{"images": [str(1 / 0)]}]
        return await super().agenerate(input, num_generations, seed)


@pytest.mark.parametrize(
    ("model", "prompts", "bad", "message"),
    [
        (
            PickyAboutLength(),
            ["a fox", "a very very long prompt about a fox", "a cat"],
            2,
            "InvalidInputError: prompt is 35 characters, at most 20",
        ),
        (Erratic(), ["a fox", "a key", "a cat"], 2, "KeyError: 'data'"),
        (Erratic(), ["a zero", "a fox", "a cat"], 1, "ZeroDivisionError: division by zero"),
    ],
)
def test_a_backend_failure_of_any_kind_fails_its_row_only(
    tmp_path: Path, model: FakeImageGeneration, prompts: list[str], bad: int, message: str
) -> None:
    summary = run_batch(model, prompts, tmp_path / "out", engine=LocalEngine(chunk_size=3))

    assert (summary.rows_done, summary.rows_failed) == (2, 1)
    assert [(e["row"], e["stage"], e["error"]) for e in errors_of(tmp_path / "out")] == [
        (bad, "generation", message)
    ]
    assert_complete(tmp_path / "out", rows=[r for r in (1, 2, 3) if r != bad], num_generations=1)


class Unwritable(FakeImageGeneration):
    """Sends outputs no dataset can hold, each for the prompt that names it."""

    backend_name: ClassVar[str] = "unwritable"

    def generate(
        self, inputs: list[str], num_generations: int = 1, seed: int | list[int] = 0
    ) -> list[list[dict[str, Any]]]:
        """Break the output of the prompts that ask for it.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            seed: The first seed, or one per prompt.
        """
        outputs = super().generate(inputs, num_generations, seed)
        for prompt, output in zip(inputs, outputs, strict=True):
            first = output[0]
            first["revised_prompts"] = [f"{prompt}, revised"] * num_generations
            if prompt == "bytes":
                first["images"] = [b"\x89PNG..."]
            elif prompt == "text file":
                first["images"] = [encode_bytes(b"just some text, not an image")]
            elif prompt == "circular":
                first["extra"] = loop = {}
                loop["self"] = loop
            elif prompt == "no output":
                output.clear()
            elif prompt == "odd text":
                first["revised_prompts"] = ["a fox \udc80 revised"]
        return outputs


def test_an_output_that_cannot_be_written_fails_its_row_only(tmp_path: Path) -> None:
    prompts = ["a fox", "bytes", "text file", "circular", "no output", "odd text", "a cat"]
    out = tmp_path / "out"

    summary = run_batch(Unwritable(), prompts, out, engine=LocalEngine(chunk_size=7))

    assert (summary.rows_done, summary.rows_failed) == (3, 4)
    errors = {e["row"]: e["error"] for e in errors_of(out)}
    assert errors[2].startswith(
        "InvalidOutputError: Unwritable.generate returned images[0] as bytes, not a non-empty "
        "base64 string"
    )
    assert errors[3].startswith("InvalidOutputError: Image 0 is 28 bytes of no known image format")
    assert errors[4].startswith("InvalidOutputError: The image's metadata cannot be saved as JSON")
    assert errors[5] == (
        "InvalidOutputError: Unwritable.generate returned a list of 0 for one input, not a list "
        "holding one dict."
    )
    lines = assert_complete(out, rows=[1, 6, 7], num_generations=1)
    # Text no UTF-8 can hold is replaced, so that `datasets` can still load the metadata.
    assert {line["row"]: line["revised_prompt"] for line in lines}[6] == "a fox \ufffd revised"
    offline = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_DATASET, str(out)],
        env={**os.environ, **offline},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout) == ["a cat, revised", "a fox \ufffd revised", "a fox, revised"]


def test_a_file_too_big_for_the_disk_fails_its_row_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = dataset.write_atomically

    def too_big_on_row_2(path: Path, data: bytes, *, durable: bool = True) -> None:
        if path.name.startswith("000002-"):
            raise OSError(errno.EFBIG, "File too large")
        write(path, data, durable=durable)

    monkeypatch.setattr(dataset, "write_atomically", too_big_on_row_2)

    summary = run_batch("fake", ["a fox", "a huge fox", "a cat"], tmp_path / "out")

    assert (summary.rows_done, summary.rows_failed) == (2, 1)
    assert errors_of(tmp_path / "out")[0]["error"] == "OSError: [Errno 27] File too large"


@pytest.mark.parametrize("dataset_format", ["imagefolder", "parquet"])
def test_an_output_dir_removed_while_the_job_runs_stops_it(
    tmp_path: Path, dataset_format: str
) -> None:
    out = tmp_path / "out"
    gone = tmp_path / "gone"

    class Vanishing(FakeImageGeneration):
        def generate(
            self, inputs: list[str], num_generations: int = 1, seed: int | list[int] = 0
        ) -> list[list[dict[str, Any]]]:
            """Remove the dataset before the third row.

            Args:
                inputs: The prompts.
                num_generations: Images per prompt.
                seed: The first seed, or one per prompt.
            """
            if inputs[0] == "third":
                shutil.move(out, gone)
            return super().generate(inputs, num_generations, seed)

    prompts = ["first", "second", "third", "fourth"]
    shards = {"shard_rows": 1} if dataset_format == "parquet" else {}
    with pytest.raises(BatchStopped, match=r"cannot write the dataset in .*: No such file") as stop:
        run_batch(Vanishing(), prompts, out, engine=LocalEngine(1), format=dataset_format, **shards)

    assert stop.value.summary.rows_done <= 2
    assert not out.exists()  # not made again, empty, behind the user's back
    shutil.move(gone, out)
    again = run_batch(FakeImageGeneration(), prompts, out, format=dataset_format)
    assert again.rows_skipped == stop.value.summary.rows_done
    assert again.complete


def test_the_lock_file_goes_when_the_job_ends_and_a_stale_one_is_no_obstacle(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    run_batch("fake", ["a fox"], out)
    assert not (out / ".imgen-batch.lock").exists()

    (out / ".imgen-batch.lock").write_bytes(b"")  # what a crashed job leaves behind

    assert run_batch("fake", ["a fox", "a cat"], out).rows_done == 1
    assert not (out / ".imgen-batch.lock").exists()


def test_a_job_waiting_on_a_removed_lock_file_takes_the_new_one(tmp_path: Path) -> None:
    from imgen.batch.files import lock_exclusively, unlock_and_remove

    path = tmp_path / ".imgen-batch.lock"
    first = lock_exclusively(path)
    stale = path.open("ab")  # a second job that opened the file before the first removed it
    unlock_and_remove(first, path)

    second = lock_exclusively(path)

    assert path.exists()
    assert os.path.samestat(os.fstat(second.fileno()), os.stat(path))
    assert not os.path.samestat(os.fstat(stale.fileno()), os.stat(path))
    with pytest.raises(BlockingIOError):
        lock_exclusively(path)
    stale.close()
    unlock_and_remove(second, path)


def test_a_rerun_retries_only_the_failed_rows(tmp_path: Path) -> None:
    prompts = write_lines(tmp_path / "p.txt", "a fox", "a cat that is far too long", "a dog")
    out = tmp_path / "out"
    run_batch(PickyAboutLength(), prompts, out)
    images = out / "images"
    made = {name: (images / name).stat().st_mtime_ns for name in os.listdir(images)}

    again = run_batch(PickyAboutLength(), prompts, out)

    assert (again.rows_done, again.rows_skipped, again.rows_failed) == (0, 2, 1)
    assert {name: (images / name).stat().st_mtime_ns for name in os.listdir(images)} == made
    assert [e["row"] for e in errors_of(out)] == [2]


def test_a_row_with_bad_text_from_python_is_a_bad_row_too(tmp_path: Path) -> None:
    summary = run_batch("fake", ["a fox", "bad \udc80", {"prompt": "x \ud83d"}], tmp_path / "out")

    assert summary.rows_done == 1
    assert [(bad.row, bad.prompt) for bad in summary.bad_rows] == [
        (2, "bad \udc80"),
        (3, "x \ud83d"),
    ]
    assert json.loads(json.dumps(summary.to_dict()))["bad_rows"][0]["prompt"] == "bad \udc80"


def test_an_oserror_from_a_backend_fails_its_row_not_the_job(tmp_path: Path) -> None:
    """A connection error is an OSError too, but no fault of the dataset."""

    class Unreachable(FakeImageGeneration):
        def generate(
            self, inputs: list[str], num_generations: int = 1, seed: int | list[int] = 0
        ) -> list[list[dict[str, Any]]]:
            """Fail to connect for "offline" prompts.

            Args:
                inputs: The prompts.
                num_generations: Images per prompt.
                seed: The first seed, or one per prompt.
            """
            if "offline" in inputs[0]:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
            return super().generate(inputs, num_generations, seed)

    summary = run_batch(
        Unreachable(), ["a fox", "offline", "a cat"], tmp_path / "out", engine=LocalEngine(1)
    )

    assert (summary.rows_done, summary.rows_failed) == (2, 1)
    assert "ConnectionRefusedError" in errors_of(tmp_path / "out")[0]["error"]


class KeyEchoing(AsyncFakeImageGeneration):
    """A backend whose service echoes the API key in its errors, unmasked, as careless ones do."""

    api_key: RuntimeParameter[SecretStr] = Field(None, description="The service's key.")

    async def agenerate(
        self, input: str, num_generations: int = 1, seed: int = 0
    ) -> list[dict[str, Any]]:
        """Fail for prompts about foxes, quoting the key.

        Args:
            input: The prompt.
            num_generations: Images to make.
            seed: Image k uses seed + k.
        """
        if "fox" in input:
            assert self.api_key is not None
            raise RuntimeError(f"denied: 'Authorization: Bearer {self.api_key.get_secret_value()}'")
        return await super().agenerate(input, num_generations, seed)


@pytest.mark.parametrize("dataset_format", ["imagefolder", "parquet"])
def test_a_failure_quoting_the_key_is_recorded_masked(tmp_path: Path, dataset_format: str) -> None:
    key = "sk-batch-canary-0123456789"
    model = KeyEchoing(api_key=key, max_retries=0)
    out = tmp_path / "out"

    summary = run_batch(model, ["a red fox", "a cat"], out, format=dataset_format)

    assert (summary.rows_done, summary.rows_failed) == (1, 1)
    [error] = errors_of(out)
    assert error["error"] == "RuntimeError: denied: 'Authorization: Bearer ***'"
    written = b"".join(path.read_bytes() for path in out.rglob("*") if path.is_file())
    assert key.encode() not in written
