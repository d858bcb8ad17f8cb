"""The everyday commands around the user dir: `imgen keys`, `imgen paths`.

Also how `imgen generate` and `imgen batch` pick their model when the command line names none.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

import imgen
from imgen import local_paths
from imgen.cli_options import UserError, is_config_path, note_default_model
from imgen.command_log import current_log
from imgen.errors import (
    BackendConflictError,
    PluginLoadError,
    UnknownBackendError,
    brief_repr,
    did_you_mean,
    raise_unchained,
)
from imgen.keys import key_names, remove_key, secret_field_of, set_key
from imgen.runtime_parameters import env_var_of
from imgen.user_config import (
    MODEL_ENV_VAR,
    default_model,
)
from imgen.user_dir import UserDirWarning, user_files

__all__ = [
    "HOW_TO_SET_DEFAULT",
    "choose_batch_model",
    "choose_generate_model",
    "keys",
    "paths",
    "plain_warnings",
]

HOW_TO_SET_DEFAULT = f"set one with `imgen models default MODEL`, or set {MODEL_ENV_VAR}"


@contextmanager
def plain_warnings() -> Iterator[None]:
    """While the command runs, show warnings about the user dir as `Warning: ...` on stderr."""
    with warnings.catch_warnings():
        shown_before = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: object = None,
            line: str | None = None,
        ) -> None:
            if issubclass(category, UserDirWarning):
                click.echo(f"Warning: {message}", err=True)
            else:
                shown_before(message, category, filename, lineno, file, line)  # type: ignore[arg-type]

        warnings.showwarning = show
        yield


# -- choosing the model ----------------------------------------------------------------------


def _names_a_model(word: str) -> bool:
    """Whether a word reads as MODEL rather than as a prompt.

    A spec (`backend:model-id`), a saved model config, an installed backend or alias name, or
    a word so close to one that it is more likely a typo (building the model then says "did
    you mean"); never text with spaces.
    """
    if not word or any(char.isspace() for char in word):
        return False
    if ":" in word or is_config_path(word):
        return True
    try:
        imgen.get_backend(word)
    except UnknownBackendError as unknown:
        return bool(did_you_mean(word, unknown.known))
    except (PluginLoadError, BackendConflictError):
        pass  # a broken name is still a name: building the model reports it
    return True


def _surely_a_model(word: str, *, bare_names: bool) -> bool:
    """Whether a lone word can only be MODEL: a spec of an installed backend, a config file,
    or (with `bare_names`) an installed backend or alias name.

    Such a word with no PROMPT after it is a forgotten prompt, not an image to draw of it.
    """
    if not word or any(char.isspace() for char in word):
        return False
    if is_config_path(word):
        return local_paths.is_file(word)
    backend, colon, model_id = word.partition(":")
    if colon and not model_id:
        return False
    if not colon and not bare_names:
        return False
    try:
        imgen.get_backend(backend)
    except (UnknownBackendError, PluginLoadError, BackendConflictError):
        return False
    return True


def _default_or_fail(usage: str) -> str:
    chosen = default_model()
    if chosen is None:
        raise UserError(
            f"No model given, and no default model: name one ({usage}), or {HOW_TO_SET_DEFAULT}."
        )
    note_default_model(chosen.source)
    return chosen.model


def choose_generate_model(first: str | None, rest: list[str]) -> tuple[str, list[str]]:
    """Split `imgen generate [MODEL] PROMPT...` into the model and the prompts.

    The first word is MODEL when more words follow and it names a model, or when no default
    model is set; otherwise every word is a prompt for the default model (`IMGEN_MODEL`, else
    the stored one). A lone word that can only be a model (`backend:model-id` of an installed
    backend, a saved config file; without a default, a backend or alias name too) is a model
    whose prompt was forgotten, not a prompt.

    Raises:
        click.UsageError: No word at all, or a lone model and no prompt.
        UserError: A single word and no default model.
    """
    if first is None:
        raise click.UsageError("Missing argument 'PROMPT...'.")
    if not rest and _surely_a_model(first, bare_names=default_model() is None):
        raise click.UsageError(
            f"Missing argument 'PROMPT...': {brief_repr(first)} names the model; give the "
            "prompts after "
            f"it: imgen generate {first} PROMPT..."
        )
    if rest and (_names_a_model(first) or default_model() is None):
        model, prompts = first, rest
    else:
        model, prompts = _default_or_fail("imgen generate MODEL PROMPT..."), [first, *rest]
    current_log().requested(model, prompts=prompts)
    return model, prompts


def choose_batch_model(first: str | None, second: str | None) -> tuple[str, str]:
    """Split `imgen batch [MODEL] PROMPTS_FILE` into the model and the prompts file.

    Raises:
        click.UsageError: No argument at all.
        UserError: Only PROMPTS_FILE, and no default model.
    """
    if first is None:
        raise click.UsageError("Missing argument 'PROMPTS_FILE'.")
    if second is None:
        model, prompts_file = _default_or_fail("imgen batch MODEL PROMPTS_FILE"), first
    else:
        model, prompts_file = first, second
    current_log().requested(model, input=prompts_file)
    return model, prompts_file


# -- imgen keys ------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Store API keys, one per backend, in a file only you can read."""


def _key_env_var(name: str) -> str | None:
    """The environment variable of backend NAME's key field, if it has one.

    A name no installed backend has is let through with a warning (its plugin may come
    later), unless it is surely a mistake. So is a broken plugin's backend: it cannot be
    inspected.

    Raises:
        UserError: NAME is an alias, a near-miss of a backend that takes a key (with a
            did-you-mean), or a backend that takes no key.
    """
    infos = {info.name: info for info in imgen.list_backends()}
    if name in infos and infos[name].status != "ok":
        return None
    key_fields = {
        backend: secret_field_of(imgen.get_backend(backend))
        for backend, info in infos.items()
        if info.status == "ok"
    }
    if name not in infos:
        takes_keys = sorted(backend for backend, field in key_fields.items() if field)
        aliased = next((info.name for info in infos.values() if name in info.aliases), None)
        hint = (
            f" {name!r} is an alias of the {aliased!r} backend, and keys go by backend name."
            if aliased
            else did_you_mean(name, takes_keys)
        )
        listed = f"Backends that take a key: {', '.join(takes_keys) or 'none'}."
        if hint:
            raise UserError(f"No installed backend is named {name!r}.{hint} {listed}")
        click.echo(
            f"Warning: No installed backend is named {name!r}: the key is stored for a "
            f"backend of that name to come. {listed}",
            err=True,
        )
        return None
    field = key_fields[name]
    if field is None:
        raise UserError(f"The {name!r} backend takes no key: it has no secret field.")
    return env_var_of(imgen.get_backend(name).model_fields[field])


def _read_key(name: str) -> str:
    if sys.stdin.isatty():
        value: str = click.prompt(f"Key for {name}", hide_input=True, err=True)
    else:
        try:
            value = sys.stdin.read()
        except UnicodeDecodeError:
            # Unchained: the decoder's error holds the bytes read, the key among them.
            raise_unchained(UserError("The key on stdin is not UTF-8 text: give the key alone."))
    value = value.strip()
    if not value:
        raise UserError("No key given: type it at the prompt, or pipe it on stdin.")
    if re.search(r"\s", value):
        raise UserError("The key holds whitespace or several lines: give the key alone.")
    return value


@keys.command("set")
@click.argument("name")
def keys_set(name: str) -> None:
    """Store the key of backend NAME, read from a hidden prompt or from stdin.

    The key is used by models of that backend whose key is not set otherwise; its
    environment variable, if set, comes first. It is never printed.
    """
    env_var = _key_env_var(name)
    set_key(name, _read_key(name))
    if env_var and os.environ.get(env_var):
        click.echo(f"Note: {env_var} is set, and takes precedence over the stored key.", err=True)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def keys_list(as_json: bool) -> None:
    """List the names of the stored keys (never their values)."""
    names = key_names()
    if as_json:
        click.echo(json.dumps(names))
        return
    for name in names:
        click.echo(name)


@keys.command("remove")
@click.argument("name")
def keys_remove(name: str) -> None:
    """Forget the stored key of NAME."""
    remove_key(name)


# -- imgen paths -----------------------------------------------------------------------------


@click.command()
@click.argument("name", required=False, type=click.Choice(["config", "keys", "logs"]))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def paths(name: str | None, as_json: bool) -> None:
    """Show where imgen keeps its files, or the path of one: config, keys or logs.

    They live in the platform's user dirs, or all in IMGEN_USER_DIR when it is set.
    """
    files = user_files()
    located = {key: str(path) for key, path in files.as_dict().items()}
    if name is not None:
        click.echo(located[name])
    elif as_json:
        click.echo(json.dumps({**located, "source": files.source}, indent=2))
    else:
        for key, path in located.items():
            missing = "" if Path(path).exists() else "  (not created yet)"
            click.echo(f"{key:<7} {path}{missing}")
