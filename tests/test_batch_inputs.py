"""Reading prompts for batch jobs: .txt, .jsonl, .csv and iterables; bad rows and bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batch_support import write_jsonl, write_lines
from imgen.batch.inputs import BadRow, PromptRow, read_prompts
from imgen.errors import InvalidInputError


def test_text_rows_are_numbered_by_line_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.txt", "a red fox", "", "  ", "  a lighthouse  ", "ramen")

    source = read_prompts(path)

    assert source.rows == [
        PromptRow(1, "a red fox"),
        PromptRow(4, "a lighthouse"),
        PromptRow(5, "ramen"),
    ]
    assert source.bad_rows == []
    assert source.origin == str(path)


def test_jsonl_carries_other_fields_and_reports_bad_lines_by_number(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "p.jsonl",
        '{"prompt": "a fox", "id": 1}',
        "",
        "{not json",
        '["a list"]',
        '{"id": 5}',
        '{"prompt": 42}',
        '{"prompt": "   "}',
        '{"prompt": "a cat", "tags": ["pet"], "id": 8}',
    )

    source = read_prompts(path)

    assert source.rows == [
        PromptRow(1, "a fox", {"id": 1}),
        PromptRow(8, "a cat", {"tags": ["pet"], "id": 8}),
    ]
    assert [bad.row for bad in source.bad_rows] == [3, 4, 5, 6, 7]
    reasons = [bad.reason for bad in source.bad_rows]
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1:] == [
        "not a JSON object but a list",
        "no 'prompt' field",
        "'prompt' is not a string: 42",
        "'prompt' is empty",
    ]
    assert source.columns == ["id", "tags"]


def test_a_json_error_reads_as_one_sentence(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.jsonl", '{"prompt": "a\tfox"}', "{not json")
    reasons = [bad.reason for bad in read_prompts(path).bad_rows]
    assert reasons == [
        "not valid JSON (Invalid control character at column 14)",
        "not valid JSON (Expecting property name enclosed in double quotes at column 2)",
    ]


def test_jsonl_takes_the_prompt_from_the_chosen_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", {"text": "a fox", "prompt": "ignored"}, {"x": 1})

    source = read_prompts(path, prompt_column="text")

    assert source.rows == [PromptRow(1, "a fox", {"prompt": "ignored"})]
    assert source.bad_rows == [BadRow(2, "no 'text' field")]


def test_csv_rows_are_numbered_by_their_first_line(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(
        b'\xef\xbb\xbfid,prompt,style\n1,a fox,oil\n2,"a two\nline prompt",ink\n\n3,,pen\n4,short\n'
        b"5,a cat,photo\n"
    )

    source = read_prompts(path)

    assert source.rows == [
        PromptRow(2, "a fox", {"id": "1", "style": "oil"}),
        PromptRow(3, "a two\nline prompt", {"id": "2", "style": "ink"}),
        PromptRow(8, "a cat", {"id": "5", "style": "photo"}),
    ]
    assert source.bad_rows == [
        BadRow(6, "'prompt' is empty"),
        BadRow(7, "has 2 fields where the header has 3"),
    ]


@pytest.mark.parametrize(
    ("name", "content"),
    [("p.csv", "id,text\n1,a fox\n"), ("p.jsonl", '{"id": 1, "text": "a fox"}\n')],
)
def test_a_missing_prompt_column_is_an_error_listing_the_columns(
    tmp_path: Path, name: str, content: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")

    with pytest.raises(
        InvalidInputError, match=r"No column 'prompt' in prompts file .*; its columns are: id, text"
    ):
        read_prompts(path)
    with pytest.raises(InvalidInputError, match=r"No column 'txt'"):
        read_prompts(path, prompt_column="txt")
    assert read_prompts(path, prompt_column="text").rows[0].prompt == "a fox"


def test_bad_files_are_errors_naming_them(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text("[]")
    (tmp_path / "p.txt").write_text("a fox\n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "folder.txt").mkdir()

    with pytest.raises(InvalidInputError, match=r"Prompts file '.*missing.txt' does not exist"):
        read_prompts(tmp_path / "missing.txt")
    with pytest.raises(InvalidInputError, match=r"'.*folder.txt' is a directory"):
        read_prompts(tmp_path / "folder.txt")
    with pytest.raises(InvalidInputError, match=r"Unknown prompts file type '.json'"):
        read_prompts(tmp_path / "p.json")
    with pytest.raises(InvalidInputError, match=r"--prompt-column applies to .jsonl and .csv"):
        read_prompts(tmp_path / "p.txt", prompt_column="text")
    with pytest.raises(InvalidInputError, match=r"latin1.txt' is not UTF-8"):
        read_prompts(tmp_path / "latin1.txt")


def test_an_iterable_holds_prompts_and_records_numbered_from_one() -> None:
    items: list[Any] = ["a fox", {"prompt": "a cat", "id": 7}, "", 42, {"id": 9}]

    source = read_prompts(items)

    assert source.rows == [PromptRow(1, "a fox"), PromptRow(2, "a cat", {"id": 7})]
    assert source.bad_rows == [
        BadRow(3, "empty prompt"),
        BadRow(4, "not a prompt string or a mapping: 42"),
        BadRow(5, "no 'prompt' field"),
    ]
    with pytest.raises(InvalidInputError, match=r"No column 'text' in the prompt records"):
        read_prompts([{"prompt": "a fox"}], prompt_column="text")
