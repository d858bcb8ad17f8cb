"""The log entry of the running command: filled in as the command goes, stored when it ends.

`imgen generate` and `imgen batch` start one with `start_log`; the code they share reports to
`current_log()` (the model it built, each image it wrote, the batch summary) without knowing
whether logging is on. Outside such a command, `current_log()` gives an entry that is never
stored.
"""

from __future__ import annotations

import os
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

import imgen
from imgen.user_dir import USER_DIR_ENV_VAR, UserDirWarning, user_files

if TYPE_CHECKING:
    from imgen.base import ImageGenerationModel
    from imgen.batch.summary import BatchSummary
    from imgen.logs import LogDatabase, LogEntry

__all__ = ["CommandLog", "current_log", "start_log"]

_META_KEY = "imgen.command_log"


class CommandLog:
    """What the running command did so far, and where it will be stored.

    Args:
        command: `generate` or `batch`.
        database: The open log database, or None when this run is not logged.
    """

    def __init__(self, command: str, database: LogDatabase | None = None) -> None:
        from imgen.logs import LogEntry

        self.entry: LogEntry = LogEntry(
            started_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            command=command,
            imgen_version=imgen.__version__,
        )
        self._database = database
        self._started = time.monotonic()

    def requested(
        self, model: str, *, prompts: list[str] | None = None, input: str | None = None
    ) -> None:
        """Note the model as the user named it (or the default), and the prompts or input.

        A local prompts file is noted by its absolute path, found again from any folder. The
        backend is noted already when the name resolves to one, so that a run whose model
        cannot be built (a bad `-p` or `-O`) is still found by `imgen logs --model BACKEND`.
        """
        self.entry.model = model
        self.entry.backend = _backend_of(model)
        self.entry.prompts = list(prompts or [])
        if input is not None and input != "-" and "://" not in input:
            input = os.path.abspath(input)  # no filesystem access: any name is safe here
        self.entry.input = input

    def model_built(self, model: ImageGenerationModel) -> None:
        """Note the built model: its backend, canonical spec, generation kwargs and fields."""
        self.entry.backend = type(model).backend_name
        self.entry.model = model.spec
        self.entry.generation_kwargs = dict(model.generation_kwargs or {})
        dumped = model.dump()  # leaves every secret field out
        self.entry.fields = {
            name: value
            for name, value in dumped.items()
            if name not in ("type_info", "generation_kwargs", type(model).model_field)
        }

    def image_written(self, path: Path, metadata: dict[str, Any]) -> None:
        """Note an image `imgen generate` wrote, with its seed when the backend reported one."""
        self.entry.outputs.append(str(path.absolute()))  # still found from another folder
        self.entry.seeds.append(metadata.get("seed"))

    def batch_finished(self, summary: BatchSummary) -> None:
        """Note the summary of a batch; it decides the outcome."""
        self.entry.summary = summary.to_dict()
        self.entry.outputs = [str(summary.output_dir)]  # absolute already, or a URL
        # The job seed, beside the dataset it seeded: every image's seed derives from it.
        self.entry.seeds = [summary.seed] if summary.seed is not None else []
        if summary.interrupted:
            self.entry.outcome, self.entry.error = "interrupted", "Interrupted."
        elif summary.rows_failed or summary.bad_rows:
            self.entry.outcome = "failed"
            self.entry.error = (
                f"{summary.rows_failed} of {summary.rows_total} rows failed"
                + (
                    f", {_count(len(summary.bad_rows), 'bad row')} skipped"
                    if summary.bad_rows
                    else ""
                )
                + f"; see {summary.errors_location}."
            )

    def discard(self) -> None:
        """Store nothing: the command never ran."""
        if self._database is not None:
            self._database.close()
            self._database = None

    def finish(self, outcome: str | None = None, error: str | None = None) -> None:
        """Store the entry, unless this run is not logged.

        Args:
            outcome: `failed` or `interrupted` when the command ended so; None keeps what
                the command noted (`ok` unless a batch summary said otherwise).
            error: The one-line error the command printed.
        """
        if outcome is not None:
            self.entry.outcome, self.entry.error = outcome, error
        self.entry.duration_s = round(time.monotonic() - self._started, 3)
        database, self._database = self._database, None
        if database is None:
            return
        from imgen.logs import LogsUnwritableError

        try:
            database.add(self.entry)
        except LogsUnwritableError as exc:
            _warn_not_logged(str(exc))
        finally:
            database.close()


def _backend_of(model: str) -> str | None:
    """The backend a spec or alias names, if installed; None for a config file or an unknown."""
    from imgen.serialization import SUFFIXES

    name = model.partition(":")[0]
    if not name or (":" not in model and Path(model).suffix.lower() in SUFFIXES):
        return None
    try:
        return imgen.get_backend(name).backend_name
    except Exception:  # unknown, broken or claimed twice: building the model says which
        return None


def current_log() -> CommandLog:
    """The log entry of the running command; a detached one outside `imgen generate`/`batch`."""
    ctx = click.get_current_context(silent=True)
    log = ctx.meta.get(_META_KEY) if ctx is not None else None
    return log if isinstance(log, CommandLog) else CommandLog("none")


def start_log(command: str, *, enabled: bool) -> CommandLog:
    """Begin the log entry of the running command.

    The database is opened now, so that a damaged one stops the command before any work. One
    that cannot be written (a read-only user dir) only gives a warning: the command runs, and
    this run is not logged.

    Args:
        command: `generate` or `batch`.
        enabled: False for `--no-log` or `imgen logs off`: nothing is opened or stored.

    Raises:
        ConfigurationError: The log database is damaged or from a newer imgen (the message
            names the file and how to fix or move it).
    """
    database = None
    if enabled:
        from imgen.logs import LogDatabase, LogsUnwritableError

        try:
            database = LogDatabase.open(user_files().logs)
        except LogsUnwritableError as exc:
            _warn_not_logged(str(exc))
    log = CommandLog(command, database)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_META_KEY] = log
    return log


def _warn_not_logged(reason: str) -> None:
    warnings.warn(
        f"{reason} This run is not logged: make the folder writable, set {USER_DIR_ENV_VAR} "
        "to a writable folder, or turn logging off (--no-log for one run, `imgen logs off` "
        "for all).",
        UserDirWarning,
        stacklevel=2,
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
