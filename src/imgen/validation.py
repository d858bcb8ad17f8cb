"""Checks a batch before any work starts: the prompts, the count, and the generation kwargs.

Generation kwargs are checked against the signature of the backend's `generate`/`agenerate`:
unknown names get a did-you-mean, annotated values are validated (and coerced) by pydantic.
"""

from __future__ import annotations

import inspect
import math
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from imgen.errors import InvalidInputError, brief_repr, brief_text, did_you_mean

__all__ = [
    "check_generation_kwargs",
    "check_inputs",
    "check_sendable",
    "check_text_fields",
    "kwarg_adapter",
    "kwarg_parameters",
    "lone_surrogate",
]

# Parameters of generate/agenerate that are not generation kwargs.
NOT_KWARGS = frozenset({"self", "input", "inputs", "num_generations"})

_ADAPTERS: dict[Callable[..., Any], dict[str, TypeAdapter[Any]]] = {}
_SURROGATE = re.compile("[\ud800-\udfff]")
# Values nested deeper than this are not walked: no real request is shaped like that.
_MAX_DEPTH = 32


def lone_surrogate(text: str) -> int | None:
    """The position of the first lone surrogate in `text` (which UTF-8 cannot encode), or None.

    Valid JSON can carry one (`"\\ud800"`), but no request can send it.
    """
    if text.isascii():  # the common case, and a quick one
        return None
    found = _SURROGATE.search(text)
    return None if found is None else found.start()


def check_sendable(label: str, value: Any) -> None:
    """Reject a value that no request can carry: a non-finite float or a lone surrogate.

    Walks nested mappings (keys included), lists and tuples, each container once however
    often it is shared. `label` names the value in the message, e.g. "Generation kwarg seed".

    Raises:
        InvalidInputError: Naming where the bad value is.
    """
    seen: set[int] = set()
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidInputError(
                f"{_located(label, path)} is {item!r}; only finite numbers can be sent."
            )
        if isinstance(item, str):
            position = lone_surrogate(item)
            if position is not None:
                raise InvalidInputError(
                    f"{_located(label, path)} holds a lone surrogate ({item[position]!r}) at "
                    f"character {position}, which is not valid Unicode text: {brief_repr(item)}."
                )
        elif isinstance(item, Mapping | list | tuple) and len(path) < _MAX_DEPTH:
            if id(item) in seen:
                continue
            seen.add(id(item))
            if isinstance(item, Mapping):
                for key, nested in item.items():
                    stack.append(((*path, key), key))
                    stack.append(((*path, key), nested))
            else:
                stack.extend(((*path, index), nested) for index, nested in enumerate(item))


def check_text_fields(model: BaseModel) -> None:
    """Reject a model whose string fields hold a lone surrogate: no request could carry it.

    A secret field is named, never shown.

    Raises:
        InvalidInputError: Naming the field and the character position.
    """
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        if isinstance(value, SecretStr):
            position = lone_surrogate(value.get_secret_value())
            if position is not None:
                raise InvalidInputError(
                    f"Field {name} holds a lone surrogate at character {position}, which is "
                    "not valid Unicode text."
                )
        elif isinstance(value, str):
            check_sendable(f"Field {name}", value)


def _located(label: str, path: tuple[Any, ...]) -> str:
    return label + "".join(f"[{brief_repr(part, 60)}]" for part in path)


def check_inputs(inputs: Any, num_generations: Any) -> None:
    """Reject a batch that is not a list of non-empty prompts, or a bad `num_generations`.

    Raises:
        InvalidInputError: Naming the bad value.
    """
    if not isinstance(inputs, list):
        raise InvalidInputError(
            f"inputs must be a list of prompts, got {type(inputs).__name__}: {brief_repr(inputs)}"
        )
    for index, prompt in enumerate(inputs):
        if not isinstance(prompt, str):
            raise InvalidInputError(
                f"inputs[{index}] must be a string, got {type(prompt).__name__}: "
                f"{brief_repr(prompt)}"
            )
        if not prompt.strip():
            raise InvalidInputError(f"inputs[{index}] is an empty prompt: {brief_repr(prompt)}")
        check_sendable(f"inputs[{index}]", prompt)
    if isinstance(num_generations, bool) or not isinstance(num_generations, int):
        raise InvalidInputError(
            f"num_generations must be an int >= 1, got {type(num_generations).__name__}: "
            f"{brief_repr(num_generations)}"
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
        if not isinstance(name, str):
            raise InvalidInputError(
                f"Generation kwarg names must be strings, got {type(name).__name__}: "
                f"{brief_repr(name)}."
            )
        if name not in named and not open_ended:
            raise InvalidInputError(
                f"Unknown generation kwarg {brief_repr(name)} for {owner}."
                f"{did_you_mean(name, named)} Known: {', '.join(named) or 'none'}."
            )
        checked[name] = _validated(owner, name, value, adapters.get(name))
        check_sendable(f"Generation kwarg {brief_text(name, 60)}", checked[name])
    return checked


def _validated(owner: str, name: str, value: Any, adapter: TypeAdapter[Any] | None) -> Any:
    if adapter is None:
        return value
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        reason = exc.errors(include_url=False)[0]["msg"]
    # Raised outside the except block, so no __context__ keeps pydantic's error (and the value).
    raise InvalidInputError(
        f"Invalid generation kwarg {name}={brief_repr(value)} for {owner}: {reason}."
    )
