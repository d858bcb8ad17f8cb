"""The model ids a backend knows, read from what it already declares.

A backend declares its models in three places, and this module gathers them: the default of
its model field, the choices of that field when it is a `Literal`, and the model ids its
aliases stand for. A model field that is not a `Literal` takes other ids too, passed on to the
provider as given.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imgen.base import ImageGenerationModel

__all__ = ["KnownModels", "known_models"]


@dataclass(frozen=True)
class KnownModels:
    """The model ids of one backend.

    Attributes:
        backend: The backend name.
        default: The model id used when a spec names the backend alone; None when there is
            none.
        ids: The ids the backend knows: the default first, then the others in name order.
        aliases: Model id mapped to the aliases that name it alone (`dall-e-3` for
            `openai:dall-e-3`).
        any_id: Whether ids beyond `ids` are accepted, and passed on as given.
    """

    backend: str
    default: str | None
    ids: list[str]
    aliases: dict[str, list[str]] = field(default_factory=dict)
    any_id: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, as `imgen models list --json` and `imgen info --json` print it."""
        return {
            "backend": self.backend,
            "default": self.default,
            "ids": self.ids,
            "aliases": self.aliases,
            "any_id": self.any_id,
        }

    def summary_lines(self) -> list[str]:
        """`Models: ...`, then the aliases: a mapping only where an alias is not its id."""
        ids = ", ".join(f"{i} (default)" if i == self.default else i for i in self.ids)
        if self.any_id:
            ids = f"{ids}, or any other id" if ids else "any id"
        lines = [f"Models: {ids or '(none)'}"]
        pairs = [(alias, i) for i, aliases in self.aliases.items() for alias in aliases]
        if renamed := [f"{alias} = {i}" for alias, i in pairs if alias != i]:
            lines.append(f"Aliases: {', '.join(renamed)}")
        if same := [alias for alias, i in pairs if alias == i]:
            lines.append(f"Also by name alone: {', '.join(same)}")
        return lines


def known_models(
    cls: type[ImageGenerationModel], aliases: Mapping[str, str] | None = None
) -> KnownModels:
    """The model ids `cls` knows.

    Args:
        cls: The backend class.
        aliases: Its aliases, alias mapped to model id (`BackendInfo.aliases`).
    """
    model_field = cls.model_fields.get(cls.model_field)
    if model_field is None:  # a backend without a model field takes no model id
        return KnownModels(cls.backend_name, None, [], any_id=False)
    default = model_field.get_default(call_default_factory=True, validated_data={})
    default = default if isinstance(default, str) else None
    choices = _literal_choices(model_field.annotation)
    named: dict[str, list[str]] = {}
    for alias, model_id in sorted((aliases or {}).items()):
        named.setdefault(model_id, []).append(alias)
    others = sorted({*(choices or ()), *named} - {default})
    return KnownModels(
        backend=cls.backend_name,
        default=default,
        ids=[default, *others] if default is not None else others,
        aliases={model_id: named[model_id] for model_id in sorted(named)},
        any_id=choices is None,
    )


def _literal_choices(annotation: Any) -> list[str] | None:
    """The string choices of a `Literal` annotation (optional or annotated); None otherwise."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _literal_choices(args[0])
    if origin is typing.Literal:
        return [arg for arg in args if isinstance(arg, str)]
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in args if arg is not type(None)]
        found = [_literal_choices(member) for member in members]
        if all(choices is not None for choices in found):
            return [choice for choices in found for choice in choices or ()]
    return None
