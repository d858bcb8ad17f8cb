"""`imgen models`: the model ids the installed backends know.

imgen models list            every backend's models
imgen models list openai     one backend's (a backend name or an alias)
"""

from __future__ import annotations

import json

import click

import imgen
from imgen.cli import _echo_table
from imgen.cli_complete import complete_backend
from imgen.known_models import KnownModels, known_models

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
    """The model ids the installed backends know."""


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
