"""Shell completion of backend names and model specs, for click's completion scripts.

Enable completion with `eval "$(_IMGEN_COMPLETE=bash_source imgen)"` (zsh_source, fish_source
for the other shells); then MODEL and BACKEND arguments complete from the installed backends:
backend names and aliases, and after `backend:` the model ids that backend knows.
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem

import imgen
from imgen.known_models import known_models

__all__ = ["complete_backend", "complete_model"]


def complete_backend(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The installed backend names and aliases that start with `incomplete`."""
    names: dict[str, str] = {}
    for info in imgen.list_backends():
        if info.status == "ok":
            names[info.name] = "backend"
            names.update(
                (alias, f"{info.name}:{model_id}") for alias, model_id in info.aliases.items()
            )
    return [
        CompletionItem(name, help=help)
        for name, help in sorted(names.items())
        if name.startswith(incomplete)
    ]


def complete_model(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Backend names and aliases; after `backend:`, that backend's model ids.

    Paths complete too, for a saved model config (a .json/.yaml/.yml file): the first item
    hands them to the shell's own file completion.
    """
    files = CompletionItem(incomplete, type="file")
    backend, colon, _ = incomplete.partition(":")
    if not colon:
        return [files, *complete_backend(ctx, param, incomplete)]
    try:
        cls = imgen.get_backend(backend)
    except Exception:  # an unknown or broken backend: nothing to offer
        return [files]
    aliases = next((i.aliases for i in imgen.list_backends() if i.name == backend), {})
    specs = [f"{backend}:{model_id}" for model_id in known_models(cls, aliases).ids]
    return [files, *(CompletionItem(spec) for spec in specs if spec.startswith(incomplete))]
