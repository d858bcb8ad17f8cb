"""`imgen.batch.run_batch`: the dataset it writes, resuming, refusing, failures, engines."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import PrivateAttr

import imgen
from batch_support import assert_complete, image_names, read_metadata, write_jsonl, write_lines
from imgen.batch import BatchStopped, BatchSummary, LocalEngine, dataset, run_batch
from imgen.batch.files import lock_exclusively
from imgen.batch.seeding import row_seed
from imgen.errors import InvalidInputError, MissingCredentialsError
from imgen.testing.fake import AsyncFakeImageGeneration, FakeImageGeneration

LOAD_DATASET = """
import json, sys
import datasets

dataset = datasets.load_dataset("imagefolder", data_dir=sys.argv[1], split="train")
print(json.dumps({
    "num_rows": dataset.num_rows,
    "columns": dataset.column_names,
    "first": {"size": dataset[0]["image"].size, "model": dataset[0]["model"]},
    "prompts": list(dataset["prompt"]),
    "seeds": list(dataset["seed"]),
}))
"""
PROMPTS = ["a red fox", "a lighthouse at dusk", "a bowl of ramen", "a paper boat", "a cat"]


class PickyFake(FakeImageGeneration):
    """A sync fake whose whole call fails when a prompt in it mentions "fail"."""

    def generate(
        self, inputs: list[str], num_generations: int = 1, seed: int = 0
    ) -> list[list[dict[str, Any]]]:
        """Refuse prompts about failing.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            seed: The first seed.
        """
        for prompt in inputs:
            if "fail" in prompt:
                raise RuntimeError(f"cannot draw {prompt!r}")
        return super().generate(inputs, num_generations, seed)


class GarbageFake(FakeImageGeneration):
    """A sync fake that answers "garbage" with text, and "too few" with too few images."""

    def generate(
        self, inputs: list[str], num_generations: int = 1, seed: int = 0
    ) -> list[list[dict[str, Any]]]:
        """Answer "garbage" and "too few" wrongly.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            seed: The first seed.
        """
        outputs = super().generate(inputs, num_generations, seed)
        for prompt, output in zip(inputs, outputs, strict=True):
            if prompt == "garbage":
                output[0]["images"] = ["not base64!"] * num_generations
            if prompt == "too few":
                output[0]["images"].pop()
        return outputs


class CountingFake(AsyncFakeImageGeneration):
    """An async fake that records its peak number of calls in flight; "slow" prompts lag."""

    _num_generations_param_supported: ClassVar[bool] = False
    _in_flight: int = PrivateAttr(0)
    _peak: int = PrivateAttr(0)

    async def agenerate(
        self, input: str, num_generations: int = 1, seed: int = 0
    ) -> list[dict[str, Any]]:
        """Count, wait, answer.

        Args:
            input: The prompt.
            num_generations: Images to make.
            seed: The first seed.
        """
        self._in_flight += 1
        self._peak = max(self._peak, self._in_flight)
        try:
            await asyncio.sleep(0.3 if "slow" in input else 0.01)
            return await super().agenerate(input, num_generations, seed)
        finally:
            self._in_flight -= 1


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "prompts.txt", *PROMPTS)


def test_writes_an_imagefolder_with_a_line_per_image(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "p.jsonl",
        {"prompt": "a fox", "id": 1, "style": "oil"},
        {"prompt": "a cat", "id": 2},
    )

    summary = run_batch(
        "fake", source, tmp_path / "out", num_generations=2, generation_kwargs={"seed": 5}
    )

    lines = assert_complete(tmp_path / "out", rows=[1, 2], num_generations=2)
    assert lines[0] == {
        "file_name": f"images/{lines[0]['row']:06d}-{lines[0]['generation']}.png",
        "prompt": lines[0]["prompt"],
        "model": "fake:fake-v1",
        "row": lines[0]["row"],
        "generation": lines[0]["generation"],
        "seed": row_seed(5, lines[0]["row"]) + lines[0]["generation"],
        "id": lines[0]["id"],
        "style": lines[0]["style"],
        "format": "png",
    }
    by_key = {(line["row"], line["generation"]): line for line in lines}
    assert by_key[2, 1]["prompt"] == "a cat"
    assert by_key[2, 1]["seed"] == row_seed(5, 2) + 1  # each image's own seed
    assert by_key[2, 1]["style"] is None  # every line has every key
    assert (summary.rows_done, summary.rows_skipped, summary.rows_failed) == (2, 0, 0)
    assert summary.images_written == 4
    assert summary.output_dir == (tmp_path / "out").resolve()
    manifest = json.loads((tmp_path / "out" / "job.json").read_text())
    assert manifest["model"] == "fake:fake-v1"
    assert manifest["generation_kwargs"] == {}
    assert manifest["seed"] == 5
    assert manifest["model_config"]["type_info"]["backend"] == "fake"


def test_datasets_loads_the_output_as_an_imagefolder(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "p.jsonl", {"prompt": "a fox", "id": 1}, {"prompt": "a cat", "tag": "pet"}
    )
    run_batch(FakeImageGeneration(width=32, height=16), source, tmp_path / "out", num_generations=2)
    # In a process of its own: huggingface_hub reads HF_HUB_OFFLINE once, at import.
    offline = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}

    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_DATASET, str(tmp_path / "out")],
        env={**os.environ, **offline},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert loaded.returncode == 0, loaded.stderr
    dataset = json.loads(loaded.stdout)
    assert dataset["num_rows"] == 4
    assert set(dataset["columns"]) == {
        *("image", "prompt", "model", "row", "generation", "seed", "id", "tag", "format")
    }
    assert dataset["first"] == {"size": [32, 16], "model": "fake:fake-v1"}
    assert sorted(dataset["prompts"]) == ["a cat", "a cat", "a fox", "a fox"]
    assert len(set(dataset["seeds"])) == 4


def test_a_rerun_skips_the_rows_done(tmp_path: Path, prompts_file: Path) -> None:
    out = tmp_path / "out"
    run_batch("fake", prompts_file, out)
    before = (out / "metadata.jsonl").read_bytes()

    again = run_batch("fake", prompts_file, out)

    assert (again.rows_skipped, again.rows_done, again.images_written) == (5, 0, 0)
    assert (out / "metadata.jsonl").read_bytes() == before


def test_more_generations_add_only_the_missing_images(tmp_path: Path, prompts_file: Path) -> None:
    out = tmp_path / "out"
    run_batch("fake", prompts_file, out, num_generations=1)

    summary = run_batch("fake", prompts_file, out, num_generations=3)

    assert summary.images_written == 10
    assert_complete(out, rows=range(1, 6), num_generations=3)


def test_failed_rows_are_recorded_and_retried_next_run(tmp_path: Path) -> None:
    prompts = write_lines(tmp_path / "p.txt", "a fox", "please fail", "a cat", "fail again")
    out = tmp_path / "out"

    first = run_batch(PickyFake(), prompts, out, engine=LocalEngine(chunk_size=4))

    # The failing call is retried prompt by prompt, so only the bad prompts fail.
    assert (first.rows_done, first.rows_failed) == (2, 2)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["row"], e["stage"]) for e in errors] == [(2, "generation"), (4, "generation")]
    assert errors[0]["error"] == "RuntimeError: cannot draw 'please fail'"
    assert "errors.jsonl" in str(first)

    second = run_batch("fake", prompts, out)

    assert (second.rows_done, second.rows_skipped, second.rows_failed) == (2, 2, 0)
    assert_complete(out, rows=[1, 2, 3, 4], num_generations=1)
    assert (out / "errors.jsonl").read_text() == ""


def test_an_async_model_failing_is_recorded_not_raised(tmp_path: Path, prompts_file: Path) -> None:
    broken = AsyncFakeImageGeneration(failure_rate=1.0, max_retries=0)

    summary = run_batch(broken, prompts_file, tmp_path / "out")

    assert (summary.rows_done, summary.rows_failed) == (0, 5)
    assert read_metadata(tmp_path / "out") == []
    assert "RetryableError" in (tmp_path / "out" / "errors.jsonl").read_text()


def test_an_output_that_breaks_the_contract_fails_its_row_only(tmp_path: Path) -> None:
    prompts = write_lines(tmp_path / "p.txt", "a fox", "garbage", "a cat", "too few")

    summary = run_batch(GarbageFake(), prompts, tmp_path / "out", num_generations=2)

    assert (summary.rows_done, summary.rows_failed) == (2, 2)
    errors = (tmp_path / "out/errors.jsonl").read_text()
    assert "InvalidOutputError: Image 0: Not a base64 image" in errors
    assert "InvalidOutputError: GarbageFake.generate returned 1 images where" in errors
    assert_complete(tmp_path / "out", rows=[1, 3], num_generations=2)


@pytest.mark.parametrize("spec", ["fake", "fake-async"])
def test_a_failing_disk_stops_the_job_with_its_error(
    tmp_path: Path, prompts_file: Path, monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    write = dataset.write_atomically

    def full_on_row_3(path: Path, data: bytes, *, durable: bool = True) -> None:
        if path.name.startswith("000003-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        write(path, data, durable=durable)

    monkeypatch.setattr(dataset, "write_atomically", full_on_row_3)

    # One row at a time, so that rows 1 and 2, and only they, are written before row 3 fails.
    model = imgen.get_model(spec, **({"max_concurrency": 1} if spec == "fake-async" else {}))
    with pytest.raises(BatchStopped, match=r"cannot write the dataset in .*No space left") as stop:
        run_batch(model, prompts_file, tmp_path / "out")
    assert isinstance(stop.value.__cause__, OSError)
    assert stop.value.summary.rows_done == 2
    assert not (tmp_path / "out" / ".imgen-batch.lock").exists()

    monkeypatch.undo()
    run_batch(spec, prompts_file, tmp_path / "out")
    assert_complete(tmp_path / "out", rows=range(1, 6), num_generations=1)


def test_one_job_at_a_time_writes_to_a_folder(tmp_path: Path, prompts_file: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()

    busy = pytest.raises(InvalidInputError, match=r"Another imgen batch job is writing to")
    with lock_exclusively(out / ".imgen-batch.lock"), busy:
        run_batch("fake", prompts_file, out)

    assert run_batch("fake", prompts_file, out).rows_done == 5


def test_async_models_keep_max_concurrency_and_write_rows_as_they_finish(
    tmp_path: Path,
) -> None:
    prompts = ["a slow fox", *(f"quick prompt {i}" for i in range(11))]
    model = CountingFake(max_concurrency=4)

    run_batch(model, prompts, tmp_path / "out", num_generations=2)

    # Two images per row, one request each (the model fans out), four requests at most.
    assert model._peak == 4
    rows = [line["row"] for line in read_metadata(tmp_path / "out")]
    assert rows[-2:] == [1, 1]  # the slow first row held up no other row
    assert_complete(tmp_path / "out", rows=range(1, 13), num_generations=2)


def test_another_jobs_dataset_is_refused_unless_forced(tmp_path: Path, prompts_file: Path) -> None:
    out = tmp_path / "out"
    run_batch("fake", prompts_file, out, generation_kwargs={"seed": 1})
    other = FakeImageGeneration(model="fake-v2")

    with pytest.raises(InvalidInputError, match=r"made by 'fake:fake-v1', not 'fake:fake-v2'"):
        run_batch(other, prompts_file, out, generation_kwargs={"seed": 1})
    with pytest.raises(InvalidInputError, match=r"made with job seed 1, not 2"):
        run_batch("fake", prompts_file, out, generation_kwargs={"seed": 2})
    assert not other.is_loaded

    summary = run_batch(other, prompts_file, out, force=True)

    assert summary.rows_done == 5
    assert {line["model"] for line in assert_complete(out, range(1, 6), 1)} == {"fake:fake-v2"}


def test_a_folder_with_a_dataset_imgen_did_not_write_is_refused(
    tmp_path: Path, prompts_file: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write_lines(out / "metadata.jsonl", '{"file_name": "a.png"}')

    with pytest.raises(InvalidInputError, match=r"no job.json: imgen batch did not make it"):
        run_batch("fake", prompts_file, out)

    run_batch("fake", prompts_file, out, force=True)
    assert_complete(out, rows=range(1, 6), num_generations=1)


def test_changed_prompts_are_refused_and_no_resume_starts_over(
    tmp_path: Path, prompts_file: Path
) -> None:
    out = tmp_path / "out"
    run_batch("fake", prompts_file, out)
    write_lines(prompts_file, "a red fox", "a different prompt")

    with pytest.raises(
        InvalidInputError, match=r"Row 2 of .* is 'a different prompt'.*--no-resume"
    ):
        run_batch("fake", prompts_file, out)

    summary = run_batch("fake", prompts_file, out, resume=False)
    assert summary.rows_done == 2
    assert_complete(out, rows=[1, 2], num_generations=1)


def test_bad_requests_fail_before_the_model_loads(tmp_path: Path, prompts_file: Path) -> None:
    model = FakeImageGeneration()
    a_file = write_lines(tmp_path / "file", "x")
    clash = write_jsonl(tmp_path / "clash.jsonl", {"prompt": "a fox", "model": "mine"})

    with pytest.raises(InvalidInputError, match=r"Output dir '.*file' is a file"):
        run_batch(model, prompts_file, a_file)
    with pytest.raises(InvalidInputError, match=r"Prompts file '.*nope.txt' does not exist"):
        run_batch(model, tmp_path / "nope.txt", tmp_path / "out")
    with pytest.raises(InvalidInputError, match=r"Unknown engine 'spark'"):
        run_batch(model, prompts_file, tmp_path / "out", engine="spark")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"Unknown generation kwarg 'sead'"):
        run_batch(model, prompts_file, tmp_path / "out", generation_kwargs={"sead": 1})
    with pytest.raises(InvalidInputError, match=r"num_generations must be >= 1"):
        run_batch(model, prompts_file, tmp_path / "out", num_generations=0)
    with pytest.raises(InvalidInputError, match=r"the column\(s\) 'model'"):
        run_batch(model, clash, tmp_path / "out")
    assert not model.is_loaded
    assert not (tmp_path / "out").exists()


def test_a_model_that_cannot_load_stops_the_job(tmp_path: Path, prompts_file: Path) -> None:
    class Locked(FakeImageGeneration):
        def load(self) -> None:
            raise MissingCredentialsError("fake", "api_key", "FAKE_KEY")

    with pytest.raises(MissingCredentialsError, match="FAKE_KEY"):
        run_batch(Locked(), prompts_file, tmp_path / "out")
    assert read_metadata(tmp_path / "out") == []


def test_open_repairs_what_a_crash_left(
    tmp_path: Path, prompts_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    run_batch("fake", prompts_file, out)
    metadata = out / "metadata.jsonl"
    lines = metadata.read_text().splitlines()
    by_row = {json.loads(line)["row"]: line for line in lines}
    (out / "images" / "000003-0.png").unlink()  # a line whose image is gone
    (out / "images" / "000009-0.png").write_bytes(b"orphan")  # an image with no line
    (out / "images" / ".000004-0.png.x1y2.tmp").write_bytes(b"half")  # a write cut short
    metadata.write_text(
        "\n".join([*lines, by_row[2], "not json"]) + "\n" + by_row[5][:25]  # a torn last line
    )
    caplog.set_level(logging.INFO, logger="imgen.batch")

    summary = run_batch("fake", prompts_file, out)

    assert summary.rows_done == 1  # row 3, whose image was gone
    assert_complete(out, rows=range(1, 6), num_generations=1)
    assert "torn last line" in caplog.text
    assert "Dropped 3 line(s)" in caplog.text
    assert "Removed 1 image(s)" in caplog.text


def test_progress_is_drawn_on_request_and_only_then(
    tmp_path: Path, prompts_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_batch("fake", prompts_file, tmp_path / "quiet")
    assert capsys.readouterr().err == ""  # stderr is no terminal here

    run_batch("fake", prompts_file, tmp_path / "shown", num_generations=2, progress=True)

    err = capsys.readouterr().err
    assert err.startswith("\rimgen batch: ")
    assert "10/10 images (100%)" in err
    assert err.endswith("\n")


def test_the_summary_tells_what_happened(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", {"prompt": "a fox"}, {"id": 2}, {"prompt": ""})

    summary = run_batch("fake", source, tmp_path / "out", num_generations=3)

    text = str(summary)
    assert text.startswith("Finished in ")
    assert "1 rows done, 0 skipped (done before), 0 failed; 3 images" in text
    assert f"Dataset: {(tmp_path / 'out').resolve()}" in text
    assert "Skipped 2 bad rows of" in text
    assert "line 2: no 'prompt' field; line 3: 'prompt' is empty" in text
    data = summary.to_dict()
    assert json.loads(json.dumps(data))["bad_rows"] == [
        {"row": 2, "reason": "no 'prompt' field", "prompt": None},
        {"row": 3, "reason": "'prompt' is empty", "prompt": None},
    ]
    assert data["images_per_second"] > 0
    assert summary.complete
    errors = (tmp_path / "out" / "errors.jsonl").read_text()
    assert '"stage": "input"' in errors


def test_prompts_can_be_an_iterable(tmp_path: Path) -> None:
    prompts: list[str | dict[str, Any]] = ["a fox", {"prompt": "a cat", "id": 3}]

    summary = run_batch("fake", iter(prompts), tmp_path / "out")

    assert isinstance(summary, BatchSummary)
    lines = assert_complete(tmp_path / "out", rows=[1, 2], num_generations=1)
    assert {line["row"]: line["id"] for line in lines} == {1: None, 2: 3}


@pytest.mark.asyncio
async def test_runs_from_inside_a_running_event_loop(tmp_path: Path, prompts_file: Path) -> None:
    summary = run_batch(AsyncFakeImageGeneration(), prompts_file, tmp_path / "out")

    assert summary.rows_done == 5
    assert image_names(tmp_path / "out") == [f"00000{i}-0.png" for i in range(1, 6)]
