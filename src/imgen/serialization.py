"""Dump models to plain data and files, and load them back by backend name.

A config names its backend by registry name (`type_info.backend`). Loading never imports a
module path found in a config, and secret fields are never written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel

from imgen import local_paths
from imgen.errors import ConfigurationError, InvalidInputError, brief_repr
from imgen.runtime_parameters import is_secret_field

if TYPE_CHECKING:
    from imgen.base import ImageGenerationModel

__all__ = ["load_model", "read_config"]

_Self = TypeVar("_Self", bound="_Serializable")
SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
MAX_CONFIG_NODES = 100_000
"""The most values a YAML config may expand to, aliases counted each time they are used."""


class _BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a document expanding to more than `MAX_CONFIG_NODES`.

    Anchors and aliases let a few hundred bytes stand for billions of values (an "alias
    bomb"). Sizes are counted on the composed nodes, before any Python object is built.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        node = super().compose_node(parent, index)
        if node is None or id(node) in self._sizes:  # an alias: its node is counted already
            return node
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        # A child still being composed (a recursive alias) counts as one.
        size = 1 + sum(self._sizes.get(id(child), 1) for child in children)
        if size > MAX_CONFIG_NODES:
            raise yaml.YAMLError(
                f"the document expands to more than {MAX_CONFIG_NODES} values (anchors and "
                "aliases repeat what they name); a model config holds a few dozen"
            )
        self._sizes[id(node)] = size
        return node


if TYPE_CHECKING:
    _ModelBase = BaseModel
else:
    # A plain mixin at runtime, so it sits beside BaseModel in a model's bases.
    _ModelBase = object


class _Serializable(_ModelBase):
    """`dump`, `save` and the `from_*` constructors, resolved through the registry."""

    def dump(self, **kwargs: Any) -> dict[str, Any]:
        """Plain JSON-ready data plus `type_info`; secret fields are left out.

        Args:
            **kwargs: Passed on to `model_dump`.
        """
        secrets = {n for n, f in type(self).model_fields.items() if is_secret_field(f)}
        exclude = set(kwargs.pop("exclude", None) or ()) | secrets
        data = self.model_dump(mode="json", exclude=exclude, **kwargs)
        cls = type(self)
        data["type_info"] = {
            "backend": getattr(cls, "backend_name", None),
            "module": cls.__module__,
            "name": cls.__qualname__,
        }
        return data

    def save(
        self, path: str | os.PathLike[str], format: Literal["json", "yaml"] | None = None
    ) -> Path:
        """Write `dump()` to a JSON or YAML file (format taken from the suffix when not given)."""
        target = Path(path)
        if format is not None and format not in ("json", "yaml"):
            raise InvalidInputError(f"format must be 'json' or 'yaml', got {brief_repr(format)}.")
        fmt = format or SUFFIXES.get(target.suffix.lower())
        if fmt == "json":
            text = json.dumps(self.dump(), indent=2) + "\n"
        elif fmt == "yaml":
            text = yaml.safe_dump(self.dump(), sort_keys=False)
        else:
            raise InvalidInputError(
                f"Cannot tell the format of {str(target)!r}: use a .json/.yaml/.yml suffix "
                "or pass format='json' or 'yaml'."
            )
        target.write_text(text, encoding="utf-8")
        return target

    @classmethod
    def from_dict(cls: type[_Self], data: Mapping[str, Any]) -> _Self:
        """Build a model from `dump()` data, resolving the class by its registry name.

        A dump of `cls` itself loads even when `cls` was never registered: `type_info` then
        names exactly that class. No module a config names is ever imported.

        Raises:
            UnknownBackendError: `type_info.backend` is not a registered backend.
            ConfigurationError: The resolved class is not a subclass of `cls`, there is no
                backend name to resolve, or a key is not a string.
            InvalidInputError: `data` is not a mapping, a key is unknown or a value is invalid.
        """
        from imgen import registry

        if not isinstance(data, Mapping):
            raise InvalidInputError(
                f"{cls.__qualname__}.from_dict takes a mapping (the data of dump()), got "
                f"{type(data).__name__}: {brief_repr(data)}."
            )
        fields = dict(data)
        for key in fields:
            if not isinstance(key, str):
                raise ConfigurationError(
                    f"Config keys must be field names (strings); got {type(key).__name__} "
                    f"{brief_repr(key)}."
                )
        type_info = fields.pop("type_info", None)
        target: type[Any]
        if type_info is None or _names_class(type_info, cls):
            target = cls
        elif isinstance(type_info, Mapping) and isinstance(type_info.get("backend"), str):
            target = registry.get_backend(type_info["backend"])
        else:
            raise ConfigurationError(
                f"The config's type_info {brief_repr(type_info)} has no backend name; "
                "expected type_info: {backend: <registered backend name>}."
            )
        if not (isinstance(target, type) and issubclass(target, cls)):
            raise ConfigurationError(
                f"Backend {type_info.get('backend')!r} resolves to {target.__qualname__}, "
                f"which is not a {cls.__qualname__}."
            )
        if getattr(target, "__abstractmethods__", None):
            raise ConfigurationError(
                f"{target.__qualname__} is abstract; the config needs type_info.backend."
            )
        # The constructor reports bad fields as one InvalidInputError, secrets masked.
        return target(**fields)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls: type[_Self], path: str | os.PathLike[str]) -> _Self:
        """Load a model from a JSON file written by `save`."""
        return cls.from_dict(read_config(path, "json"))

    @classmethod
    def from_yaml(cls: type[_Self], path: str | os.PathLike[str]) -> _Self:
        """Load a model from a YAML file written by `save` (read with `safe_load`)."""
        return cls.from_dict(read_config(path, "yaml"))

    @classmethod
    def from_file(cls: type[_Self], path: str | os.PathLike[str]) -> _Self:
        """Load a model from a .json, .yaml or .yml file."""
        return cls.from_dict(read_config(path))


def _names_class(type_info: Any, cls: type[Any]) -> bool:
    """Whether `type_info` names exactly `cls` (module, name and any backend name)."""
    return (
        isinstance(type_info, Mapping)
        and type_info.get("module") == cls.__module__
        and type_info.get("name") == cls.__qualname__
        and type_info.get("backend") == getattr(cls, "backend_name", None)
    )


def _parse(text: str, fmt: str, origin: str) -> dict[str, Any]:
    try:
        data = json.loads(text) if fmt == "json" else yaml.load(text, Loader=_BoundedLoader)
        problem = None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        problem = str(exc)
    except RecursionError:
        problem = "it is nested too deeply"
    if problem is not None:
        raise ConfigurationError(f"Cannot parse {origin} as {fmt.upper()}: {problem}")
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{origin[:1].upper()}{origin[1:]} holds a {type(data).__name__}, not a mapping of "
            "field names to values."
        )
    return data


def read_config(path: str | os.PathLike[str], fmt: str | None = None) -> dict[str, Any]:
    """Read a JSON or YAML config file into a dict.

    Raises:
        ConfigurationError: The file is missing, unreadable, of an unknown type or malformed.
    """
    source = Path(path)
    fmt = fmt or SUFFIXES.get(source.suffix.lower())
    if fmt is None:
        raise ConfigurationError(
            f"Unknown config file type {source.suffix!r} for {brief_repr(str(source))}: "
            "use .json, .yaml or .yml."
        )
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"Config file {brief_repr(str(source))} is not UTF-8 text (byte {exc.start}): "
            "save it as UTF-8."
        ) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the name
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigurationError(
            f"Cannot read config file {brief_repr(str(source))}: {reason}"
        ) from None
    return _parse(text, fmt, f"config file {brief_repr(str(source))}")


def load_model(source: Mapping[str, Any] | str | os.PathLike[str]) -> ImageGenerationModel:
    """Build a model from a dict, a .json/.yaml/.yml path, or JSON/YAML text.

    The backend is resolved by its registry name, never by importing a module the config names.
    """
    from imgen.base import ImageGenerationModel

    if isinstance(source, bytes | bytearray):
        raise InvalidInputError(
            "load_model takes a dict, a path or JSON/YAML text, not bytes: decode them first, "
            "e.g. load_model(data.decode())."
        )
    if not isinstance(source, Mapping | str | os.PathLike):
        raise InvalidInputError(
            "load_model takes a dict, a path (.json, .yaml, .yml) or JSON/YAML text; got "
            f"{type(source).__name__}: {brief_repr(source)}."
        )
    if isinstance(source, Mapping):
        return ImageGenerationModel.from_dict(source)
    if isinstance(source, os.PathLike) or (
        "\n" not in source
        and (Path(source).suffix.lower() in SUFFIXES or local_paths.is_file(source))
    ):
        # A file of another suffix is named as such, rather than parsed as one line of YAML.
        return ImageGenerationModel.from_dict(read_config(source))
    text = source.strip()
    fmt = "json" if text.startswith("{") else "yaml"
    return ImageGenerationModel.from_dict(_parse(text, fmt, "the config text"))
