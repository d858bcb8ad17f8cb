"""Checks a batch before any work starts: the prompts, the count, and the generation kwargs.

Generation kwargs are checked against the signature of the backend's `generate`/`agenerate`:
unknown names get a did-you-mean, annotated values are validated (and coerced) by pydantic.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from imgen.errors import InvalidInputError, did_you_mean

__all__ = [
    "check_generation_kwargs",
    "check_inputs",
    "kwarg_adapter",
    "kwarg_parameters",
    "lone_surrogate",
]

# Parameters of generate/agenerate that are not generation kwargs.
NOT_KWARGS = frozenset({"self", "input", "inputs", "num_generations"})

_ADAPTERS: dict[Callable[..., Any], dict[str, TypeAdapter[Any]]] = {}


def lone_surrogate(text: str) -> int | None:
    """The position of the first lone surrogate in `text` (no UTF-8 can encode one), or None.

    JSON escapes such as "\\ud800" and undecodable command-line bytes produce them.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def check_inputs(inputs: Any, num_generations: Any) -> None:
    """Reject a batch that is not a list of non-empty prompts, or a bad `num_generations`.

    Raises:
        InvalidInputError: Naming the bad value.
    """
    if not isinstance(inputs, list):
        raise InvalidInputError(
            f"inputs must be a list of prompts, got {type(inputs).__name__}: {inputs!r:.80}"
        )
    for index, prompt in enumerate(inputs):
        if not isinstance(prompt, str):
            raise InvalidInputError(
                f"inputs[{index}] must be a string, got {type(prompt).__name__}: {prompt!r:.80}"
            )
        if not prompt.strip():
            raise InvalidInputError(f"inputs[{index}] is an empty prompt: {prompt!r}")
        if (position := lone_surrogate(prompt)) is not None:
            raise InvalidInputError(
                f"inputs[{index}] is not valid Unicode text: it holds the lone surrogate "
                f"{prompt[position]!r} at position {position}: {prompt!r:.80}"
            )
    if isinstance(num_generations, bool) or not isinstance(num_generations, int):
        raise InvalidInputError(
            f"num_generations must be an int >= 1, got {type(num_generations).__name__}: "
            f"{num_generations!r}"
        )
    if num_generations < 1:
        raise InvalidInputError(f"num_generations must be >= 1, got {num_generations}")


def kwarg_parameters(method: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
    """The generation kwargs a method names, and whether it also takes `**kwargs`."""
    named: dict[str, inspect.Parameter] = {}
    open_ended = False
    for param in inspect.signature(method).parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            open_ended = True
        elif param.kind is not inspect.Parameter.VAR_POSITIONAL and param.name not in NOT_KWARGS:
            named[param.name] = param
    return named, open_ended


def _adapters(method: Callable[..., Any]) -> dict[str, TypeAdapter[Any]]:
    function = getattr(method, "__func__", method)
    if function not in _ADAPTERS:
        try:
            hints = typing.get_type_hints(function, include_extras=True)
        except Exception:  # unresolvable annotations: keep the name checks, skip type checks
            hints = {}
        _ADAPTERS[function] = {
            name: TypeAdapter(hint)
            for name, hint in hints.items()
            if name not in NOT_KWARGS and name != "return" and hint is not Any
        }
    return _ADAPTERS[function]


def kwarg_adapter(method: Callable[..., Any], name: str) -> TypeAdapter[Any] | None:
    """The validator of `method`'s generation kwarg `name`; None when nothing is to check."""
    return _adapters(method).get(name)


def check_generation_kwargs(
    owner: str, method: Callable[..., Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Validate generation kwargs against `method`'s signature; return the coerced values.

    Args:
        owner: The backend class name, for messages.
        method: The backend's `generate` or `agenerate`.
        kwargs: The kwargs to check.

    Raises:
        InvalidInputError: An unknown name (with a did-you-mean) or an invalid value.
    """
    named, open_ended = kwarg_parameters(method)
    adapters = _adapters(method)
    checked: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name not in named and not open_ended:
            raise InvalidInputError(
                f"Unknown generation kwarg {name!r} for {owner}.{did_you_mean(name, named)} "
                f"Known: {', '.join(named) or 'none'}."
            )
        adapter = adapters.get(name)
        if adapter is None:
            checked[name] = value
            continue
        try:
            checked[name] = adapter.validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            raise InvalidInputError(
                f"Invalid generation kwarg {name}={value!r} for {owner}: {reason}."
            ) from None
    return checked
