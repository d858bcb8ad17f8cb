"""The exception hierarchy: every error imgen raises on purpose is an `ImgenError`.

Messages name the bad value and the fix. They never carry a secret's value.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "BackendConflictError",
    "ConfigurationError",
    "GenerationError",
    "GenerationInterrupted",
    "ImgenError",
    "InvalidInputError",
    "InvalidModelSpecError",
    "MissingCredentialsError",
    "PluginLoadError",
    "RetryableError",
    "UnknownBackendError",
    "did_you_mean",
]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return a ` Did you mean 'x'?` suffix for `name`, or an empty string."""
    matches = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"


class ImgenError(Exception):
    """Base class of every error imgen raises on purpose."""


class InvalidInputError(ImgenError, ValueError):
    """Bad prompts, counts, generation kwargs, runtime parameters or field values."""


class ConfigurationError(ImgenError):
    """A model cannot be configured: an unreadable config file, a bad field, a missing key."""


class MissingCredentialsError(ConfigurationError):
    """A backend needs a secret: none was set on the model, in its environment, or stored."""

    def __init__(self, backend: str, field: str, env_var: str | None) -> None:
        self.backend = backend
        self.field = field
        self.env_var = env_var
        where = f"set the environment variable {env_var}, " if env_var else ""
        super().__init__(
            f"The {backend!r} backend needs an API key: {where}store it with "
            f"`imgen keys set {backend}`, or set the model field {field} "
            f"(in Python {field}=..., on the command line -O {field}=...)."
        )


class RetryableError(ImgenError):
    """A transient failure the async engine may retry, optionally after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GenerationError(ImgenError):
    """Some inputs of a batch failed; the others are kept.

    Attributes:
        results: The outputs aligned with the inputs, `None` where an input failed.
        errors: Input index mapped to the exception that made it fail.
    """

    def __init__(self, results: list[Any], errors: dict[int, BaseException]) -> None:
        self.results = results
        self.errors = errors
        first = min(errors)
        summary = f"{type(errors[first]).__name__}: {errors[first]}"
        super().__init__(
            f"{len(errors)} of {len(results)} inputs failed (first: input {first}, {summary}). "
            "The completed results are in `.results`, the failures in `.errors`."
        )


class UnknownBackendError(ImgenError, LookupError):
    """No installed plugin provides the requested backend name or alias."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        known = sorted(set(known))
        self.known = known
        installed = ", ".join(known) if known else "none"
        super().__init__(
            f"Unknown backend {name!r}.{did_you_mean(name, known)} "
            f"Installed backends: {installed}. "
            f"If it ships as a plugin, install it, e.g. `pip install imgen-{name}`."
        )


class InvalidModelSpecError(ImgenError, ValueError):
    """A model spec is not of the form `backend:model-id` or an alias."""


class BackendConflictError(ImgenError):
    """Two distributions claim the same backend name or alias.

    Args:
        name: The name claimed more than once.
        claimants: The distributions claiming it as a backend name.
        aliases: (distribution, spec) for each claim of it as an alias, the spec being the
            `backend:model-id` the alias stands for in that distribution.

    Attributes:
        claimants: Every distribution claiming it, sorted.
        kind: "backend name", "alias", or "backend name and alias" when one plugin's backend
            name is another's alias.
    """

    def __init__(
        self, name: str, claimants: Iterable[str], *, aliases: Iterable[tuple[str, str]] = ()
    ) -> None:
        as_backend, as_alias = sorted(set(claimants)), sorted(set(aliases))
        self.name = name
        self.claimants = sorted({*as_backend, *(dist for dist, _ in as_alias)})
        fix = "Uninstall one of them, or pick the plugins to load with IMGEN_PLUGINS=dist-a,dist-b."
        if not as_alias:
            self.kind = "backend name"
            super().__init__(
                f"Backend name {name!r} is claimed by more than one plugin: "
                f"{' and '.join(self.claimants)}. {fix}"
            )
            return
        roles = [f"{dist} (backend name)" for dist in as_backend]
        roles += [f"{dist} (alias for {spec})" for dist, spec in as_alias]
        self.kind = "backend name and alias" if as_backend else "alias"
        what, how = ("Name", ", as a backend name and as an alias") if as_backend else ("Alias", "")
        super().__init__(
            f"{what} {name!r} is claimed by more than one plugin{how}: {' and '.join(roles)}. "
            f"Name the model by its full spec (backend:model-id) instead. {fix}"
        )


class PluginLoadError(ImgenError):
    """A plugin distribution could not be loaded; every other plugin still works.

    Attributes:
        distribution: The distribution's name.
        version: The distribution's version.
        cause: The original exception.
    """

    def __init__(self, distribution: str, version: str, cause: BaseException) -> None:
        self.distribution = distribution
        self.version = version
        self.cause = cause
        super().__init__(
            f"Plugin {distribution} {version} failed to load: {type(cause).__name__}: {cause}"
        )
        self.__cause__ = cause


class GenerationInterrupted(ImgenError):
    """A generate call stopped early because the model's `interrupt()` was called."""
