"""`-` reads stdin, as Unix tools do: prompts for `imgen generate`, a prompts file for
`imgen batch`.

    echo "a red fox" | imgen generate fake - -o out
    cat prompts.txt | imgen batch fake:x - -o dataset

A file literally named `-` is still reachable as `./-`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from imgen.cli_options import UserError

if TYPE_CHECKING:  # imgen.batch loads only for `imgen batch`, keeping `imgen generate` quick
    from imgen.batch.inputs import PromptsFormat, PromptsText

__all__ = ["STDIN", "expand_stdin_prompts", "read_stdin", "stdin_prompts_text"]

STDIN = "-"
"""The argument that stands for stdin."""


def read_stdin(what: str) -> str:
    """All of stdin, decoded as UTF-8 (a BOM is dropped).

    When stdin is a terminal, a line on stderr says what to type and how to end it.

    Args:
        what: What is read, for the line shown on a terminal: "prompts, one per line".

    Raises:
        UserError: stdin is not UTF-8 text.
    """
    if sys.stdin.isatty():
        click.echo(f"Reading {what} from stdin; end with Ctrl-D.", err=True)
    # The bytes, so that the encoding is UTF-8 whatever the locale says.
    data: bytes = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"stdin (`-`) is not UTF-8 text: {exc}.") from None


def expand_stdin_prompts(prompts: Sequence[str]) -> list[str]:
    """The prompts with `-` replaced by the lines of stdin, one prompt per non-blank line.

    Raises:
        UserError: `-` is given twice, or stdin holds no prompt.
    """
    if STDIN not in prompts:
        return list(prompts)
    if prompts.count(STDIN) > 1:
        raise UserError("`-` (stdin) may be given once among the prompts.")
    piped = [
        line.strip() for line in read_stdin("prompts, one per line").splitlines() if line.strip()
    ]
    if not piped:
        raise UserError(
            "stdin (`-`) held no prompt: pipe one prompt per line, e.g. "
            '`echo "a red fox" | imgen generate MODEL -`.'
        )
    position = prompts.index(STDIN)
    return [*prompts[:position], *piped, *prompts[position + 1 :]]


def stdin_prompts_text(format: PromptsFormat) -> PromptsText:
    """The prompts file piped to stdin, read in full (its digest names the job's source)."""
    from imgen.batch.inputs import PromptsText

    return PromptsText(read_stdin(f"a {format} prompts file"), format=format)
