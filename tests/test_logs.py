"""The log database: schema migrations from the first version on, queries, damaged files."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from imgen.errors import ConfigurationError
from imgen.logs import MIGRATIONS, SCHEMA_VERSION, LogDatabase, LogEntry

# The schema of version 1 exactly as it shipped. Migrations must carry a database made by it
# (and its rows) to the current schema; editing MIGRATIONS[0] instead would break this test.
VERSION_1 = [
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
    "PRAGMA user_version = 1",
]
VERSION_1_ROW = (
    "INSERT INTO entries VALUES (7, '2024-05-01T10:00:00.000+00:00', 'generate', 'fake', "
    "'fake:fake-v1', '[\"a lighthouse at dusk\"]', '{\"seed\": 3}', 1, '{}', '[3]', "
    "'[\"/out/a-lighthouse-at-dusk-0.png\"]', NULL, NULL, 0.5, 'ok', NULL, '0.1.0')"
)


def entry(**values: object) -> LogEntry:
    defaults: dict[str, object] = {
        "started_at": "2024-05-01T10:00:00.000+00:00",
        "command": "generate",
        "imgen_version": "0.1.0",
    }
    return LogEntry(**{**defaults, **values})  # type: ignore[arg-type]


def schema(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        ).fetchall()
    return [(name, " ".join(sql.split())) for name, sql in rows]


def version_of(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("PRAGMA user_version").fetchone()[0])


def test_a_new_database_has_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    with LogDatabase.open(tmp_path / "new" / "logs.db") as database:  # type: ignore[union-attr]
        assert database.count() == 0
    assert version_of(tmp_path / "new" / "logs.db") == SCHEMA_VERSION
    with sqlite3.connect(tmp_path / "new" / "logs.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def version_1_database(path: Path, *extra: str) -> Path:
    """A database made by version 1, holding its row, then the `extra` statements run."""
    with sqlite3.connect(path) as connection:
        for statement in [*VERSION_1, VERSION_1_ROW, *extra]:
            connection.execute(statement)
    return path


def test_a_version_1_database_is_migrated_with_its_rows(tmp_path: Path) -> None:
    path = version_1_database(tmp_path / "logs.db")

    with LogDatabase.open(path) as database:  # type: ignore[union-attr]
        [old] = database.entries(query="lighthouse")
        database.add(entry(prompts=["a red fox"]))
        assert [e.prompts for e in database.entries()] == [["a lighthouse at dusk"], ["a red fox"]]

    assert old == entry(
        id=7,
        backend="fake",
        model="fake:fake-v1",
        prompts=["a lighthouse at dusk"],
        generation_kwargs={"seed": 3},
        num_generations=1,
        seeds=[3],
        outputs=["/out/a-lighthouse-at-dusk-0.png"],
        duration_s=0.5,
    )
    assert version_of(path) == SCHEMA_VERSION
    assert schema(path) == schema_of_a_new_database(tmp_path)


def schema_of_a_new_database(tmp_path: Path) -> list[tuple[str, str]]:
    fresh = tmp_path / "fresh.db"
    LogDatabase.open(fresh).close()  # type: ignore[union-attr]
    return schema(fresh)


@pytest.mark.parametrize("version", range(SCHEMA_VERSION + 1))
def test_every_version_migrates_to_the_current_schema(tmp_path: Path, version: int) -> None:
    path = tmp_path / "logs.db"
    with sqlite3.connect(path) as connection:
        for steps in MIGRATIONS[:version]:
            for statement in steps:
                connection.execute(statement)
        if version:
            connection.execute(VERSION_1_ROW)
        connection.execute(f"PRAGMA user_version = {version}")

    with LogDatabase.open(path) as database:  # type: ignore[union-attr]
        found = [e.id for e in database.entries(query="dusk")]

    assert found == ([7] if version else [])
    assert version_of(path) == SCHEMA_VERSION
    assert schema(path) == schema_of_a_new_database(tmp_path)


def test_a_failed_migration_changes_nothing(tmp_path: Path) -> None:
    # A table in the way of migration 2.
    path = version_1_database(tmp_path / "logs.db", "CREATE TABLE entries_search (x)")

    with pytest.raises(ConfigurationError, match="table entries_search already exists"):
        LogDatabase.open(path)

    assert version_of(path) == 1
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT id FROM entries").fetchall() == [(7,)]
        assert (
            connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
            == []
        )


def test_a_database_from_a_newer_imgen_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(ConfigurationError) as raised:
        LogDatabase.open(path)

    assert str(raised.value).startswith(f"The imgen log database {path} cannot be used: it has ")
    assert f"schema version {SCHEMA_VERSION + 1}, from a newer imgen" in str(raised.value)
    assert "upgrade imgen to read it" in str(raised.value)


@pytest.mark.parametrize(
    "content", [b"not a database at all" * 100, b"SQLite format 3\x00" + b"\x01" * 200]
)
def test_a_damaged_file_is_one_error_naming_it_and_the_fix(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "logs.db"
    path.write_bytes(content)

    with pytest.raises(ConfigurationError) as raised:
        LogDatabase.open(path)

    message = str(raised.value)
    assert message.startswith(f"The imgen log database {path} cannot be used: ")
    assert f"move it aside (`mv {path} {path}.bak`)" in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


@pytest.mark.parametrize(
    ("statements", "reason"),
    [
        ([f"PRAGMA user_version = {SCHEMA_VERSION}"], "no entries table"),
        (
            [
                "CREATE TABLE entries (id INTEGER PRIMARY KEY)",
                f"PRAGMA user_version = {SCHEMA_VERSION}",
            ],
            "its entries table lacks 'backend'",
        ),
        (
            [*VERSION_1, f"PRAGMA user_version = {SCHEMA_VERSION}"],
            "no such table: entries_search",
        ),
    ],
)
def test_tables_unlike_the_schema_version_are_refused_at_open(
    tmp_path: Path, statements: list[str], reason: str
) -> None:
    path = tmp_path / "logs.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        for statement in statements:
            connection.execute(statement)
        connection.commit()

    with pytest.raises(ConfigurationError) as raised:
        LogDatabase.open(path)

    assert str(raised.value).startswith(f"The imgen log database {path} cannot be used: {reason}")


def test_an_empty_file_becomes_a_database(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    path.write_bytes(b"")
    with LogDatabase.open(path) as database:  # type: ignore[union-attr]
        assert database.count() == 0


def test_a_missing_database_is_not_created_for_reading(tmp_path: Path) -> None:
    assert LogDatabase.open(tmp_path / "logs.db", create=False) is None
    assert not (tmp_path / "logs.db").exists()


# -- queries ----------------------------------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> LogDatabase:
    opened = LogDatabase.open(tmp_path / "logs.db")
    assert opened is not None
    entries = [
        entry(backend="fake", model="fake:fake-v1", prompts=["a red fox", "a blue whale"]),
        entry(backend="openai", model="openai:gpt-image-1", prompts=['a "quoted" fox-cub']),
        entry(
            command="batch",
            backend="openai",
            model="openai:dall-e-3",
            input="/data/lighthouses.txt",
            outcome="failed",
            error="2 of 9 rows failed; see /out/errors.jsonl.",
        ),
        entry(model="fak", outcome="failed", error="Unknown backend 'fak'."),
    ]
    for item in entries:
        opened.add(item)
    return opened


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("fox", [1, 2]),
        ("whale", [1]),
        ("RED Fox", [1]),  # every word, any case
        ("red whale", [1]),  # words of two prompts of one entry
        ("lighthouses", [3]),  # the batch's prompts file
        ("rows failed", [3]),  # errors
        ("fak", [4]),
        ('"quoted"', [2]),  # FTS5 syntax is taken literally: never a syntax error
        ("fox-cub", [2]),
        ("AND OR NOT *", []),
        ("", [1, 2, 3, 4]),
    ],
)
def test_search_matches_every_word_literally(
    database: LogDatabase, query: str, ids: list[int]
) -> None:
    assert [e.id for e in database.entries(query=query)] == ids


@pytest.mark.parametrize(
    ("models", "ids"),
    [
        (["openai"], [2, 3]),
        (["openai:dall-e-3"], [3]),
        (["fake:fake-v1", "fak"], [1, 4]),
        (["dall-e-3"], []),  # aliases are resolved by the command, not here
    ],
)
def test_filter_by_model_spec_or_backend(
    database: LogDatabase, models: list[str], ids: list[int]
) -> None:
    assert [e.id for e in database.entries(model=models)] == ids


def test_the_latest_entries_come_oldest_first(database: LogDatabase) -> None:
    assert [e.id for e in database.entries(limit=2)] == [3, 4]
    assert [e.id for e in database.entries(limit=1, query="fox")] == [2]
    assert [e.id for e in database.entries(limit=None)] == [1, 2, 3, 4]
    assert database.count() == 4


def test_entries_round_trip(database: LogDatabase) -> None:
    stored = entry(
        backend="fake",
        model="fake:fake-v1",
        prompts=["ünïcode ✓"],
        generation_kwargs={"seed": 1, "size": [2, 3]},
        num_generations=2,
        fields={"width": 8},
        seeds=[1, None],
        outputs=["/a.png", "/b.png"],
        summary={"rows_done": 1},
        duration_s=1.25,
    )
    database.add(stored)
    assert database.entries(limit=1) == [stored]
    assert stored.to_dict()["prompts"] == ["ünïcode ✓"]
