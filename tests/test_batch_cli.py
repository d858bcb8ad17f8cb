"""`imgen batch`: options, output, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result
from PIL import Image

import imgen as imgen_api
from batch_support import assert_complete, read_metadata, write_jsonl, write_lines
from imgen.batch.seeding import row_seed
from imgen.cli import main
from imgen.testing.fake import FakeImageGeneration


def imgen(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "prompts.txt", "a red fox", "a lighthouse", "a cat")


def test_batch_writes_the_dataset_and_prints_a_summary(tmp_path: Path, prompts_file: Path) -> None:
    out = tmp_path / "out"

    options = ["-o", str(out), "-n", "2", "-p", "seed=40", "-O", "width=24"]

    result = imgen("batch", "fake", str(prompts_file), *options)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Finished in ")
    assert "3 rows done, 0 skipped (done before), 0 failed; 6 images" in result.stdout
    assert f"Dataset: {out.resolve()}" in result.stdout
    lines = assert_complete(out, rows=[1, 2, 3], num_generations=2)
    assert {(line["row"], line["generation"]): line["seed"] for line in lines} == {
        (row, k): row_seed(40, row) + k for row in (1, 2, 3) for k in (0, 1)
    }
    assert "Job seed: 40 " in result.stdout
    with Image.open(out / lines[0]["file_name"]) as image:
        assert image.size == (24, 64)


def test_json_summary_prompt_column_and_resume(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", {"text": "a fox", "id": 1}, {"text": "a cat"})
    out = tmp_path / "out"
    args = ["batch", "fake", str(source), "-o", str(out), "--prompt-column", "text", "--json"]

    first = json.loads(imgen(*args).stdout)
    second = json.loads(imgen(*args).stdout)

    assert (first["rows_done"], first["rows_skipped"], first["images_written"]) == (2, 0, 2)
    assert (second["rows_done"], second["rows_skipped"], second["images_written"]) == (0, 2, 0)
    assert first["output_dir"] == str(out.resolve())
    assert [line["id"] for line in read_metadata(out)] in ([1, None], [None, 1])


class Chatty(FakeImageGeneration):
    """A backend whose library prints to stdout while it generates."""

    backend_name: ClassVar[str] = "batch-cli-chatty"

    def generate(self, prompts: list[str], num_generations: int = 1, **kwargs: Any) -> Any:
        print("loading shards 3/3 (a library's own note)")
        return super().generate(prompts, num_generations, **kwargs)


@pytest.mark.parametrize("command", ["batch", "generate"])
def test_what_a_library_prints_while_generating_stays_out_of_the_json_on_stdout(
    tmp_path: Path, prompts_file: Path, command: str
) -> None:
    source = [str(prompts_file)] if command == "batch" else ["a fox", "a cat"]
    imgen_api.register_backend(Chatty)
    try:
        result = imgen(command, Chatty.backend_name, *source, "-o", str(tmp_path), "--json")
    finally:
        imgen_api.unregister_backend(Chatty.backend_name)

    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records and "loading shards 3/3" in result.stderr


def test_no_resume_makes_everything_again(tmp_path: Path, prompts_file: Path) -> None:
    out = tmp_path / "out"
    imgen("batch", "fake", str(prompts_file), "-o", str(out))

    result = imgen("batch", "fake", str(prompts_file), "-o", str(out), "--no-resume")

    assert "3 rows done, 0 skipped" in result.stdout
    assert_complete(out, rows=[1, 2, 3], num_generations=1)


def test_rows_that_fail_make_the_exit_code_1(tmp_path: Path, prompts_file: Path) -> None:
    options = ["-o", str(tmp_path / "out"), "-O", "failure_rate=1", "-O", "max_retries=0"]

    result = imgen("batch", "fake-async", str(prompts_file), *options)

    assert result.exit_code == 1
    assert "0 rows done, 0 skipped (done before), 3 failed" in result.stdout
    assert "run again to retry them" in result.stdout


def test_a_bad_row_is_done_without_but_makes_the_exit_code_1(tmp_path: Path) -> None:
    source = tmp_path / "p.jsonl"
    source.write_text('{"prompt": "a fox"}\n{"prompt": "bad \\ud800 fox"}\n{"prompt": "a cat"}\n')

    result = imgen("batch", "fake", str(source), "-o", str(tmp_path / "out"))

    assert result.exit_code == 1, result.output  # errors.jsonl is not empty: not complete
    assert "2 rows done" in result.stdout
    assert "Skipped 1 bad row of " in result.stdout
    assert_complete(tmp_path / "out", rows=[1, 3], num_generations=1)
    [error] = [
        json.loads(line) for line in (tmp_path / "out/errors.jsonl").read_text().splitlines()
    ]
    assert (error["row"], error["stage"]) == (2, "input")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.txt"], "Prompts file 'missing.txt' does not exist."),
        (["prompts.json"], "Unknown prompts file type '.json'"),
        (["prompts.txt", "--prompt-column", "text"], "--prompt-column applies to .jsonl and .csv"),
        (["prompts.txt", "-p", "sead=1"], "Unknown generation kwarg 'sead'"),
        (["prompts.txt", "--engine", "spark"], "Invalid value for '--engine'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    tmp_path: Path,
    prompts_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts.json").write_text("[]")

    result = imgen("batch", "fake", *arguments, "-o", "out")

    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_another_jobs_dataset_needs_force(tmp_path: Path, prompts_file: Path) -> None:
    out = tmp_path / "out"
    imgen("batch", "fake", str(prompts_file), "-o", str(out))

    refused = imgen("batch", "fake-async", str(prompts_file), "-o", str(out))
    forced = imgen("batch", "fake-async", str(prompts_file), "-o", str(out), "--force")

    assert refused.exit_code == 2
    assert refused.stderr.count("\n") == 1
    assert "made by 'fake:fake-v1', not 'fake-async:fake-v1'" in refused.stderr
    assert "Pass --force" in refused.stderr
    assert forced.exit_code == 0
    assert {line["model"] for line in read_metadata(out)} == {"fake-async:fake-v1"}


def test_an_output_dir_that_is_a_file_is_refused(tmp_path: Path, prompts_file: Path) -> None:
    result = imgen("batch", "fake", str(prompts_file), "-o", str(prompts_file))

    assert result.exit_code == 2
    assert f"Output dir '{prompts_file}' is a file, not a folder." in result.stderr


def test_help_lists_the_options() -> None:
    result = imgen("batch", "--help")

    for option in ("-o, --output-dir", "-n, --num-generations", "-p, --param", "-O, --field"):
        assert option in result.stdout
    for option in ("--prompt-column", "--engine [local|ray]", "--no-resume", "--force"):
        assert option in result.stdout


def test_ray_options_need_the_ray_engine(tmp_path: Path) -> None:
    prompts = write_lines(tmp_path / "p.txt", "a fox")

    result = imgen("batch", "fake", str(prompts), "-o", str(tmp_path / "out"), "--actors", "2")

    assert result.exit_code == 2
    assert "--actors and --gpus-per-actor apply to --engine ray; add it." in result.output
