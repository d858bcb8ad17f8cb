"""`-` reads stdin: prompts for `imgen generate`, a prompts file for `imgen batch`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from batch_support import assert_complete, read_metadata, write_lines
from imgen.batch import PromptsText, run_batch
from imgen.cli import main

IMGEN = "from imgen.cli import main; main()"


def imgen(*args: str, stdin: str | bytes = "") -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- imgen generate ------------------------------------------------------------------------


def test_generate_reads_one_prompt_a_line_where_the_dash_stands(tmp_path: Path) -> None:
    result = imgen(
        "generate",
        "fake",
        "a cat",
        "-",
        "a dog",
        "-o",
        str(tmp_path),
        stdin="a fox\n\n  the sea \n",
    )
    assert result.exit_code == 0, result.output
    names = [Path(line).name for line in result.stdout.splitlines()]
    assert names == ["a-cat-0.png", "a-fox-0.png", "the-sea-0.png", "a-dog-0.png"]


def test_generate_from_a_real_pipe(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMGEN, "generate", "fake", "-", "-o", "out", "--json"],
        input=b"a red fox\n",
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["prompt"], record["path"]) == ("a red fox", str(Path("out") / "a-red-fox-0.png"))


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["-"], "\n  \n", "stdin (`-`) held no prompt"),
        (["-", "-"], "a fox\n", "`-` (stdin) may be given once"),
        (["-"], b"a \xff fox\n", "stdin (`-`) is not UTF-8 text"),
    ],
    ids=["empty", "twice", "not-utf8"],
)
def test_generate_stdin_mistakes_are_one_line_errors(
    tmp_path: Path, args: list[str], stdin: str | bytes, message: str
) -> None:
    result = imgen("generate", "fake", *args, "-o", str(tmp_path), stdin=stdin)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not list(tmp_path.iterdir())


def test_generate_still_checks_the_prompts_given_as_arguments(tmp_path: Path) -> None:
    result = imgen("generate", "fake", "-", " ", "-o", str(tmp_path), stdin="a fox\n")
    assert result.exit_code == 2
    assert "PROMPT 2 is empty" in result.stderr


# -- imgen batch ---------------------------------------------------------------------------


def test_batch_reads_a_prompts_file_from_stdin(tmp_path: Path) -> None:
    text = "a fox\n\nthe sea\n"
    out = tmp_path / "out"

    result = imgen("batch", "fake:x", "-", "-o", str(out), "--json", stdin=text)

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["prompts"] == f"<stdin> (sha256:{digest(text)})"
    assert_complete(out, rows=[1, 3], num_generations=1)  # rows are line numbers, as in a file
    manifest = json.loads((out / "job.json").read_text())
    assert manifest["prompts"] == summary["prompts"]


def test_batch_from_stdin_resumes_like_the_same_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    text = "a fox\nthe sea\n"
    imgen("batch", "fake:x", "-", "-o", str(out), stdin=text)

    again = json.loads(imgen("batch", "fake:x", "-", "-o", str(out), "--json", stdin=text).stdout)
    longer = imgen("batch", "fake:x", "-", "-o", str(out), "--json", stdin=text + "a cat\n")
    from_file = write_lines(tmp_path / "prompts.txt", "a fox", "the sea", "a cat")
    same_as_file = imgen("batch", "fake:x", str(from_file), "-o", str(out), "--json")

    assert (again["rows_skipped"], again["images_written"]) == (2, 0)
    assert json.loads(longer.stdout)["images_written"] == 1  # only the new line
    assert json.loads(same_as_file.stdout)["rows_skipped"] == 3
    assert_complete(out, rows=[1, 2, 3], num_generations=1)


def test_batch_from_stdin_refuses_changed_prompts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    imgen("batch", "fake:x", "-", "-o", str(out), stdin="a fox\nthe sea\n")

    result = imgen("batch", "fake:x", "-", "-o", str(out), stdin="a fox\na lighthouse\n")

    assert result.exit_code == 2
    assert "Row 2 of <stdin> (sha256:" in result.stderr
    assert "the prompts changed" in result.stderr
    assert [line["prompt"] for line in read_metadata(out)] == ["a fox", "the sea"]


@pytest.mark.parametrize(
    ("stdin_format", "text"),
    [
        ("jsonl", '{"text": "a fox", "style": "ink"}\n{"text": "the sea", "style": "oil"}\n'),
        ("csv", "text,style\na fox,ink\nthe sea,oil\n"),
    ],
)
def test_batch_reads_jsonl_and_csv_from_stdin(tmp_path: Path, stdin_format: str, text: str) -> None:
    out = tmp_path / "out"
    args = ["-o", str(out), "--stdin-format", stdin_format, "--prompt-column", "text"]

    result = imgen("batch", "fake:x", "-", *args, stdin=text)

    assert result.exit_code == 0, result.output
    lines = read_metadata(out)
    assert sorted((line["prompt"], line["style"]) for line in lines) == [
        ("a fox", "ink"),
        ("the sea", "oil"),
    ]


def test_stdin_format_without_dash_is_refused(tmp_path: Path) -> None:
    prompts = write_lines(tmp_path / "prompts.txt", "a fox")
    result = imgen(
        "batch", "fake", str(prompts), "-o", str(tmp_path / "out"), "--stdin-format", "csv"
    )
    assert result.exit_code == 2
    assert "--stdin-format applies when PROMPTS_FILE is -" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_file_named_dash_is_read_as_a_file(tmp_path: Path) -> None:
    (tmp_path / "-").write_text("a fox\n")
    result = subprocess.run(
        [sys.executable, "-c", IMGEN, "batch", "fake", "./-", "-o", "out"],
        input=b"a cat\n",
        cwd=tmp_path,
        capture_output=True,
        check=False,
        env={**os.environ, "IMGEN_DEBUG": ""},
    )
    # Not stdin, which holds a good prompt: the file, whose name has no prompts file type.
    assert result.returncode == 2
    assert b"Unknown prompts file type '(none)'" in result.stderr


def test_prompts_text_from_python_resumes_by_content(tmp_path: Path) -> None:
    text = "a fox\nthe sea\n"
    first = run_batch("fake:x", PromptsText(text), tmp_path / "out")
    again = run_batch("fake:x", PromptsText(text), tmp_path / "out")
    assert (first.rows_done, again.rows_skipped) == (2, 2)
    assert first.prompts == f"<stdin> (sha256:{digest(text)})"
