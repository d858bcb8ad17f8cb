"""Runtime parameters: fields that may be set after construction, from a CLI flag or a config.

`RuntimeParameter[T]` marks a field; `RuntimeParametersModelMixin` lists, describes and sets them.
Secret fields (`SecretStr` anywhere in the annotation) are tracked here too, because every
place that shows or stores field values must leave them out.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from functools import partial
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, SecretBytes, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from imgen.docstrings import parse_google_docstring
from imgen.errors import ECHO_LIMIT, InvalidInputError, brief_repr, brief_text, did_you_mean

__all__ = [
    "RuntimeParameter",
    "RuntimeParametersModelMixin",
    "as_parameter_mapping",
    "env_default_of",
    "env_field",
    "env_var_of",
    "is_secret_field",
    "secret_values",
    "validation_error",
]

_T = TypeVar("_T")


class _RuntimeParameterMarker:
    def __repr__(self) -> str:
        return "RuntimeParameter"


_RUNTIME_PARAMETER = _RuntimeParameterMarker()

RuntimeParameter = Annotated[_T | None, _RUNTIME_PARAMETER]
"""Marks a field as settable at runtime: `api_key: RuntimeParameter[SecretStr] = None`."""

_ENV_VAR_KEY = "env_var"
_ENV_DEFAULT_KEY = "env_default"
_MAX_PROBLEMS = 5  # a message names the first few bad fields, then counts the rest


def _read_env(var: str, secret: bool, default: Any) -> Any:
    value = os.environ.get(var) or default
    return SecretStr(value) if secret and isinstance(value, str) else value


def env_field(var: str, *, description: str, secret: bool = False, default: Any = None) -> Any:
    """A field whose default is read from the environment variable `var` at construction.

    Args:
        var: The environment variable, e.g. `OPENAI_API_KEY`.
        description: The field's description, shown in runtime parameter info and `imgen info`.
        secret: Wrap the value in `SecretStr`.
        default: The value when `var` is unset or empty, e.g. a service's public URL. Leave
            secrets without one.
    """
    extra: dict[str, Any] = {_ENV_VAR_KEY: var}
    if default is not None:
        extra[_ENV_DEFAULT_KEY] = default
    return Field(
        default_factory=partial(_read_env, var, secret, default),
        description=description,
        json_schema_extra=extra,
    )


def env_var_of(field: FieldInfo) -> str | None:
    """The environment variable a field's default comes from, if it was made by `env_field`."""
    extra = field.json_schema_extra
    if isinstance(extra, dict):
        var = extra.get(_ENV_VAR_KEY)
        return var if isinstance(var, str) else None
    return None


def env_default_of(field: FieldInfo) -> Any:
    """The value an `env_field` takes when its environment variable is unset (None if none)."""
    extra = field.json_schema_extra
    return extra.get(_ENV_DEFAULT_KEY) if isinstance(extra, dict) else None


def _mentions(annotation: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, kinds):
        return True
    return any(_mentions(arg, kinds) for arg in typing.get_args(annotation))


def is_secret_field(field: FieldInfo) -> bool:
    """Whether a field holds a secret (`SecretStr`/`SecretBytes` anywhere in its type)."""
    return _mentions(field.annotation, (SecretStr, SecretBytes))


def secret_values(model: BaseModel) -> list[str]:
    """The values of a model's secret fields that are set, as text: what to mask in messages."""
    values = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name, None) if is_secret_field(field) else None
        if isinstance(value, SecretStr | SecretBytes) and value.get_secret_value():
            secret = value.get_secret_value()
            values.append(secret.decode(errors="replace") if isinstance(secret, bytes) else secret)
    return values


def is_runtime_parameter(field: FieldInfo) -> bool:
    """Whether a field was declared as `RuntimeParameter[...]`."""
    return any(meta is _RUNTIME_PARAMETER for meta in field.metadata)


def validation_error(exc: ValidationError, model: type[BaseModel]) -> InvalidInputError:
    """Turn a pydantic error into one `InvalidInputError` that names each bad field.

    The offending value is shown, except for secret fields, whose values never appear.
    """
    secrets = {name for name, f in model.model_fields.items() if is_secret_field(f)}
    problems = []
    errors = exc.errors(include_url=False)
    for err in errors[:_MAX_PROBLEMS]:
        loc = brief_text(".".join(str(part) for part in err["loc"]))
        reason = brief_text(err["msg"].removeprefix("Value error, "), 2 * ECHO_LIMIT)
        if err["type"] == "extra_forbidden":
            known = [n for n in model.model_fields if n not in secrets] + sorted(secrets)
            problems.append(f"unknown field {loc!r}.{did_you_mean(loc, known)}")
        elif not err["loc"]:
            # A model-level check sees every field as input, secrets included: show no input.
            problems.append(reason)
        elif err["loc"][0] in secrets or isinstance(err.get("input"), Mapping):
            problems.append(f"{loc}: {reason}")
        else:
            problems.append(f"{loc}={brief_repr(err.get('input'))}: {reason}")
    if len(errors) > _MAX_PROBLEMS:
        problems.append(f"and {len(errors) - _MAX_PROBLEMS} more")
    return InvalidInputError(f"Invalid {model.__name__}: " + "; ".join(problems))


