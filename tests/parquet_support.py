"""Shared by the Parquet batch tests: reading shards back, and the contract of a finished
Parquet dataset.

Imported by test modules as `parquet_support` (the tests folder is on pytest's pythonpath).
Shards are read by path with pyarrow's own I/O, never through a Python file object.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from PIL import Image

from imgen.batch.seeding import row_seed
from imgen.testing.fake import fake_image


def shard_files(root: Path) -> list[Path]:
    """The shard files of a local dataset, in order."""
    return sorted((root / "data").glob("*.parquet"))


def read_rows(root: Path) -> list[dict[str, Any]]:
    """Every row of every shard, in shard order."""
    return [row for path in shard_files(root) for row in pq.read_table(str(path)).to_pylist()]


def checksums(root: Path) -> dict[str, str]:
    """Each shard file's name mapped to its SHA-256."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in shard_files(root)}


def committed(root: Path) -> list[dict[str, Any]]:
    """The descriptors shards.json holds."""
    return list(json.loads((root / "shards.json").read_text())["shards"])


def assert_complete_parquet(
    root: Path, rows: Iterable[int], num_generations: int, shard_rows: int
) -> list[dict[str, Any]]:
    """The contract of a finished Parquet dataset: one row per (row, generation) holding its
    whole image, each in the shard its row number says, sorted, every shard committed with its
    size and checksum, one schema for all shards, no spool files left.

    Returns:
        The rows of all shards, in order.
    """
    records = read_rows(root)
    keys = [(record["row"], record["generation"]) for record in records]
    assert keys == sorted(keys), "shards not sorted by row and generation"
    assert set(keys) == {(row, k) for row in rows for k in range(num_generations)}
    assert len(keys) == len(set(keys)), "an image twice"
    for path in shard_files(root):
        index = int(path.stem.rsplit("-", 1)[1])
        for row in pq.read_table(str(path), columns=["row"]).column("row").to_pylist():
            assert (row - 1) // shard_rows == index, f"row {row} in {path.name}"
    for record in records:
        image = record["image"]
        assert image["path"] == f"{record['row']:06d}-{record['generation']}.png"
        with Image.open(_bytes_file(image["bytes"])) as picture:
            picture.load()
    descriptors = {d["path"]: d for d in committed(root)}
    assert sorted(descriptors) == [f"data/{path.name}" for path in shard_files(root)]
    for path in shard_files(root):
        descriptor = descriptors[f"data/{path.name}"]
        assert descriptor["bytes"] == path.stat().st_size
        assert descriptor["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    schemas = {
        pq.read_schema(str(path)).remove_metadata().to_string() for path in shard_files(root)
    }
    assert len(schemas) == 1, "shards with different schemas"
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")], "spool files left"
    return records


def assert_images_are_the_fakes(root: Path, records: list[dict[str, Any]]) -> None:
    """Each image holds the bytes the fake backend makes for its prompt and seed, the seed a
    run straight through gives it."""
    job_seed = json.loads((root / "job.json").read_text())["seed"]
    for record in records:
        assert record["seed"] == row_seed(job_seed, record["row"]) + record["generation"]
        expected = fake_image(record["prompt"], record["seed"], 64, 64, "png")
        assert record["image"]["bytes"] == expected, record["image"]["path"]


def _bytes_file(data: bytes) -> Any:
    import io

    return io.BytesIO(data)
