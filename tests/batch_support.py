"""Shared by the batch tests: the output contract of a dataset, and prompt files.

Imported by test modules as `batch_support` (the tests folder is on pytest's pythonpath).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image


def read_metadata(root: Path, *, torn_tail: bool = False) -> list[dict[str, Any]]:
    """The lines of `root/metadata.jsonl`.

    Args:
        root: The dataset.
        torn_tail: Ignore a torn last line (a crash may leave one) instead of failing.
    """
    data = (root / "metadata.jsonl").read_bytes()
    if torn_tail:
        data = data[: data.rfind(b"\n") + 1]
    assert not data or data.endswith(b"\n"), "torn last line"
    return [json.loads(line) for line in data.splitlines()]


def image_names(root: Path) -> list[str]:
    """The files in `root/images`, hidden ones included."""
    folder = root / "images"
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def assert_lines_name_whole_images(root: Path, *, torn_tail: bool = False) -> list[dict[str, Any]]:
    """What must hold at any moment, even right after a crash: each line names a whole image,
    and no two lines name the same image."""
    lines = read_metadata(root, torn_tail=torn_tail)
    for line in lines:
        with Image.open(root / line["file_name"]) as image:
            image.load()  # raises on a truncated file
    keys = [(line["row"], line["generation"]) for line in lines]
    assert len(set(keys)) == len(keys), "duplicate lines"
    return lines


def assert_complete(root: Path, rows: Iterable[int], num_generations: int) -> list[dict[str, Any]]:
    """The contract of a finished dataset: exactly one line per (row, generation), each naming
    its own whole image, every image named once, no temporary files, the same keys on every
    line.

    Returns:
        The metadata lines.
    """
    lines = assert_lines_name_whole_images(root)
    keys = {(line["row"], line["generation"]) for line in lines}
    assert keys == {(row, k) for row in rows for k in range(num_generations)}
    for line in lines:
        assert line["file_name"] == f"images/{line['row']:06d}-{line['generation']}.png"
    assert sorted(line["file_name"] for line in lines) == [
        f"images/{name}" for name in image_names(root)
    ], "images without a line, or lines without an image"
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")], "temporary files left"
    assert len({tuple(line) for line in lines}) == 1, "lines with different keys"
    return lines


def write_lines(path: Path, *lines: str) -> Path:
    """Write `lines` to `path`, a newline after each; return `path`."""
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_jsonl(path: Path, *records: dict[str, Any]) -> Path:
    """Write one JSON object a line to `path`; return `path`."""
    return write_lines(path, *(json.dumps(record) for record in records))


def wait_for_images(
    out: Path, count: int, job: subprocess.Popen[bytes], since: float = 0.0
) -> None:
    """Return once `count` images written after `since` are in place, while the job runs."""

    def written() -> int:
        folder = out / "images"
        if not folder.is_dir():
            return 0
        return sum(
            1
            for entry in os.scandir(folder)
            if not entry.name.startswith(".") and _modified(entry) >= since
        )

    wait_until(lambda: written() >= count, job)


def _modified(entry: os.DirEntry[str]) -> float:
    """When the file was written; -inf if it is gone (a resuming job clears leftovers)."""
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:
        return float("-inf")


def wait_until(condition: Callable[[], bool], job: subprocess.Popen[bytes]) -> None:
    """Return once `condition()` holds, while the job still runs."""
    deadline = time.monotonic() + 60
    while not condition():
        if job.poll() is not None or time.monotonic() > deadline:
            job.kill()
            pytest.fail(f"the job ended first: {job.communicate()}")
        time.sleep(0.002)
