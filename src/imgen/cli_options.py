"""What the `imgen` commands share: KEY=VALUE options, building the model, reporting errors.

`imgen generate` and `imgen batch` take the same MODEL argument and `-p`/`-O` options, and report
failures the same way: one line on stderr, exit code 2 for the user's mistake (a bad option,
an unknown backend, a missing API key, an unreadable config), 3 for a backend whose plugin is
broken or in conflict with another, 1 for a failure at run time, and 128 + the signal's number
when Ctrl-C (130) or SIGTERM (143) stopped the command. The traceback shows only with `--debug`
(or IMGEN_DEBUG=1), and known secrets are masked.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

import imgen
from imgen import local_paths
from imgen.command_log import current_log
from imgen.errors import (
    BackendConflictError,
    ConfigurationError,
    GenerationError,
    ImgenError,
    InvalidInputError,
    InvalidModelSpecError,
    PluginLoadError,
    UnknownBackendError,
    brief_repr,
    mask_secrets,
)
from imgen.runtime_parameters import secret_values
from imgen.serialization import SUFFIXES, read_config
from imgen.signals import exit_code, signal_name, signal_of, stop_on_signals
from imgen.user_config import MODEL_ENV_VAR

if TYPE_CHECKING:
    from imgen.base import ImageGenerationModel

__all__ = [
    "FIELDS_OPTION",
    "GENERATION_KWARGS_OPTION",
    "NUM_GENERATIONS_OPTION",
    "ImgenGroup",
    "KeyValue",
    "PluginProblem",
    "UserError",
    "build_model",
    "error_line",
    "is_config_path",
    "note_default_model",
    "parse_value",
    "set_debug",
]

# Errors a user fixes by changing the command line or the environment: exit code 2.
_USER_ERRORS = (InvalidInputError, InvalidModelSpecError, ConfigurationError, UnknownBackendError)
_DEBUG_KEY = "imgen.debug"
_DEFAULT_SOURCE_KEY = "imgen.default_model_source"
_SECRETS_KEY = "imgen.secrets"


class UserError(click.ClickException):
    """A mistake in the command line or the environment: one line on stderr, exit code 2."""

    exit_code = 2


class PluginProblem(click.ClickException):
    """The backend asked for is broken or claimed by two plugins: exit code 3.

    The installation needs fixing (reinstall, uninstall or IMGEN_PLUGINS), not the command.
    """

    exit_code = 3


def parse_value(text: str) -> Any:
    """A KEY=VALUE value: JSON when it parses (`42`, `true`, `[1, 2]`), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class KeyValue(click.ParamType):  # type: ignore[type-arg]  # generic since click 8.2 only
    """A `KEY=VALUE` option value, converted to `(key, parsed value)`."""

    name = "KEY=VALUE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, Any]:
        """Split on the first `=` and parse the value with `parse_value`.

        Raises:
            UserError: There is no `=`, or nothing before it.
        """
        if isinstance(value, tuple):  # a default, already converted
            return value
        key, equals, raw = str(value).partition("=")
        if not equals or not key.strip():
            option = param.opts[0] if param is not None and param.opts else "option"
            metavar = (param.metavar if param is not None else None) or self.name
            raise UserError(f"{option} expects {metavar}, got {brief_repr(value)}.")
        return key.strip(), parse_value(raw)


NUM_GENERATIONS_OPTION = click.option(
    "-n",
    "--num-generations",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Images per prompt.",
)
"""The `-n N` option: images per prompt."""

GENERATION_KWARGS_OPTION = click.option(
    "-p",
    "--param",
    "generation_kwargs",
    type=KeyValue(),
    multiple=True,
    metavar="KEY=VALUE",
    help="A generation kwarg (see `imgen info BACKEND`); VALUE is JSON or text. Repeatable.",
)
"""The `-p KEY=VALUE` option: generation kwargs, as a tuple of (key, value) pairs."""

FIELDS_OPTION = click.option(
    "-O",
    "--field",
    "fields",
    type=KeyValue(),
    multiple=True,
    metavar="FIELD=VALUE",
    help="A model field (see `imgen info BACKEND`); VALUE is JSON or text. Repeatable.",
)
"""The `-O FIELD=VALUE` option: model fields, as a tuple of (field, value) pairs."""


def is_config_path(model: str) -> bool:
    """Whether MODEL names a saved model config (.json, .yaml, .yml) rather than a spec."""
    path = Path(model)
    # `backend:org/name.json` is a spec unless such a file exists.
    return path.suffix.lower() in SUFFIXES and (":" not in model or local_paths.exists(path))


