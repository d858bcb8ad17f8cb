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

from imgen.errors import ConfigurationError, InvalidInputError
from imgen.runtime_parameters import is_secret_field

if TYPE_CHECKING:
    from imgen.base import ImageGenerationModel

__all__ = ["load_model", "read_config"]

_Self = TypeVar("_Self", bound="_Serializable")
SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


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

        Raises:
            UnknownBackendError: `type_info.backend` is not a registered backend.
            ConfigurationError: The resolved class is not a subclass of `cls`, or there is no
                backend name to resolve.
            InvalidInputError: A key is unknown or a value is invalid.
        """
        from imgen import registry

        fields = dict(data)
        type_info = fields.pop("type_info", None)
        target: type[Any]
        if type_info is None:
            target = cls
        elif isinstance(type_info, Mapping) and isinstance(type_info.get("backend"), str):
            target = registry.get_backend(type_info["backend"])
        else:
            raise ConfigurationError(
                f"The config's type_info {type_info!r} has no backend name; "
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


def _parse(text: str, fmt: str, origin: str) -> dict[str, Any]:
    try:
        data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"Cannot parse {origin} as {fmt.upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{origin} holds a {type(data).__name__}, not a mapping.")
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
            f"Unknown config file type {source.suffix!r} for {str(source)!r}: "
            "use .json, .yaml or .yml."
        )
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read config file {str(source)!r}: {exc.strerror or exc}"
        ) from None
    return _parse(text, fmt, f"config file {str(source)!r}")


def load_model(source: Mapping[str, Any] | str | os.PathLike[str]) -> ImageGenerationModel:
    """Build a model from a dict, a .json/.yaml/.yml path, or JSON/YAML text.

    The backend is resolved by its registry name, never by importing a module the config names.
    """
    from imgen.base import ImageGenerationModel

    if isinstance(source, Mapping):
        return ImageGenerationModel.from_dict(source)
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and Path(source).suffix.lower() in SUFFIXES
    ):
        return ImageGenerationModel.from_dict(read_config(source))
    text = source.strip()
    fmt = "json" if text.startswith("{") else "yaml"
    return ImageGenerationModel.from_dict(_parse(text, fmt, "the config text"))
