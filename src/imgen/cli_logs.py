"""`imgen logs`: the log of every `imgen generate` and `imgen batch`, and how commands feed it."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

import imgen
from imgen.cli_options import error_line
from imgen.command_log import start_log
from imgen.user_config import logging_enabled, set_logging
from imgen.user_dir import user_files

__all__ = ["logged", "logs"]

_Callback = TypeVar("_Callback", bound=Callable[..., Any])
_DEFAULT_COUNT = 10


def logged(command: str) -> Callable[[_Callback], _Callback]:
    """Log every run of a click command callback, and give the command a `--no-log` option.

    Put it right above the callback, below the click decorators. The entry is stored when the
    callback ends, however it ends: its outcome is `ok`, `failed` (with the one-line error the
    command prints) or `interrupted`.

    Args:
        command: The entry's command name: `generate` or `batch`.
    """

    def decorate(callback: _Callback) -> _Callback:
        @functools.wraps(callback)
        def run(*args: Any, no_log: bool, **kwargs: Any) -> Any:
            log = start_log(command, enabled=not no_log and logging_enabled())
            log.entry.num_generations = kwargs.get("num_generations")
            try:
                result = callback(*args, **kwargs)
            except click.exceptions.Exit as stop:
                # A command that exits non-zero on its own has noted why (a batch: its summary).
                if stop.exit_code and log.entry.outcome == "ok":
                    log.finish("failed", f"Exited with code {stop.exit_code}.")
                else:
                    log.finish()
                raise
            except click.UsageError:
                log.discard()  # the command line was wrong: the command never ran
                raise
            except (KeyboardInterrupt, click.Abort):
                log.finish("interrupted", "Interrupted.")
                raise
            except Exception as exc:
                log.finish("failed", error_line(exc, click.get_current_context()))
                raise
            log.finish()
            return result

        option = click.option(
            "--no-log", is_flag=True, help="Do not log this run (see `imgen logs`)."
        )
        return option(run)  # type: ignore[return-value]

    return decorate


def _local_time(started_at: str) -> str:
    return datetime.fromisoformat(started_at).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _echo_entry(entry: dict[str, Any]) -> None:
    click.echo(
        f"#{entry['id']}  {_local_time(entry['started_at'])}  {entry['command']}  "
        f"{entry['model'] or '-'}  {entry['outcome']}  {entry['duration_s']:.2f}s"
    )
    details: list[tuple[str, str]] = [("prompt", prompt) for prompt in entry["prompts"]]
    if entry["generation_kwargs"]:
        params = " ".join(
            f"{key}={json.dumps(value, ensure_ascii=False)}"
            for key, value in entry["generation_kwargs"].items()
        )
        details.append(("params", params))
    if entry["input"]:
        details.append(("input", entry["input"]))
    if entry["command"] == "batch":
        details += [("dataset", path) for path in entry["outputs"]]
        details += [("seed", f"{seed} (the job seed)") for seed in entry["seeds"]]
    else:
        for path, seed in zip(entry["outputs"], entry["seeds"], strict=True):
            details.append(("image", path if seed is None else f"{path}  (seed {seed})"))
    summary = entry["summary"]
    if summary:
        done = f"{summary['rows_done']} rows done, {summary['rows_skipped']} skipped"
        failed = f"{summary['rows_failed']} failed; {summary['images_written']} images"
        details.append(("summary", f"{done}, {failed}"))
    if entry["error"]:
        details.append(("error", entry["error"]))
    for label, text in details:
        click.echo(f"  {label + ':':<8} {text}")


def _canonical_models(names: tuple[str, ...]) -> list[str]:
    """The names as given, plus the `backend:model-id` of each alias among them."""
    aliases = {
        alias: f"{info.name}:{model_id}"
        for info in imgen.list_backends()
        for alias, model_id in info.aliases.items()
    }
    return [*names, *(aliases[name] for name in names if name in aliases)]


@click.group(invoke_without_command=True)
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=0),
    default=_DEFAULT_COUNT,
    show_default=True,
    help="How many entries to show, the latest; 0 shows all.",
)
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    metavar="MODEL",
    help="Only entries of this model (spec or alias) or backend. Repeatable.",
)
@click.option(
    "-q",
    "--query",
    metavar="TEXT",
    help="Only entries whose prompts, prompts file or error hold every word of TEXT (or a "
    "word it begins: `fox` finds `foxes`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def logs(
    ctx: click.Context, count: int, models: tuple[str, ...], query: str | None, as_json: bool
) -> None:
    """Show the latest logged runs of `imgen generate` and `imgen batch`, oldest first.

    Every run is logged unless `imgen logs off` turned logging off or the command had
    --no-log: the time, model, prompts, generation kwargs, seeds, files written, duration and
    outcome.
    """
    if ctx.invoked_subcommand is not None:
        return
    from imgen.logs import LogDatabase

    enabled = logging_enabled()  # a damaged settings file fails before any entry is shown
    database = LogDatabase.open(user_files().logs, create=False)
    entries = []
    if database is not None:
        with database:
            found = database.entries(
                limit=count or None, model=_canonical_models(models), query=query
            )
        entries = [entry.to_dict() for entry in found]
    if as_json:
        click.echo(json.dumps(entries, indent=2, ensure_ascii=False))
    else:
        for entry in entries:
            _echo_entry(entry)
    if not enabled:
        click.echo("Logging is off: `imgen logs on` turns it back on.", err=True)


@logs.command("on")
def logs_on() -> None:
    """Log every later run of `imgen generate` and `imgen batch` (the default)."""
    set_logging(True)


@logs.command("off")
def logs_off() -> None:
    """Stop logging; runs with logging off leave no entry."""
    set_logging(False)


@logs.command("status")
def logs_status() -> None:
    """Say whether logging is on, where the database is and how many entries it holds."""
    from imgen.logs import LogDatabase

    path = user_files().logs
    enabled = logging_enabled()
    database = LogDatabase.open(path, create=False)  # a damaged one fails before any line
    click.echo(f"Logging is {'on' if enabled else 'off'}.")
    if database is None:
        click.echo(f"Database: {path} (not created yet)")
        return
    with database:
        count = database.count()
    click.echo(f"Database: {path} ({count} entries, {path.stat().st_size / 1024:.1f} KiB)")
