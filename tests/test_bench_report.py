"""The benchmark report never lists a missed target silently: each such row carries a comment."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    """`bench.harness` and `bench.__main__`, imported from the repository root."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("bench.harness"), importlib.import_module("bench.__main__")


@pytest.mark.parametrize(
    ("target", "ratio", "missed"),
    [
        ("<= 1.2x", 1.19, False),
        ("<= 1.2x", 1.21, True),
        (">= 0.95x", 0.96, False),
        (">= 0.95x", 0.94, True),
        ("report", 9.0, False),
    ],
)
def test_a_row_knows_whether_it_misses_its_target(
    bench: tuple[ModuleType, ModuleType], target: str, ratio: float, missed: bool
) -> None:
    harness, _ = bench
    assert harness.Row("b", "1 s", "1 s", ratio, target).misses_target is missed


@pytest.mark.parametrize(("milliseconds", "missed"), [(79.0, False), (81.0, True)])
def test_a_target_in_milliseconds_reads_the_subjects_time(
    bench: tuple[ModuleType, ModuleType], milliseconds: float, missed: bool
) -> None:
    harness, _ = bench
    row = harness.Row("b", "1 s", "1 s", 0.2, "<= 80 ms", subject_ms=milliseconds)
    assert row.misses_target is missed
    with pytest.raises(ValueError, match="needs the row's subject_ms"):
        _ = harness.Row("b", "1 s", "1 s", 0.2, "<= 80 ms").misses_target


def test_every_target_the_suites_write_is_understood() -> None:
    # A target the report cannot read fails the whole bench run at its very end.
    import re

    written = re.compile(r"\"(<=|>=) [^\"]*\"|\"report\"")
    for suite in sorted(set((ROOT / "bench").glob("*.py")) - {ROOT / "bench" / "harness.py"}):
        for found in written.finditer(suite.read_text()):
            target = found.group().strip('"').replace("{DEFAULT_TARGET_MS}", "80")
            assert re.fullmatch(r"report|(<=|>=) ?\d+(\.\d+)? ?(x|ms)", target), (suite, target)


def test_an_unknown_target_is_an_error(bench: tuple[ModuleType, ModuleType]) -> None:
    harness, _ = bench
    with pytest.raises(ValueError, match="Unknown target 'fast'"):
        _ = harness.Row("b", "1 s", "1 s", 1.0, "fast").misses_target


def test_the_table_comments_on_every_missed_row(bench: tuple[ModuleType, ModuleType]) -> None:
    harness, main = bench
    rows = [
        harness.Row("kept", "1 s", "1 s", 1.0, "<= 1.2x"),
        harness.Row("explained", "2 s", "1 s", 2.0, "<= 1.2x", comment="The disk waits."),
        harness.Row("unexplained", "1 s", "2 s", 0.5, ">= 0.95x"),
        harness.Row("informative", "1 s", "2 s", 0.5, "report", comment="Start-up included."),
    ]
    lines = main.table(rows).splitlines()
    assert lines[0].endswith("| target | comment |")
    assert lines[2].endswith("| <= 1.2x |  |")
    assert lines[3].endswith("| **Misses its target.** The disk waits. |")
    assert lines[4].endswith("| **Misses its target.** No comment says why yet. |")
    assert lines[5].endswith("| report | Start-up included. |")
    assert lines[-1] == "2 of 3 rows with a target miss it."
