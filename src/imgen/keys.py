"""Stored API keys: one per backend, in `keys.json` of the user dir, readable by its owner only.

`imgen keys set openai` stores a key; a model of that backend whose secret field is still
empty after its environment variable was read takes it from there. The key then behaves
exactly like one from the environment: it is left out of dumps, reprs and messages, and a
backend that treats ambient credentials with care (hf-inference sends them to Hugging Face
hosts only) treats a stored key the same way.
"""

from __future__ import annotations

import os
import stat
import warnings
from typing import TYPE_CHECKING

from imgen.errors import ConfigurationError, InvalidInputError, brief_repr, did_you_mean
from imgen.runtime_parameters import is_secret_field
from imgen.user_dir import (
    UserDirWarning,
    how_to_move,
    read_json_object,
    user_files,
    write_json_object,
)
from imgen.validation import lone_surrogate

if TYPE_CHECKING:
    from imgen.base import ImageGenerationModel

__all__ = [
    "fill_stored_key",
    "key_names",
    "remove_key",
    "secret_field_of",
    "set_key",
    "stored_key",
]

_WHAT = "keys file"


def _read_keys() -> dict[str, str]:
    path = user_files().keys
    keys = read_json_object(path, _WHAT)
    if keys and os.name == "posix":  # Windows has no such mode bits
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.warn(
                f"The imgen keys file {path} can be read by other users (mode {mode:04o}): "
                f"run `chmod 600 {path}`.",
                UserDirWarning,
                stacklevel=3,
            )
    bad = sorted(name for name, value in keys.items() if not isinstance(value, str))
    if bad:
        raise ConfigurationError(
            f"The imgen {_WHAT} {path} holds a value that is not a string for {bad[0]!r}. "
            f"Store it again with `imgen keys set {bad[0]}`, or: {how_to_move(path)}"
        )
    return keys


def _write_keys(keys: dict[str, str]) -> None:
    write_json_object(user_files().keys, keys, _WHAT, private=True)


def stored_key(name: str) -> str | None:
    """The key stored under `name` (a backend name), if any.

    Raises:
        ConfigurationError: The keys file is corrupt (the message names it, never a key).
    """
    return _read_keys().get(name) or None


def key_names() -> list[str]:
    """The names of the stored keys, sorted; never their values."""
    return sorted(_read_keys())


def set_key(name: str, value: str) -> None:
    """Store `value` as the key of the backend `name`, replacing any key stored before.

    The keys file is rewritten atomically, created with mode 0600.

    Raises:
        InvalidInputError: `name` is not a non-empty string, or `value` is not a non-empty
            string of valid Unicode text (the message never quotes it).
        ConfigurationError: The keys file is corrupt or cannot be written.
    """
    _check_name(name)
    if not isinstance(value, str) or not value:
        what = "an empty string" if isinstance(value, str) else type(value).__name__
        raise InvalidInputError(f"A key must be a non-empty string, got {what}.")
    position = lone_surrogate(value)
    if position is not None:
        # Bytes that are not UTF-8 (read from a terminal or a pipe) come in as surrogates.
        raise InvalidInputError(
            f"The key for {name!r} holds a lone surrogate at character {position}, which is "
            "not valid Unicode text: was it read from bytes that are not UTF-8?"
        )
    keys = _read_keys()
    keys[name] = value
    _write_keys(keys)


def remove_key(name: str) -> None:
    """Forget the key stored under `name`.

    Raises:
        ConfigurationError: No key is stored under `name` (with a did-you-mean), or the keys
            file is corrupt or cannot be written.
        InvalidInputError: `name` is not a non-empty string.
    """
    _check_name(name)
    keys = _read_keys()
    if name not in keys:
        stored = ", ".join(sorted(keys)) or "none"
        raise ConfigurationError(
            f"No key is stored for {brief_repr(name)}.{did_you_mean(name, keys)} "
            f"Stored keys: {stored}."
        )
    del keys[name]
    _write_keys(keys)


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name.strip() or lone_surrogate(name) is not None:
        raise InvalidInputError(
            "A key's name must be a backend name such as 'openai', got "
            f"{type(name).__name__}: {brief_repr(name)}."
        )


def secret_field_of(cls: type[ImageGenerationModel]) -> str | None:
    """The field a stored key fills: the backend's first secret field, if it has one."""
    return next((n for n, f in cls.model_fields.items() if is_secret_field(f)), None)


def fill_stored_key(model: ImageGenerationModel) -> None:
    """Give the model its backend's stored key, if its secret field is still empty.

    A value passed to the constructor, or read from the field's environment variable, comes
    first. The field is filled without marking it as set, so a backend can still tell an
    ambient key from one its caller gave on purpose.

    Raises:
        ConfigurationError: The keys file is corrupt (only read when a key is needed).
    """
    cls = type(model)
    field = secret_field_of(cls)
    backend = getattr(cls, "backend_name", None)
    if field is None or backend is None or getattr(model, field) is not None:
        return
    if field in model.model_fields_set:  # set to None on purpose: no key at all
        return
    key = stored_key(backend)
    if key is None:
        return
    setattr(model, field, key)  # validated like any value: str becomes SecretStr
    model.model_fields_set.discard(field)
