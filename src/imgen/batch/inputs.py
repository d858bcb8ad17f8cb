"""Reading the prompts of a batch job: a .txt, .jsonl or .csv file, such text read from stdin,
or an iterable.

Every row keeps the number it has in its source (the line number in a file or text, the
1-based position in an iterable), so a rerun over the same source finds the same rows again:
resume keys on that number. A malformed row or one without a prompt is reported and skipped;
it never stops the job.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO, get_args

from imgen import local_paths
from imgen.errors import InvalidInputError, brief_repr, brief_text
from imgen.validation import check_sendable

__all__ = [
    "ITERABLE",
    "SUFFIXES",
    "BadRow",
    "PromptRow",
    "PromptSource",
    "PromptsFormat",
    "PromptsText",
    "read_prompts",
    "row_noun",
]

DEFAULT_COLUMN = "prompt"
ITERABLE = "<iterable>"
SUFFIXES = (".txt", ".jsonl", ".csv")
PromptsFormat = Literal["txt", "jsonl", "csv"]
"""The formats of a prompts file, named as their suffixes."""
FORMATS: tuple[PromptsFormat, ...] = get_args(PromptsFormat)
_FORMAT_OF_SUFFIX: dict[str, PromptsFormat] = {f".{format}": format for format in FORMATS}


@dataclass(frozen=True)
class PromptsText:
    """The text of a prompts file held in memory, such as prompts piped to stdin.

    Its rows are numbered by line, as a file's are, so the same text read again resumes the
    same job; a changed line is caught as a changed prompt.

    Attributes:
        text: The prompts, in the given format.
        format: "txt" (a prompt a line), "jsonl" or "csv".
        name: What the text is, for messages and the job manifest.
    """

    text: str
    format: PromptsFormat = "txt"
    name: str = "<stdin>"

    @property
    def origin(self) -> str:
        """The name and a digest of the text: which text made a dataset, in its manifest."""
        digest = hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.name} (sha256:{digest[:16]})"


@dataclass(frozen=True)
class PromptRow:
    """One prompt to generate images for.

    Attributes:
        row: Its number in the source: the line number in a file, the position in an iterable.
        prompt: The prompt.
        fields: The row's other fields, carried into the dataset's metadata.
        seed: The seed of the row's image 0 in a seeded job (image k has seed + k); None
            when the job has no seed. The job sets it (see `imgen.batch.seeding`).
    """

    row: int
    prompt: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None


@dataclass(frozen=True)
class BadRow:
    """A row that was skipped, and why.

    Attributes:
        row: Its number in the source (the line number in a file).
        reason: What is wrong with it.
        prompt: Its prompt, when it has one.
    """

    row: int
    reason: str
    prompt: str | None = None


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
    prompts: str | os.PathLike[str] | PromptsText | Iterable[str | Mapping[str, Any]],
    prompt_column: str | None = None,
) -> PromptSource:
    """Read every row of a prompts file or text, or of an iterable of prompts and records.

    Args:
        prompts: A .txt (a prompt a line, blank lines skipped), .jsonl or .csv file; the
            same in memory as `PromptsText`; or an iterable of prompt strings and mappings.
            A str is always a path.
        prompt_column: The field holding the prompt in .jsonl/.csv rows and mappings
            (default "prompt"); the other fields are carried into the metadata.

    Raises:
        InvalidInputError: `prompts` is neither a path nor an iterable of prompts (bytes, one
            mapping alone), the file is missing or of an unknown type, `prompt_column` is not
            a name or is given for a .txt file, or no row has the prompt column (the columns
            found are listed).
    """
    _check_source(prompts, prompt_column)
    column = prompt_column or DEFAULT_COLUMN
    if isinstance(prompts, PromptsText):
        text = prompts.text
        return _read(
            prompts.format,
            _Text(prompts.origin, lambda: io.StringIO(text, newline="")),
            prompt_column,
        )
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
            f"Unknown prompts file type {brief_repr(suffix or '(none)')} for "
            f"{brief_repr(str(path))}: "
            "use .txt (a prompt a line), .jsonl or .csv."
        )
    if not local_paths.is_file(path):
        what = "is a directory, not a file" if local_paths.is_dir(path) else "does not exist"
        raise InvalidInputError(f"Prompts file {brief_repr(str(path))} {what}.")
    opened = _Text(str(path), lambda: path.open(encoding="utf-8-sig", newline=""))
    return _read(_FORMAT_OF_SUFFIX[suffix], opened, prompt_column)


def _check_source(prompts: Any, prompt_column: Any) -> None:
    if prompt_column is not None and not (isinstance(prompt_column, str) and prompt_column):
        raise InvalidInputError(
            f"prompt_column must be a column name such as 'prompt', got "
            f"{type(prompt_column).__name__}: {brief_repr(prompt_column)}."
        )
    if isinstance(prompts, bytes | bytearray):
        raise InvalidInputError(
            "prompts must be a path, PromptsText or an iterable of prompts, not bytes: decode "
            "them first, e.g. PromptsText(data.decode(), 'txt')."
        )
    if isinstance(prompts, Mapping):
        raise InvalidInputError(
            f"prompts is one mapping ({brief_repr(prompts)}): pass a list of them, one per "
            "prompt, e.g. [{'prompt': 'a red fox'}]."
        )
    if not isinstance(prompts, str | os.PathLike | PromptsText | Iterable):
        raise InvalidInputError(
            "prompts must be a .txt, .jsonl or .csv path, PromptsText or an iterable of "
            f"prompts, got {type(prompts).__name__}: {brief_repr(prompts)}."
        )


@dataclass(frozen=True)
class _Text:
    """Where rows are read from: a name for messages, and how to open it as text."""

    origin: str
    open: Callable[[], TextIO]


def _read(format: PromptsFormat, text: _Text, prompt_column: str | None) -> PromptSource:
    if format == "txt":
        if prompt_column is not None:
            raise InvalidInputError(
                f"--prompt-column applies to .jsonl and .csv files; {text.origin!r} holds one "
                "prompt per line."
            )
        return _read_text(text)
    column = prompt_column or DEFAULT_COLUMN
    reader = _read_jsonl if format == "jsonl" else _read_csv
    source, columns = reader(text, column)
    _check_column(f"prompts file {text.origin!r}", column, columns)
    return source


def _check_column(where: str, column: str, columns: list[str]) -> None:
    """Fail when rows have columns but none is `column`: a typo, not a few bad rows."""
    if columns and column not in columns:
        raise InvalidInputError(
            f"No column {brief_repr(column)} in {where}; its columns are: "
            f"{brief_text(', '.join(columns))}. "
            "Choose one with --prompt-column (prompt_column= in Python)."
        )


def _lines(text: _Text) -> Iterator[tuple[int, str]]:
    """The numbered lines of UTF-8 text (a BOM is dropped)."""
    try:
        with text.open() as handle:
            yield from enumerate(handle, 1)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"Prompts file {text.origin!r} is not UTF-8 text: {exc}.") from None


def _read_text(text: _Text) -> PromptSource:
    source = PromptSource(text.origin)
    for number, line in _lines(text):
        prompt = line.strip()
        if prompt:
            source.add(PromptRow(number, prompt))
    return source


def _read_jsonl(text: _Text, column: str) -> tuple[PromptSource, list[str]]:
    source = PromptSource(text.origin)
    columns: dict[str, None] = {}
    for number, line in _lines(text):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            # Some of json's messages end in " at" ("Invalid control character at").
            problem = exc.msg.removesuffix(" at")
            source.add(BadRow(number, f"not valid JSON ({problem} at column {exc.colno})"))
            continue
        if not isinstance(record, dict):
            source.add(BadRow(number, f"not a JSON object but a {type(record).__name__}"))
            continue
        columns.update(dict.fromkeys(record))
        source.add(_parse_record(number, record, column))
    return source, list(columns)


def _read_csv(text: _Text, column: str) -> tuple[PromptSource, list[str]]:
    source = PromptSource(text.origin)
    with text.open() as handle:
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
                    f"Prompts file {text.origin!r} is not UTF-8 text: {exc}."
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
    return _unsendable(row, record, prompt) or PromptRow(
        row, prompt, {k: v for k, v in record.items() if k != column}
    )


def _unsendable(row: int, record: Any, prompt: str) -> BadRow | None:
    """A row holding what no request or JSON line can carry (a lone surrogate, a NaN)."""
    try:
        check_sendable("the row", record)
    except InvalidInputError as exc:
        return BadRow(row, str(exc).rstrip("."), prompt)
    return None


def _parse_item(position: int, item: Any, column: str) -> PromptRow | BadRow:
    if isinstance(item, str):
        if not item.strip():
            return BadRow(position, "empty prompt")
        return _unsendable(position, item, item) or PromptRow(position, item)
    if isinstance(item, Mapping):
        return _parse_record(position, item, column)
    return BadRow(position, f"not a prompt string or a mapping: {item!r:.60}")