def build_model(
    model: str,
    fields: Mapping[str, Any] | None = None,
    generation_kwargs: Mapping[str, Any] | None = None,
) -> ImageGenerationModel:
    """The model MODEL names, with `-O` fields set and `-p` generation kwargs validated.

    Nothing is loaded yet, so every mistake surfaces before any work starts. The model's
    secrets are remembered so that error messages never show them.

    Args:
        model: A spec (`backend:model-id`), an alias, or a .json/.yaml/.yml config file
            saved with `model.save()`.
        fields: Model fields; they override a config file's.
        generation_kwargs: Generation kwargs; they override a config file's.

    Raises:
        UnknownBackendError: The backend is not installed (with a did-you-mean).
        InvalidInputError: A bad spec, field or generation kwarg, named in the message.
        ConfigurationError: The config file is missing, unreadable or malformed.
    """
    if is_config_path(model):
        built = imgen.load_model({**read_config(model), **(fields or {})})
    else:
        built = imgen.get_model(model, **(fields or {}))
    if generation_kwargs:
        built.set_runtime_parameters({"generation_kwargs": dict(generation_kwargs)})
    _remember_secrets(built)
    current_log().model_built(built)
    return built


def _remember_secrets(model: ImageGenerationModel) -> None:
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta.setdefault(_SECRETS_KEY, set()).update(secret_values(model))


def _masked(text: str, ctx: click.Context) -> str:
    return mask_secrets(text, ctx.meta.get(_SECRETS_KEY, ()))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, GenerationError):
        # The core's message points at Python attributes; on the command line, name the prompt.
        first = min(exc.errors)
        cause = exc.errors[first]
        return (
            f"{len(exc.errors)} of {len(exc.results)} prompts failed; prompt {first + 1}: "
            f"{type(cause).__name__}: {cause}"
        )
    if isinstance(exc, ImgenError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def note_default_model(source: str) -> None:
    """Note that the command runs the default model, and where it came from.

    Args:
        source: `IMGEN_MODEL`, or the path of the settings file that stores it.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_DEFAULT_SOURCE_KEY] = source


def _default_model_hint(exc: BaseException, ctx: click.Context) -> str:
    """Where the model that does not resolve came from, when the command line did not name it."""
    source = ctx.meta.get(_DEFAULT_SOURCE_KEY)
    if source is None or not isinstance(exc, UnknownBackendError | InvalidModelSpecError):
        return ""
    if source == MODEL_ENV_VAR:
        return f" (The model comes from {MODEL_ENV_VAR}: fix or unset it.)"
    return (
        f" (The model is the default stored in {source}: change it with "
        "`imgen models default MODEL`.)"
    )


def error_line(exc: BaseException, ctx: click.Context) -> str:
    """The one line a command prints for `exc`, known secrets masked (without `Error: `)."""
    if isinstance(exc, click.ClickException):
        return _masked(exc.format_message(), ctx)
    return " ".join(_masked(_describe(exc) + _default_model_hint(exc, ctx), ctx).split())


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


class ImgenGroup(click.Group):
    """A click group that reports errors in one line and imports some commands on first use.

    Args:
        lazy_commands: Command name mapped to `module:attribute` of a click command. It is
            imported only when that command runs or the help lists it, and only listed when
            the module is installed.
    """

    def __init__(
        self, *args: Any, lazy_commands: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The eager commands, plus the lazy ones whose module is installed."""
        lazy = [
            name
            for name, target in self.lazy_commands.items()
            if _module_exists(target.partition(":")[0])
        ]
        return sorted({*super().list_commands(ctx), *lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command `cmd_name`, importing a lazy one now; None if it is not installed."""
        command = super().get_command(ctx, cmd_name)
        target = self.lazy_commands.get(cmd_name)
        if command is not None or target is None:
            return command
        module_name, _, attribute = target.partition(":")
        if not _module_exists(module_name):
            return None
        imported: click.Command = getattr(importlib.import_module(module_name), attribute)
        self.add_command(imported, cmd_name)
        return imported

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; turn any exception into one line on stderr and an exit code.

        Ctrl-C, SIGTERM and SIGHUP stop a command with one line and exit code 128 + the
        signal's number (130 for Ctrl-C, 143 for SIGTERM).
        """
        try:
            with stop_on_signals():
                return super().invoke(ctx)
        except click.ClickException as exc:
            masked = _masked(exc.message, ctx)  # e.g. failures recorded by on_error="record"
            if masked == exc.message:
                raise
            replacement = click.ClickException(masked)
            replacement.exit_code = exc.exit_code  # type: ignore[misc]  # as the original's
            raise replacement from None
        except (click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt as interrupt:
            name = signal_name(signal_of(interrupt))
            click.echo(f"Interrupted by {name}{' (Ctrl-C)' if name == 'SIGINT' else ''}.", err=True)
            raise click.exceptions.Exit(exit_code(interrupt)) from None
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
                raise  # click itself exits quietly when the reader of stdout went away
            if ctx.meta.get(_DEBUG_KEY):
                click.echo(_masked("".join(traceback.format_exception(exc)), ctx), err=True)
            message = error_line(exc, ctx)
            if isinstance(exc, _USER_ERRORS):
                raise UserError(message) from exc
            hint = "" if ctx.meta.get(_DEBUG_KEY) else " (rerun with --debug for the traceback)"
            if isinstance(exc, BackendConflictError):
                raise PluginProblem(message) from exc
            if isinstance(exc, PluginLoadError):
                raise PluginProblem(message + hint) from exc
            raise click.ClickException(message + hint) from exc


def set_debug(ctx: click.Context, debug: bool) -> None:
    """Show tracebacks of errors for the rest of this invocation."""
    ctx.meta[_DEBUG_KEY] = debug
