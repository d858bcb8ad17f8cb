"""Find what an exception could reveal: for tests that a secret never leaks through an error."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from typing import Any

__all__ = ["exception_text"]


def _exceptions_in(value: Any, depth: int = 0) -> Iterator[BaseException]:
    if isinstance(value, BaseException):
        yield value
    elif depth < 3 and isinstance(value, dict):
        for item in value.values():
            yield from _exceptions_in(item, depth + 1)
    elif depth < 3 and isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _exceptions_in(item, depth + 1)


def exception_text(error: BaseException) -> str:
    """Everything an exception can tell, for its own sake and for every one reachable from it.

    That is the formatted traceback, the `repr` of the args and of every attribute, for the
    exception and for each exception reachable through `__cause__`, `__context__`, an
    exception group, an argument or an attribute (`GenerationError.errors`, say). Assert that
    a secret is not in it:

        assert api_key not in exception_text(raised.value)
    """
    parts: list[str] = []
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        parts.append("".join(traceback.format_exception(current)))
        parts.append(repr(current.args))
        attributes = dict(vars(current))
        parts.extend(f"{name}={value!r}" for name, value in attributes.items())
        pending.extend(_exceptions_in([current.args, attributes]))
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
    return "\n".join(parts)
