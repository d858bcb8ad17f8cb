"""Reading the prompts of a batch job: a .txt, .jsonl or .csv file, or an iterable.

Every row keeps the number it has in its source (the line number in a file, the 1-based
position in an iterable), so a rerun over the same source finds the same rows again: resume
keys on that number. A malformed row or one without a prompt is reported and skipped; it never
stops the job.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgen.errors import InvalidInputError, brief_repr, brief_text
from imgen.validation import check_sendable

__all__ = [
    "ITERABLE",
    "SUFFIXES",
    "BadRow",
    "PromptRow",
    "PromptSource",
    "read_prompts",
    "row_noun",
]

DEFAULT_COLUMN = "prompt"
ITERABLE = "<iterable>"
SUFFIXES = (".txt", ".jsonl", ".csv")


@dataclass(frozen=True)
class PromptRow:
    """One prompt to generate images for.

    Attributes:
        row: Its number in the source: the line number in a file, the position in an iterable.
        prompt: The prompt.
        fields: The row's other fields, carried into the dataset's metadata.
    """

    row: int
    prompt: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BadRow:
    """A row that was skipped, and why.

    Attributes:
        row: Its number in the source (the line number in a file).
        reason: What is wrong with it.
    """

    row: int
    reason: str


@dataclass
class PromptSource:
    """The rows of a prompt source and the rows it had to skip.

    Attributes:
        origin: The file it was read from, or `ITERABLE`.
        rows: The rows with a prompt, in source order.
        bad_rows: The rows skipped, in source order.
    """

    origin: str
    rows: list[PromptRow] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)

    def add(self, parsed: PromptRow | BadRow) -> None:
        """Keep a parsed row, or note why it was skipped."""
        if isinstance(parsed, BadRow):
            self.bad_rows.append(parsed)
        else:
            self.rows.append(parsed)

    @property
    def columns(self) -> list[str]:
        """The carried field names of all rows, in order of first appearance."""
        return list(dict.fromkeys(name for row in self.rows for name in row.fields))


def row_noun(origin: str) -> str:
    """What a row number counts in a source: its lines, or the items of an iterable."""
    return "item" if origin == ITERABLE else "line"


def read_prompts(
    prompts: str | os.PathLike[str] | Iterable[str | Mapping[str, Any]],
    prompt_column: str | None = None,
) -> PromptSource:
    """Read every row of a prompts file or an iterable of prompts and records.

    Args:
        prompts: A .txt (a prompt a line, blank lines skipped), .jsonl or .csv file; or an
            iterable of prompt strings and mappings. A str is always a path.
        prompt_column: The field holding the prompt in .jsonl/.csv rows and mappings
            (default "prompt"); the other fields are carried into the metadata.

    Raises:
        InvalidInputError: The file is missing or of an unknown type, `prompt_column` is given
            for a .txt file, or no row has the prompt column (the columns found are listed).
    """
    column = prompt_column or DEFAULT_COLUMN
    if not isinstance(prompts, str | os.PathLike):
        source = PromptSource(ITERABLE)
        found: dict[str, None] = {}
        for position, item in enumerate(prompts, 1):
            if isinstance(item, Mapping):
                found.update(dict.fromkeys(item))
            source.add(_parse_item(position, item, column))
        _check_column("the prompt records", column, list(found))
        return source
    path = Path(prompts)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInputError(
            f"Unknown prompts file type {suffix or '(none)'!r} for {str(path)!r}: "
            "use .txt (a prompt a line), .jsonl or .csv."
        )
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise InvalidInputError(f"Prompts file {str(path)!r} {what}.")
    if suffix == ".txt":
        if prompt_column is not None:
            raise InvalidInputError(
                f"--prompt-column applies to .jsonl and .csv files; {str(path)!r} holds one "
                "prompt per line."
            )
        return _read_text(path)
    reader = _read_jsonl if suffix == ".jsonl" else _read_csv
    source, columns = reader(path, column)
    _check_column(f"prompts file {str(path)!r}", column, columns)
    return source


def _check_column(where: str, column: str, columns: list[str]) -> None:
    """Fail when rows have columns but none is `column`: a typo, not a few bad rows."""
    if columns and column not in columns:
        raise InvalidInputError(
            f"No column {brief_repr(column)} in {where}; its columns are: "
            f"{brief_text(', '.join(columns))}. "
            "Choose one with --prompt-column (prompt_column= in Python)."
        )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """The numbered lines of a UTF-8 text file (a BOM is dropped)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            yield from enumerate(handle, 1)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"Prompts file {str(path)!r} is not UTF-8 text: {exc}.") from None


def _read_text(path: Path) -> PromptSource:
    source = PromptSource(str(path))
    for number, line in _lines(path):
        prompt = line.strip()
        if prompt:
            source.add(PromptRow(number, prompt))
    return source


def _read_jsonl(path: Path, column: str) -> tuple[PromptSource, list[str]]:
    source = PromptSource(str(path))
    columns: dict[str, None] = {}
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            source.add(BadRow(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(record, dict):
            source.add(BadRow(number, f"not a JSON object but a {type(record).__name__}"))
            continue
        columns.update(dict.fromkeys(record))
        source.add(_parse_record(number, record, column))
    return source, list(columns)


def _read_csv(path: Path, column: str) -> tuple[PromptSource, list[str]]:
    source = PromptSource(str(path))
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header: list[str] | None = None
        start = 1
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                source.add(BadRow(start, f"malformed CSV ({exc})"))
                start = reader.line_num + 1
                continue
            except UnicodeDecodeError as exc:
                raise InvalidInputError(
                    f"Prompts file {str(path)!r} is not UTF-8 text: {exc}."
                ) from None
            number, start = start, reader.line_num + 1
            if not record:  # a blank line
                continue
            if header is None:
                header = [name.strip() for name in record]
                continue
            if len(record) != len(header):
                source.add(
                    BadRow(number, f"has {len(record)} fields where the header has {len(header)}")
                )
                continue
            source.add(_parse_record(number, dict(zip(header, record, strict=True)), column))
    return source, header or []


def _parse_record(row: int, record: Mapping[str, Any], column: str) -> PromptRow | BadRow:
    if column not in record:
        return BadRow(row, f"no {brief_repr(column)} field")
    prompt = record[column]
    if not isinstance(prompt, str):
        return BadRow(row, f"{brief_repr(column)} is not a string: {brief_repr(prompt, 60)}")
    if not prompt.strip():
        return BadRow(row, f"{brief_repr(column)} is empty")
    return _unsendable(row, record) or PromptRow(
        row, prompt, {k: v for k, v in record.items() if k != column}
    )


def _unsendable(row: int, record: Any) -> BadRow | None:
    """A row holding what no request or JSON line can carry (a lone surrogate, a NaN)."""
    try:
        check_sendable("the row", record)
    except InvalidInputError as exc:
        return BadRow(row, str(exc).rstrip("."))
    return None


def _parse_item(position: int, item: Any, column: str) -> PromptRow | BadRow:
    if isinstance(item, str):
        if not item.strip():
            return BadRow(position, "empty prompt")
        return _unsendable(position, item) or PromptRow(position, item)
    if isinstance(item, Mapping):
        return _parse_record(position, item, column)
    return BadRow(position, f"not a prompt string or a mapping: {item!r:.60}")
