"""The log database: one SQLite row per `imgen generate` or `imgen batch`, searchable.

The schema is versioned with SQLite's `user_version`. Each migration moves a database one
version on, inside one write transaction, so a database of any earlier version, and an
empty file, all end at the current schema with their rows kept. Several processes may log at
once: the database runs in WAL mode and waits for a busy writer instead of failing.

sqlite3 is imported with this module, which nothing imports at `import imgen`.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from imgen.errors import ConfigurationError
from imgen.user_dir import how_to_move

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "LogDatabase",
    "LogEntry",
    "LogsUnwritableError",
]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # Version 1: the entries.
    (
        """
        CREATE TABLE entries (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            command TEXT NOT NULL,
            backend TEXT,
            model TEXT,
            prompts TEXT NOT NULL,
            generation_kwargs TEXT NOT NULL,
            num_generations INTEGER,
            fields TEXT NOT NULL,
            seeds TEXT NOT NULL,
            outputs TEXT NOT NULL,
            input TEXT,
            summary TEXT,
            duration_s REAL NOT NULL,
            outcome TEXT NOT NULL,
            error TEXT,
            imgen_version TEXT NOT NULL
        )
        """,
        "CREATE INDEX entries_by_model ON entries (model)",
        "CREATE INDEX entries_by_backend ON entries (backend)",
    ),
    # Version 2: full-text search over prompts, the batch input and errors, kept in step by
    # triggers; the rows logged before it are indexed too.
    (
        "CREATE VIRTUAL TABLE entries_search USING fts5(prompts, input, error)",
        """
        CREATE TRIGGER entries_search_insert AFTER INSERT ON entries BEGIN
            INSERT INTO entries_search (rowid, prompts, input, error) VALUES (
                new.id,
                (SELECT group_concat(value, char(10)) FROM json_each(new.prompts)),
                new.input,
                new.error
            );
        END
        """,
        """
        CREATE TRIGGER entries_search_delete AFTER DELETE ON entries BEGIN
            DELETE FROM entries_search WHERE rowid = old.id;
        END
        """,
        """
        INSERT INTO entries_search (rowid, prompts, input, error)
        SELECT id, (SELECT group_concat(value, char(10)) FROM json_each(prompts)), input, error
        FROM entries
        """,
    ),
)
"""The schema's history: `MIGRATIONS[i]` moves a database from version i to i + 1.

