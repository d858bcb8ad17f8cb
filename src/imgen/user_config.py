"""The user's settings (`config.json` in the user dir): the default model, logging on or off.

`IMGEN_MODEL` overrides the stored default model for one environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from imgen.errors import ConfigurationError, brief_repr
from imgen.user_dir import how_to_move, read_json_object, user_files, write_json_object

__all__ = [
    "MODEL_ENV_VAR",
    "DefaultModel",
    "default_model",
    "logging_enabled",
    "set_logging",
    "set_stored_default_model",
    "stored_default_model",
]

MODEL_ENV_VAR = "IMGEN_MODEL"
"""The environment variable that overrides the stored default model."""

_WHAT = "settings file"
_DEFAULT_MODEL_KEY = "default_model"
_LOGS_KEY = "logs"


@dataclass(frozen=True)
class DefaultModel:
    """The model used when a command names none.

    Attributes:
        model: A spec, an alias, or the absolute path of a saved model config.
        source: Where it came from: `IMGEN_MODEL`, or the settings file's path.
    """

    model: str
    source: str


# Each setting, with the type its value must have and how messages name that type.
_KINDS: dict[str, tuple[type, str]] = {
    _DEFAULT_MODEL_KEY: (str, "a model name"),
    _LOGS_KEY: (bool, "true or false"),
}


def _settings() -> dict[str, Any]:
    """The settings, each checked: a bad one is an error whichever setting a command needs."""
    path = user_files().config
    settings = read_json_object(path, _WHAT)
    for key, (kind, kind_name) in _KINDS.items():
        value = settings.get(key)
        if value is not None and not isinstance(value, kind):
            raise ConfigurationError(
                f"The imgen {_WHAT} {path} sets {key!r} to {brief_repr(value)}, which is not "
                f"{kind_name}. {how_to_move(path)}"
            )
    return settings


def _update(key: str, value: Any) -> None:
    settings = _settings()
    if value is None:
        settings.pop(key, None)
    else:
        settings[key] = value
    write_json_object(user_files().config, settings, _WHAT, private=False)


def stored_default_model() -> str | None:
    """The default model stored by `imgen models default MODEL`, if any.

    Raises:
        ConfigurationError: The settings file is corrupt (the message names it).
    """
    model: str | None = _settings().get(_DEFAULT_MODEL_KEY)
    return model or None


def set_stored_default_model(model: str | None) -> None:
    """Store the default model; None clears it.

    Raises:
        ConfigurationError: The settings file is corrupt or cannot be written.
    """
    _update(_DEFAULT_MODEL_KEY, model)


def default_model() -> DefaultModel | None:
    """The model to use when none is named: `IMGEN_MODEL`, else the stored default.

    Raises:
        ConfigurationError: The settings file is corrupt (the message names it).
    """
    from_env = os.environ.get(MODEL_ENV_VAR, "").strip()
    if from_env:
        return DefaultModel(from_env, MODEL_ENV_VAR)
    stored = stored_default_model()
    return DefaultModel(stored, str(user_files().config)) if stored else None


def logging_enabled() -> bool:
    """Whether generations are logged (on unless `imgen logs off` turned it off).

    Raises:
        ConfigurationError: The settings file is corrupt (the message names it).
    """
    return _settings().get(_LOGS_KEY) is not False


def set_logging(enabled: bool) -> None:
    """Turn logging on or off for every later command.

    Raises:
        ConfigurationError: The settings file is corrupt or cannot be written.
    """
    _update(_LOGS_KEY, None if enabled else False)
