"""What the conformance kit looks for in a backend's class, fields and outputs: pure functions,
each telling one thing (a credential name, a plain-text type, a base64 problem...).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import typing
from typing import Any

import imgen
from imgen.base import AsyncImageGenerationModel, ImageGenerationModel
from imgen.registry import ENTRY_POINT_GROUP, Registry
from imgen.runtime_parameters import is_secret_field

__all__ = [
    "CREDENTIAL_WORDS",
    "FORMAT_ALIASES",
    "admits_plain_text",
    "base64_problem",
    "env_var_hint",
    "info_for",
    "is_imgens",
    "names_a_credential",
    "own_packages",
    "reserved_private_names",
    "secret_fields",
    "secret_text",
    "type_text",
]

CREDENTIAL_WORDS = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "cookie",
        "credential",
        "key",
        "passphrase",
        "passwd",
        "password",
        "secret",
        "token",
    }
)
"""Words that make a field name say "credential" (`api_key`, `accessToken`, `client_secret`)."""

FORMAT_ALIASES = {"jpg": "jpeg"}

# Private names of imgen's base classes that a backend sets on purpose, to declare what it can do.
MEANT_TO_BE_SET = {"_abc_impl", "_num_generations_param_supported", "_prompt_seeds_supported"}


def is_imgens(klass: type) -> bool:
    return klass.__module__ == "imgen" or klass.__module__.startswith("imgen.")


@functools.cache
def reserved_private_names() -> frozenset[str]:
    """Private names the imgen classes under a backend use, less the hooks meant to be set."""
    names: set[str] = set()
    for klass in AsyncImageGenerationModel.__mro__:
        if is_imgens(klass):
            names.update(n for n in vars(klass) if n.startswith("_") and not n.startswith("__"))
    names.update(AsyncImageGenerationModel.__private_attributes__)
    return frozenset(names - MEANT_TO_BE_SET)


def base64_problem(text: Any) -> str | None:
    """Why `text` is not strict standard base64, or None when it is."""
    if not isinstance(text, str):
        return f"{type(text).__name__}, not a base64 string"
    if text.startswith("data:"):
        prefix = text.partition(",")[0]
        return f"starts with the data-URL prefix {prefix + ','!r}: return the bare base64"
    if re.search(r"\s", text):
        return "contains whitespace or line breaks"
    if len(text) % 4:
        return f"its length {len(text)} is not a multiple of 4: the padding is missing or wrong"
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        return f"is not valid base64 ({exc})"
    return None


def names_a_credential(name: str) -> bool:
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower().split("_")
    return any(word.removesuffix("s") in CREDENTIAL_WORDS for word in words)


def admits_plain_text(annotation: Any) -> bool:
    """Whether a field of this type can hold a plain `str` or `bytes` (not a secret type)."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return admits_plain_text(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return False
    if origin is not None:  # a union; a container of strings (headers, say) is not one
        return origin in (typing.Union, type(int | str)) and any(
            admits_plain_text(arg) for arg in typing.get_args(annotation)
        )
    return isinstance(annotation, type) and issubclass(annotation, str | bytes)


def type_text(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation).replace("typing.", "")


def env_var_hint(cls: type[ImageGenerationModel], name: str) -> str:
    prefix = re.sub(r"\W", "_", getattr(cls, "backend_name", cls.__name__)).upper()
    return f"{prefix}_{name.upper()}"


def secret_fields(model: ImageGenerationModel) -> list[str]:
    return [n for n, f in type(model).model_fields.items() if is_secret_field(f)]


def secret_text(value: Any) -> str:
    secret = value.get_secret_value() if hasattr(value, "get_secret_value") else None
    if isinstance(secret, bytes):
        return secret.decode(errors="replace")
    return secret or ""


def own_packages(distribution: str, cls: type[ImageGenerationModel]) -> set[str]:
    """The top-level packages of the plugin: its entry points' and its backend class's."""
    import importlib_metadata

    packages = {cls.__module__.partition(".")[0]}
    try:
        entry_points = importlib_metadata.distribution(distribution).entry_points
    except importlib_metadata.PackageNotFoundError:
        return packages
    for entry_point in entry_points.select(group=ENTRY_POINT_GROUP):
        packages.add(entry_point.value.partition(":")[0].partition(".")[0])
    return packages


def info_for(registry: Registry, cls: type[ImageGenerationModel]) -> imgen.BackendInfo:
    """What the installed plugins report for `cls`; an AssertionError saying why not found."""
    path = f"{cls.__module__}.{cls.__qualname__}"
    for info in registry.list_backends():
        if info.name != cls.backend_name:
            continue
        if info.class_path.endswith(cls.__qualname__):
            return info
        raise AssertionError(
            f"The installed backend {cls.backend_name!r} is {info.class_path}, not {path}: "
            "give the kit a model of the class the plugin registers."
        )
    raise AssertionError(
        f"No installed plugin provides the backend {cls.backend_name!r} ({path}): install the "
        "package whose imgen.plugins entry point registers it (pip install -e . while you "
        "work on it). The kit resolves the backend by name, as users do."
    )
