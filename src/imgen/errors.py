"""The exception hierarchy: every error imgen raises on purpose is an `ImgenError`.

Messages name the bad value and the fix. They never carry a secret's value.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, NoReturn

__all__ = [
    "BackendConflictError",
    "ConfigurationError",
    "GenerationError",
    "GenerationInterrupted",
    "ImgenError",
    "InvalidInputError",
    "InvalidModelSpecError",
    "InvalidOutputError",
    "MissingCredentialsError",
    "PluginLoadError",
    "RequestRefusedError",
    "RetryAfterTooLongError",
    "RetryableError",
    "UnexpectedResponseError",
    "UnknownBackendError",
    "brief_repr",
    "brief_text",
    "did_you_mean",
    "mask_secrets",
    "raise_unchained",
    "translate_refusals",
]

ECHO_LIMIT = 200
"""The most characters of a value that an error message shows."""

MASK = "***"

_PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,60}")

_abbreviated = reprlib.Repr()
_abbreviated.maxlevel = 3
_abbreviated.maxdict = _abbreviated.maxlist = _abbreviated.maxtuple = 8
_abbreviated.maxset = _abbreviated.maxfrozenset = _abbreviated.maxdeque = 8
_abbreviated.maxstring = _abbreviated.maxother = ECHO_LIMIT
_abbreviated.maxlong = 60


def brief_repr(value: Any, limit: int = ECHO_LIMIT) -> str:
    """The `repr` of a value for an error message, cut to at most `limit` characters.

    The work is bounded whatever the value: nested containers are abbreviated before they are
    joined, so a huge value (or a YAML alias bomb, which repeats one list exponentially) costs
    no more to describe than a small one.
    """
    return brief_text(_abbreviated.repr(value), limit)


def brief_text(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` cut to at most `limit` characters, for a message that quotes it as is."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return a ` Did you mean 'x'?` suffix for `name`, or an empty string."""
    if not isinstance(name, str) or len(name) > ECHO_LIMIT:
        return ""
    known = [c for c in candidates if isinstance(c, str)]
    matches = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"


def mask_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every occurrence of each (non-empty) secret replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def _rebuild(cls: type[ImgenError], args: tuple[Any, ...], state: dict[str, Any]) -> ImgenError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ImgenError(Exception):
    """Base class of every error imgen raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only arguments: pickle (multiprocessing, Ray) rebuilds the
        # error from its message and attributes instead of calling __init__ again.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class InvalidInputError(ImgenError, ValueError):
    """Bad prompts, counts, generation kwargs, runtime parameters or field values."""


class InvalidOutputError(ImgenError):
    """A backend returned output that breaks the output contract: the backend's fault.

    Not a `ValueError`: the caller's input was fine. The command line reports it with exit
    code 1, like any failure at run time.
    """


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


class RetryAfterTooLongError(ImgenError):
    """A service asked to wait longer before a retry than the model's `max_retry_after`.

    The attempts end there rather than sleeping for as long as the service says. The error
    that asked for the wait is the `__cause__`.

    Attributes:
        retry_after: The seconds the service asked for.
        max_retry_after: The longest wait the model honours.
    """

    def __init__(self, retry_after: float, max_retry_after: float, cause: BaseException) -> None:
        self.retry_after = retry_after
        self.max_retry_after = max_retry_after
        super().__init__(
            f"The service asked to wait {retry_after:g} s before a retry (Retry-After), more "
            f"than max_retry_after={max_retry_after:g} s, so no retry was made. It answered: "
            f"{type(cause).__name__}: {brief_text(str(cause), 2 * ECHO_LIMIT)}. Raise "
            "max_retry_after to wait that long."
        )


class RequestRefusedError(ImgenError):
    """A service answered a request with an error status: the base of backends' request errors.

    The message has every given secret masked, and the error keeps no chained exception: the
    SDK error it stands for may hold the request's credentials, or quote a server that echoed
    them. Raise it with `translate_refusals` (or `raise_unchained`), which makes sure that
    neither `__cause__` nor `__context__` points back at that SDK error.

    Args:
        message: What the service said, and what to do about it.
        status_code: The HTTP status.
        retry_after: Seconds the service asked to wait before a retry, when it said so.
        secrets: Values to mask in the message (API keys, tokens); none is kept.

    Attributes:
        status_code: The HTTP status, e.g. 400. The default `is_retryable` retries 408, 409,
            429 and 5xx.
        retry_after: Seconds the service asked to wait before a retry; the engine honours it
            up to `max_retry_after`.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        retry_after: float | None = None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        super().__init__(mask_secrets(message, secrets))
        self.status_code = status_code
        self.retry_after = retry_after


class UnexpectedResponseError(ImgenError):
    """A service answered with success, but not with what its API promises: an HTML page
    from a proxy, a cut-off JSON body, bytes that are no image.

    Like `RequestRefusedError`, the message has the given secrets masked.
    """

    def __init__(self, message: str, *, secrets: Iterable[str | None] = ()) -> None:
        super().__init__(mask_secrets(message, secrets))


def raise_unchained(error: BaseException) -> NoReturn:
    """Raise `error` with no chained exception: neither `__cause__` nor `__context__`.

    `raise error from None` only hides the exception being handled; it stays reachable as
    `error.__context__`. Use this where that exception may hold a secret.
    """
    try:
        raise error
    finally:
        error.__cause__ = None
        error.__context__ = None


class _RefusalTranslation(AbstractContextManager[None]):
    def __init__(
        self,
        kinds: type[BaseException] | tuple[type[BaseException], ...],
        convert: Callable[[Any], RequestRefusedError],
    ) -> None:
        self._kinds = kinds
        self._convert = convert

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, self._kinds):
            return
        error = self._convert(exc)
        # This frame ends up in the new error's traceback: let it hold nothing of the old one.
        del exc, traceback
        raise_unchained(error)


def translate_refusals(
    kinds: type[BaseException] | tuple[type[BaseException], ...],
    convert: Callable[[Any], RequestRefusedError],
) -> AbstractContextManager[None]:
    """Turn an SDK's error-status exceptions into `RequestRefusedError`s that chain nothing.

        with translate_refusals(sdk.APIStatusError, self._refused):
            response = await client.images.generate(...)

    Args:
        kinds: The SDK exception class(es) that mean "the service refused the request".
        convert: Builds the `RequestRefusedError` from one of them (masking the secrets).
    """
    return _RefusalTranslation(kinds, convert)


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
        summary = (
            f"{type(errors[first]).__name__}: {brief_text(str(errors[first]), 2 * ECHO_LIMIT)}"
        )
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
        hint = (
            f" If it ships as a plugin, install it, e.g. `pip install imgen-{name}`."
            if isinstance(name, str) and _PACKAGE_NAME.fullmatch(name)
            else ""
        )
        super().__init__(
            f"Unknown backend {brief_repr(name)}.{did_you_mean(name, known)} "
            f"Installed backends: {installed}.{hint}"
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
