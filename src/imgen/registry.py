"""Backend discovery and resolution by name.

Plugins announce themselves under the entry-point group `imgen.plugins`. Discovery runs once,
on first use, and isolates faults: a plugin that fails is recorded and skipped, and every other
backend keeps working. Two plugins claiming one name make that name unusable with an error
naming both; the last one never silently wins.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pluggy

from imgen import hookspecs
from imgen.base import AsyncImageGenerationModel, ImageGenerationModel
from imgen.errors import (
    BackendConflictError,
    InvalidModelSpecError,
    PluginLoadError,
    UnknownBackendError,
    brief_repr,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "BackendInfo",
    "Registry",
    "default_registry",
    "get_backend",
    "get_model",
    "list_backends",
    "register_backend",
    "unregister_backend",
]

ENTRY_POINT_GROUP = "imgen.plugins"
PLUGINS_ENV_VAR = "IMGEN_PLUGINS"
BUILTIN_DISTRIBUTION = "imgen"
BUILTIN_MODULE = "imgen.testing.plugin"
IN_PROCESS = "<in-process>"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class BackendInfo:
    """What `list_backends()` reports for each backend, broken ones included.

    Attributes:
        name: The backend name used in specs (`name:model-id`).
        class_path: `module:QualName` of the class (the entry point's value when broken).
        distribution: The plugin distribution that provides it.
        version: That distribution's version.
        aliases: Alias mapped to the model id it stands for.
        is_async: Whether the class is an `AsyncImageGenerationModel` (None when broken).
        status: "ok", "broken" (the plugin failed to load) or "conflict".
        error: Why it is broken or in conflict.
    """

    name: str
    class_path: str
    distribution: str
    version: str
    aliases: Mapping[str, str] = field(default_factory=dict)
    is_async: bool | None = None
    status: Literal["ok", "broken", "conflict"] = "ok"
    error: str | None = None


@dataclass(frozen=True)
class _Claim:
    name: str
    cls: type[ImageGenerationModel]
    distribution: str
    version: str
    aliases: Mapping[str, str]


class Registry:
    """Backends by name: discovered from entry points, or registered in-process.

    Args:
        path: Where to look for distributions; `sys.path` when None.
        group: The entry-point group.
    """

    def __init__(self, path: Sequence[str] | None = None, group: str = ENTRY_POINT_GROUP) -> None:
        self._path = list(path) if path is not None else None
        self._group = group
        self._lock = threading.RLock()
        self._discovered = False
        self._claims: dict[str, list[_Claim]] = {}
        self._alias_claims: dict[str, list[tuple[_Claim, str]]] = {}
        self._broken: dict[str, PluginLoadError] = {}
        self._broken_values: dict[str, str] = {}
        self._plugins = pluggy.PluginManager(hookspecs.PROJECT)
        self._plugins.add_hookspecs(hookspecs)

    # -- discovery ---------------------------------------------------------------------

    def _ensure_discovered(self) -> None:
        if self._discovered:
            return
        with self._lock:
            if not self._discovered:
                self._discover()
                self._discovered = True

    def _discover(self) -> None:
        import importlib_metadata

        selected = _selected_distributions()
        found: set[str] = set()
        seen: set[str] = set()
        kwargs = {"path": self._path} if self._path is not None else {}
        for dist in importlib_metadata.distributions(**kwargs):
            entry_points = dist.entry_points.select(group=self._group)
            if not entry_points:
                continue
            name = dist.metadata["Name"] or "unknown"
            key = _normalize(name)
            if key in seen:  # a second copy further down the path is shadowed, as in imports
                continue
            seen.add(key)
            found.add(key)
            if selected is not None and key not in selected and key != BUILTIN_DISTRIBUTION:
                continue
            for entry_point in entry_points:
                self._load_entry_point(
                    entry_point.name, entry_point.value, entry_point.load, name, dist.version
                )
        if BUILTIN_DISTRIBUTION not in seen:  # running from a source tree, not installed
            self._load_entry_point(
                "fake",
                BUILTIN_MODULE,
                lambda: importlib.import_module(BUILTIN_MODULE),
                BUILTIN_DISTRIBUTION,
                _own_version(),
            )
        for missing in sorted((selected or set()) - found):
            warnings.warn(
                f"{PLUGINS_ENV_VAR} names {missing!r}, but no such plugin distribution is "
                "installed.",
                stacklevel=4,
            )

    def _load_entry_point(
        self, ep_name: str, value: str, load: Callable[[], Any], dist: str, version: str
    ) -> None:
        plugin_name = f"{dist}:{ep_name}"
        try:
            plugin = load()
            self._plugins.register(plugin, name=plugin_name)
            try:
                self._plugins.check_pending()  # a misspelled hook name fails here
                claims = self._call_hook(plugin_name, dist, version)
            except BaseException:
                self._plugins.unregister(name=plugin_name)
                raise
        except Exception as exc:
            self._broken[ep_name] = PluginLoadError(dist, version, exc)
            self._broken_values[ep_name] = value
            return
        for backend_name, claim in claims:
            self._add(backend_name, claim)

    def _call_hook(self, plugin_name: str, dist: str, version: str) -> list[tuple[str, _Claim]]:
        staged: list[tuple[str, _Claim]] = []

        def register(
            cls: Any, *, name: str | None = None, aliases: Mapping[str, str] | None = None
        ) -> None:
            staged.append(_make_claim(cls, name, aliases, dist, version))

        # Called one plugin at a time, so a failure is charged to the plugin that raised it.
        for impl in self._plugins.hook.register_backends.get_hookimpls():
            if impl.plugin_name == plugin_name:
                impl.function(register=register)
        return staged

    def _add(self, name: str, claim: _Claim) -> None:
        claims = self._claims.setdefault(name, [])
        if not any(c.distribution == claim.distribution and c.cls is claim.cls for c in claims):
            claims.append(claim)
        for alias, model_id in claim.aliases.items():
            self._alias_claims.setdefault(alias, []).append((claim, model_id))

    # -- resolution --------------------------------------------------------------------

    def _claimants(self, name: str) -> list[str]:
        dists = [c.distribution for c in self._claims.get(name, [])]
        dists += [c.distribution for c, _ in self._alias_claims.get(name, [])]
        return sorted(set(dists))

    def _conflict(self, name: str, *newcomers: tuple[_Claim, str | None]) -> BackendConflictError:
        """The error for `name`, claimed by the registered claims plus `newcomers`.

        Each newcomer is a claim and, when it claims `name` as an alias, the alias's model id.
        """
        claims: list[tuple[_Claim, str | None]] = [(c, None) for c in self._claims.get(name, [])]
        claims += [*self._alias_claims.get(name, []), *newcomers]
        return BackendConflictError(
            name,
            [c.distribution for c, model_id in claims if model_id is None],
            aliases=[(c.distribution, f"{c.name}:{m}") for c, m in claims if m is not None],
        )

    def _known_names(self) -> list[str]:
        return sorted({*self._claims, *self._alias_claims, *self._broken})

    def _resolve(self, name: str) -> tuple[type[ImageGenerationModel], str | None]:
        """The class for a backend name or alias, and the alias's model id."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidModelSpecError(
                "A backend name must be a non-empty string like 'openai' (or an alias like "
                f"'dall-e-3'), got {type(name).__name__}: {brief_repr(name)}."
            )
        self._ensure_discovered()
        if len(self._claimants(name)) > 1:
            raise self._conflict(name)
        if name in self._claims:
            return self._claims[name][0].cls, None
        if name in self._alias_claims:
            claim, model_id = self._alias_claims[name][0]
            return claim.cls, model_id
        if name in self._broken:
            raise self._broken[name]
        raise UnknownBackendError(name, self._known_names())

    def get_backend(self, name: str) -> type[ImageGenerationModel]:
        """The backend class registered under `name` (a backend name or an alias).

        Raises:
            UnknownBackendError: No plugin provides it (with did-you-mean suggestions).
            BackendConflictError: Two distributions claim it.
            PluginLoadError: Only a plugin that failed to load provides it.
        """
        return self._resolve(name)[0]

    def get_model(self, spec: str, **fields: Any) -> ImageGenerationModel:
        """Build a model from `backend:model-id` or an alias; `fields` set its other fields.

        The spec is split on the first `:` only, so model ids may hold `/` and `:`.

        Raises:
            InvalidModelSpecError: The spec is malformed, or sets the model id twice.
            UnknownBackendError: The backend is not installed.
        """
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidModelSpecError(
                "A model spec must be a non-empty string like 'openai:gpt-image-1', got "
                f"{type(spec).__name__}: {brief_repr(spec)}."
            )
        backend, colon, model_id = spec.strip().partition(":")
        if colon and not (backend and model_id):
            raise InvalidModelSpecError(
                f"Malformed model spec {brief_repr(spec)}: expected 'backend:model-id', e.g. "
                "'openai:gpt-image-1', or an alias such as 'dall-e-3'."
            )
        cls, alias_model = self._resolve(backend)
        model_id = model_id or alias_model or ""
        if model_id:
            if cls.model_field in fields:
                raise InvalidModelSpecError(
                    f"The spec {brief_repr(spec)} already names the model; drop the "
                    f"{cls.model_field}={brief_repr(fields[cls.model_field])} argument."
                )
            fields = {cls.model_field: model_id, **fields}
        return cls(**fields)

    def list_backends(self) -> list[BackendInfo]:
        """Every backend, including broken plugins and names in conflict, sorted by name."""
        self._ensure_discovered()
        infos: list[BackendInfo] = []
        for name, claims in self._claims.items():
            conflict = self._conflict(name) if len(self._claimants(name)) > 1 else None
            for claim in claims:
                infos.append(
                    BackendInfo(
                        name=name,
                        class_path=f"{claim.cls.__module__}:{claim.cls.__qualname__}",
                        distribution=claim.distribution,
                        version=claim.version,
                        aliases=dict(claim.aliases),
                        is_async=issubclass(claim.cls, AsyncImageGenerationModel),
                        status="conflict" if conflict else "ok",
                        error=str(conflict) if conflict else None,
                    )
                )
        for name, error in self._broken.items():
            infos.append(
                BackendInfo(
                    name=name,
                    class_path=self._broken_values[name],
                    distribution=error.distribution,
                    version=error.version,
                    status="broken",
                    error=f"{type(error.cause).__name__}: {error.cause}",
                )
            )
        return sorted(infos, key=lambda info: (info.name, info.distribution))

    # -- in-process registration -------------------------------------------------------

    def register_backend(
        self,
        cls: type[ImageGenerationModel],
        *,
        name: str | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        """Register a backend class in this process (notebooks, tests).

        Raises:
            BackendConflictError: The name or an alias is taken already.
            PluginLoadError: `cls` is not an `ImageGenerationModel` subclass or has no name.
        """
        self._ensure_discovered()
        try:
            backend_name, claim = _make_claim(cls, name, aliases, IN_PROCESS, "")
        except Exception as exc:
            raise PluginLoadError(IN_PROCESS, "", exc) from exc
        with self._lock:
            for taken in (backend_name, *claim.aliases):
                if self._claimants(taken):
                    raise self._conflict(taken, (claim, claim.aliases.get(taken)))
            self._add(backend_name, claim)

    def unregister_backend(self, name: str) -> None:
        """Undo `register_backend`: remove the in-process backend `name` and its aliases."""
        if not isinstance(name, str):
            raise InvalidModelSpecError(
                f"A backend name must be a string, got {type(name).__name__}: {brief_repr(name)}."
            )
        with self._lock:
            claims = self._claims.get(name, [])
            mine = [c for c in claims if c.distribution == IN_PROCESS]
            if not mine:
                raise UnknownBackendError(name, self._known_names())
            self._claims[name] = [c for c in claims if c.distribution != IN_PROCESS]
            if not self._claims[name]:
                del self._claims[name]
            for alias in list(self._alias_claims):
                kept = [(c, m) for c, m in self._alias_claims[alias] if c not in mine]
                if kept:
                    self._alias_claims[alias] = kept
                else:
                    del self._alias_claims[alias]


def _make_claim(
    cls: Any,
    name: str | None,
    aliases: Mapping[str, str] | None,
    dist: str,
    version: str,
) -> tuple[str, _Claim]:
    if not (isinstance(cls, type) and issubclass(cls, ImageGenerationModel)):
        raise TypeError(f"{brief_repr(cls)} is not an ImageGenerationModel subclass")
    backend_name = name or getattr(cls, "backend_name", None)
    if not isinstance(backend_name, str) or not backend_name:
        raise TypeError(f"{cls.__qualname__} has no backend_name and no name was given")
    if ":" in backend_name:
        raise TypeError(f"backend name {brief_repr(backend_name)} must not contain ':'")
    if aliases is not None and not (
        isinstance(aliases, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in aliases.items())
    ):
        raise TypeError(f"aliases must map alias names to model ids, got {brief_repr(aliases)}")
    if not hasattr(cls, "backend_name"):  # lets dump() name it for in-process classes
        cls.backend_name = backend_name
    return backend_name, _Claim(backend_name, cls, dist, version, dict(aliases or {}))


def _selected_distributions() -> set[str] | None:
    raw = os.environ.get(PLUGINS_ENV_VAR)
    if raw is None:
        return None
    return {_normalize(part.strip()) for part in raw.split(",") if part.strip()}


def _own_version() -> str:
    from imgen import __version__

    return __version__


_default_registry = Registry()


def default_registry() -> Registry:
    """The process-wide registry that the module-level functions use."""
    return _default_registry


def get_backend(name: str) -> type[ImageGenerationModel]:
    """The backend class for a backend name or alias (see `Registry.get_backend`)."""
    return _default_registry.get_backend(name)


def get_model(spec: str, **fields: Any) -> ImageGenerationModel:
    """A model from `backend:model-id` or an alias (see `Registry.get_model`)."""
    return _default_registry.get_model(spec, **fields)


def list_backends() -> list[BackendInfo]:
    """Every installed backend, broken and conflicting ones included."""
    return _default_registry.list_backends()


def register_backend(
    cls: type[ImageGenerationModel],
    *,
    name: str | None = None,
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Register a backend class in this process (see `Registry.register_backend`)."""
    _default_registry.register_backend(cls, name=name, aliases=aliases)


def unregister_backend(name: str) -> None:
    """Remove a backend registered with `register_backend`."""
    _default_registry.unregister_backend(name)
