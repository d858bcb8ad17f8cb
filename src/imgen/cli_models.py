"""`imgen models`: the model ids the installed backends know, and the default model.

imgen models list            every backend's models
imgen models list openai     one backend's (a backend name or an alias)
imgen models default MODEL   the model `imgen generate` and `imgen batch` use when they name none
"""

from __future__ import annotations

import json
from pathlib import Path

import click

import imgen
from imgen.cli import _echo_table
from imgen.cli_complete import complete_backend, complete_model
from imgen.cli_options import build_model, is_config_path
from imgen.cli_user import HOW_TO_SET_DEFAULT
from imgen.known_models import KnownModels, known_models
from imgen.user_config import (
    MODEL_ENV_VAR,
    default_model,
    set_stored_default_model,
    stored_default_model,
)

__all__ = ["models"]


def _known(backend: str | None) -> list[KnownModels]:
    infos = [info for info in imgen.list_backends() if info.status == "ok"]
    if backend is not None:
        cls = imgen.get_backend(backend)  # an unknown name fails here, with a did-you-mean
        infos = [info for info in infos if info.name == cls.backend_name]
    return [known_models(imgen.get_backend(info.name), info.aliases) for info in infos]


def _rows(known: KnownModels) -> list[tuple[str, str, str]]:
    rows = []
    for model_id in known.ids:
        note = "default" if model_id == known.default else ""
        aliases = ", ".join(known.aliases.get(model_id, [])) or "-"
        rows.append((f"{known.backend}:{model_id}", aliases, note))
    if known.any_id:
        other = "any other id" if known.ids else "any id"
        rows.append((f"{known.backend}:<model-id>", "-", f"{other}, passed on as given"))
    return rows


@click.group()
def models() -> None:
    """The model ids the installed backends know, and the default model."""


@models.command("list")
@click.argument("backend", required=False, shell_complete=complete_backend)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_models(backend: str | None, as_json: bool) -> None:
    """List the model ids of every backend, or of BACKEND (a backend name or an alias).

    Each is shown as the MODEL to pass to `imgen generate` and `imgen batch`, with the aliases
    that name it alone. A backend whose model field is free-form takes other ids too.
    """
    known = _known(backend)
    if as_json:
        click.echo(json.dumps([entry.to_dict() for entry in known], indent=2))
        return
    _echo_table(("MODEL", "ALIASES", "NOTE"), [row for entry in known for row in _rows(entry)])


@models.command("default")
@click.argument("model", required=False, shell_complete=complete_model)
@click.option("--clear", is_flag=True, help="Forget the default model.")
def default(model: str | None, clear: bool) -> None:
    """Show the default model, or set it to MODEL.

    MODEL is a spec (`backend:model-id`), an alias, or a saved .json/.yaml model config. It
    is used by `imgen generate` and `imgen batch` when they name no model. The environment
    variable IMGEN_MODEL overrides it.
    """
    if clear and model is not None:
        raise click.UsageError("Give MODEL or --clear, not both.")
    if clear:
        set_stored_default_model(None)
    elif model is not None:
        build_model(model)  # a name that does not resolve is refused with a did-you-mean
        # A relative config path would mean another file in another folder.
        set_stored_default_model(str(Path(model).resolve()) if is_config_path(model) else model)
    else:
        chosen = default_model()
        if chosen is None:
            click.echo(f"No default model: {HOW_TO_SET_DEFAULT}.", err=True)
            raise click.exceptions.Exit(1)
        click.echo(chosen.model)
    overriding = default_model()
    if overriding is not None and overriding.source == MODEL_ENV_VAR:
        stored = stored_default_model()
        if stored != overriding.model:
            click.echo(
                f"Note: {MODEL_ENV_VAR}={overriding.model} overrides the stored default "
                f"({stored or 'none'}) in this environment.",
                err=True,
            )