Append a migration to change the schema; never edit one that has shipped.
"""

SCHEMA_VERSION = len(MIGRATIONS)
"""The version of the schema this imgen writes."""

# How long a writer waits for another process to finish its write before giving up.
_BUSY_TIMEOUT_S = 15.0
_JSON_COLUMNS = ("prompts", "generation_kwargs", "fields", "seeds", "outputs", "summary")
# SQLite's primary result codes that mean "this database cannot be written here and now";
# any other error while opening it means the file itself is damaged.
_UNWRITABLE_CODES = {
    "SQLITE_PERM",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_READONLY",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_CANTOPEN",
    "SQLITE_AUTH",
}


class LogsUnwritableError(ConfigurationError):
    """The log database cannot be used here: a read-only folder, a full disk, a stuck lock."""


def _jsonable(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(value: Any) -> Any:
    """`value` with every lone surrogate written out as its escape (the six characters
    `\\ud800`): SQLite stores UTF-8, which cannot hold one, and a terminal could not show it.
    Prompts read from JSON can carry them; the log keeps what they were, legibly.
    """
    if isinstance(value, str):
        return _LONE_SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", value)
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value


@dataclass
class LogEntry:
    """What one command did.

    Attributes:
        started_at: When it started, ISO 8601 in UTC.
        command: `generate` or `batch`.
        backend: The backend's registry name, once known.
        model: The canonical `backend:model-id` once the model was built, else as given.
        prompts: The prompts of `imgen generate` (empty for a batch: see `input`).
        generation_kwargs: The generation kwargs the model used.
        num_generations: Images per prompt.
        fields: The model's other fields, as `model.dump()` gives them: no secret.
        seeds: The seed of each image in `outputs`, None where the backend reported none;
            for a batch, its job seed (every image's seed derives from it), if it has one.
        outputs: The images written by `imgen generate`; the dataset folder of a batch.
        input: The prompts file of a batch (absolute when a local file; `-` for stdin).
        summary: The summary a batch printed.
        duration_s: Seconds from start to end, model loading included.
        outcome: `ok`, `failed` or `interrupted`.
        error: The one-line error the command printed, if it failed.
        imgen_version: The imgen that ran it.
        id: The entry's number, once stored.
    """

    started_at: str
    command: str
    imgen_version: str
    backend: str | None = None
    model: str | None = None
    prompts: list[str] = field(default_factory=list)
    generation_kwargs: dict[str, Any] = field(default_factory=dict)
    num_generations: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    seeds: list[Any] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    input: str | None = None
    summary: dict[str, Any] | None = None
    duration_s: float = 0.0
    outcome: str = "ok"
    error: str | None = None
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data."""
        return json.loads(_jsonable(asdict(self)))  # type: ignore[no-any-return]


def _is_unwritable(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    return any(name == code or name.startswith(code + "_") for code in _UNWRITABLE_CODES)


class LogDatabase:
    """An open log database, migrated to the current schema.

    Use `LogDatabase.open(path)`; close it, or use it as a context manager.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._connection = connection
        self._connection.row_factory = sqlite3.Row

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> LogDatabase | None:
        """Open the database at `path`, creating or upgrading it as needed.

        Args:
            path: The database file.
            create: Create it when missing; with False a missing file gives None.

        Raises:
            ConfigurationError: The file is not a log database imgen can use: damaged, not
                SQLite, or written by a newer imgen. The message names it and the fix.
            LogsUnwritableError: It cannot be created or upgraded here (read-only folder,
                full disk, another process holding the lock too long).
        """
        if not create and not path.exists():
            return None
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise _unwritable(path, exc) from None
        try:
            _migrate(connection)
            _check_tables(connection)
        except sqlite3.Error as exc:
            connection.close()
            if _is_unwritable(exc):
                raise _unwritable(path, exc) from None
            raise _damaged(path, _reason(exc)) from None
        except ConfigurationError as exc:
            connection.close()
            raise _damaged(path, str(exc)) from None
        return cls(path, connection)

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def __enter__(self) -> LogDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(self, entry: LogEntry) -> int:
        """Store `entry` and return its id (also set on the entry).

        Raises:
            LogsUnwritableError: The database cannot be written now.
        """
        row = {
            name: _jsonable(value) if name in _JSON_COLUMNS and value is not None else value
            for name, value in _storable(asdict(entry)).items()
            if name != "id"
        }
        columns = ", ".join(row)
        placeholders = ", ".join(f":{name}" for name in row)
        cursor = self._execute(f"INSERT INTO entries ({columns}) VALUES ({placeholders})", row)
        entry.id = cursor.lastrowid
        return int(entry.id or 0)

    def entries(
        self, *, limit: int | None = None, model: Sequence[str] = (), query: str | None = None
    ) -> list[LogEntry]:
        """The latest entries, oldest first.

        Args:
            limit: At most this many (the latest); None for all.
            model: Keep only entries of these models or backends, if given.
            query: Keep only entries whose prompts, input or error hold every word of it, or
                a word it begins.
        """
        conditions: list[str] = []
        parameters: dict[str, Any] = {}
        if model:
            names = {f"model_{i}": name for i, name in enumerate(model)}
            marks = ", ".join(f":{key}" for key in names)
            conditions.append(f"(model IN ({marks}) OR backend IN ({marks}))")
            parameters.update(names)
        if query and query.strip():
            conditions.append(
                "id IN (SELECT rowid FROM entries_search WHERE entries_search MATCH :query)"
            )
            parameters["query"] = _literal_words(query)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        parameters["limit"] = -1 if limit is None else limit
        sql = f"SELECT * FROM entries {where} ORDER BY id DESC LIMIT :limit"
        rows = self._execute(sql, parameters).fetchall()
        return [_entry_of(row) for row in reversed(rows)]

    def count(self) -> int:
        """How many entries the database holds."""
        return int(self._execute("SELECT count(*) FROM entries").fetchone()[0])

    def _execute(self, sql: str, parameters: dict[str, Any] | None = None) -> sqlite3.Cursor:
        try:
            return self._connection.execute(sql, parameters or {})
        except sqlite3.Error as exc:
            if _is_unwritable(exc):
                raise _unwritable(self.path, exc) from None
            raise _damaged(self.path, _reason(exc)) from None


def _literal_words(text: str) -> str:
    """An FTS5 query matching every word of `text` as typed, or a word it begins (`fox` finds
    `foxes`): no operator, no syntax error.
    """
    return " ".join('"' + word.replace('"', '""') + '"*' for word in text.split())


def _entry_of(row: sqlite3.Row) -> LogEntry:
    values = {
        name: json.loads(row[name])
        if name in _JSON_COLUMNS and row[name] is not None
        else row[name]
        for name in row.keys()  # noqa: SIM118  # sqlite3.Row is not a mapping
    }
    return LogEntry(**values)


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring the database to `SCHEMA_VERSION`; a no-op when it is there already."""
    version = _version(connection)
    if version == SCHEMA_VERSION:
        return
    _check_not_newer(version)
    if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        # Persistent: set once by whoever creates the file.
        connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _version(connection)  # another process may have migrated it meanwhile
        _check_not_newer(version)
        for steps in MIGRATIONS[version:]:
            for statement in steps:
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _check_tables(connection: sqlite3.Connection) -> None:
    """Fail now, before the command works, if the tables are not those of the schema.

    A file that says it is at the current version but lacks a table or a column would
    otherwise fail only when the finished command stores its entry.

    Raises:
        ConfigurationError: A table or a column is missing (the reason, for the message).
    """
    found = {row[1] for row in connection.execute("PRAGMA table_info(entries)")}
    missing = sorted({column.name for column in fields(LogEntry)} - found)
    if missing:
        what = "no entries table" if not found else f"its entries table lacks {missing[0]!r}"
        raise ConfigurationError(f"{what}, which schema version {SCHEMA_VERSION} has")
    connection.execute("SELECT rowid FROM entries_search LIMIT 0")


def _version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def _check_not_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"it has schema version {version}, from a newer imgen (this one knows "
            f"{SCHEMA_VERSION}); upgrade imgen to read it"
        )


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _unwritable(path: Path, exc: BaseException) -> LogsUnwritableError:
    return LogsUnwritableError(f"The log database {path} cannot be written: {_reason(exc)}.")


def _damaged(path: Path, reason: str) -> ConfigurationError:
    return ConfigurationError(
        f"The imgen log database {path} cannot be used: {reason}. {how_to_move(path)}"
    )
