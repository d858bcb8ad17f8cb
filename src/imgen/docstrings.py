"""Google-style docstring parsing, built on docstring_parser.

The parsed descriptions feed the runtime parameter info, the CLI's `imgen info` and the docs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypedDict

import docstring_parser

__all__ = ["Docstring", "parse_google_docstring"]


class Docstring(TypedDict):
    """The parts of a Google-style docstring."""

    short_description: str
    description: str
    args: dict[str, str]
    attributes: dict[str, str]
    returns: str
    raises: dict[str, str]
    examples: list[str]


def _one_line(text: str | None) -> str:
    # Wrapped argument descriptions come back with hard line breaks; join them.
    return " ".join((text or "").split())


def parse_google_docstring(obj: Callable[..., Any] | type | None) -> Docstring:
    """Parse the Google-style docstring of a function or class.

    Typed arguments (`name (int): ...`) and descriptions that span several lines are supported.

    Args:
        obj: The function, method or class whose docstring is parsed. None gives an empty result.

    Returns:
        The parsed docstring; missing sections are empty.
    """
    raw = inspect.getdoc(obj) if obj is not None else None
    if not raw:
        return Docstring(
            short_description="",
            description="",
            args={},
            attributes={},
            returns="",
            raises={},
            examples=[],
        )
    parsed = docstring_parser.parse(raw, style=docstring_parser.DocstringStyle.GOOGLE)
    args: dict[str, str] = {}
    attributes: dict[str, str] = {}
    for param in parsed.params:
        section = attributes if param.args and param.args[0] == "attribute" else args
        section[param.arg_name] = _one_line(param.description)
    return Docstring(
        short_description=_one_line(parsed.short_description),
        description=(parsed.long_description or "").strip(),
        args=args,
        attributes=attributes,
        returns=_one_line(parsed.returns.description if parsed.returns else None),
        raises={r.type_name or "": _one_line(r.description) for r in parsed.raises},
        examples=[e.description or "" for e in parsed.examples],
    )