def as_parameter_mapping(values: Any) -> Mapping[str, Any]:
    """Check that runtime parameter values are a mapping with string keys, and return it.

    Raises:
        InvalidInputError: `values` is not a mapping, or a key is not a string.
    """
    if not isinstance(values, Mapping):
        raise InvalidInputError(
            "Runtime parameters must be a mapping of names to values, e.g. "
            f"{{'max_concurrency': 2}}; got {type(values).__name__}: {brief_repr(values)}."
        )
    for name in values:
        if not isinstance(name, str):
            raise InvalidInputError(
                f"Runtime parameter names must be strings, got {type(name).__name__}: "
                f"{brief_repr(name)}."
            )
    return values


class RuntimeParametersModelMixin(BaseModel):
    """Lists, describes and sets the fields marked `RuntimeParameter[...]`.

    Nested models that use this mixin contribute their own runtime parameters under their
    field name.
    """

    @classmethod
    def field_descriptions(cls) -> dict[str, str]:
        """Each field's description: `Field(description=...)`, else the class docstring's."""
        described: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            if issubclass(klass, BaseModel):
                described.update(parse_google_docstring(klass)["attributes"])
        for name, field in cls.model_fields.items():
            if field.description:
                described[name] = " ".join(field.description.split())
        return described

    def _runtime_fields(self) -> dict[str, FieldInfo]:
        return {
            name: field
            for name, field in type(self).model_fields.items()
            if is_runtime_parameter(field)
            or isinstance(getattr(self, name, None), RuntimeParametersModelMixin)
        }

    @property
    def runtime_parameters_names(self) -> dict[str, Any]:
        """Runtime parameter names mapped to whether they are optional (nested for sub-models)."""
        names: dict[str, Any] = {}
        for name, field in self._runtime_fields().items():
            value = getattr(self, name)
            if isinstance(value, RuntimeParametersModelMixin):
                names[name] = value.runtime_parameters_names
            else:
                names[name] = not field.is_required()
        return names

    def get_runtime_parameters_info(self) -> list[dict[str, Any]]:
        """Name, optional flag and description of each runtime parameter.

        Nested models appear as `{"name": ..., "runtime_parameters_info": [...]}`.
        """
        descriptions = self.field_descriptions()
        info: list[dict[str, Any]] = []
        for name, field in self._runtime_fields().items():
            value = getattr(self, name)
            if isinstance(value, RuntimeParametersModelMixin):
                info.append(
                    {"name": name, "runtime_parameters_info": value.get_runtime_parameters_info()}
                )
            else:
                entry = {
                    "name": name,
                    "optional": not field.is_required(),
                    "description": descriptions.get(name, ""),
                }
                env_var = env_var_of(field)
                if env_var:
                    entry["env_var"] = env_var
                info.append(entry)
        return info

    def set_runtime_parameters(self, runtime_parameters: Mapping[str, Any]) -> None:
        """Set runtime parameters by name; unknown names are an error with a did-you-mean.

        Args:
            runtime_parameters: Parameter names mapped to their new values. A nested model
                takes a mapping of its own parameters.

        Raises:
            InvalidInputError: A name is not a runtime parameter, or a value is invalid.
        """
        known = self.runtime_parameters_names
        for name in as_parameter_mapping(runtime_parameters):
            if name not in known:
                raise InvalidInputError(
                    f"Unknown runtime parameter {brief_repr(name)} for {type(self).__name__}."
                    f"{did_you_mean(name, known)} Known: {', '.join(sorted(known))}."
                )
        for name, value in runtime_parameters.items():
            current = getattr(self, name)
            if isinstance(current, RuntimeParametersModelMixin) and isinstance(value, Mapping):
                current.set_runtime_parameters(value)
                continue
            try:
                setattr(self, name, value)
                continue
            except ValidationError as exc:
                error = validation_error(exc, type(self))
            raise error  # outside the except block: no __context__ holding pydantic's error
