"""How a Parquet dataset's rows map to shards, and what travels between workers and the job.

Shard membership is fixed by row numbers: shard `i` holds the images of the source rows
`i * shard_rows + 1` to `(i + 1) * shard_rows` (rows are line numbers, so blank or bad lines
leave gaps), sorted by row and generation. Which rows a shard holds, and so its bytes, depend
on the source and the shard size only: not on the engine, the workers, the order rows complete
in, or how often the job was stopped and resumed. A shard is the unit of resume: it is written
whole, and a job that finds it committed skips its rows; a shard whose rows are not all done
(some failed, or the job now makes more images per row) is written again, with the images it
held and the new ones.

A worker that makes a shard reports it with a `ShardDescriptor` (its path, rows, size and
checksum): that, and the failures, is all the job receives, so its memory and traffic per image
stay in the size of the metadata.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from imgen.batch.inputs import PromptRow

__all__ = [
    "SHARD_FOLDER",
    "ShardDescriptor",
    "ShardReport",
    "ShardTask",
    "plan_shards",
    "prompts_digest",
    "shard_index",
    "shard_name",
]

SHARD_FOLDER = "data"


def shard_index(row: int, shard_rows: int) -> int:
    """The shard that holds the images of source row `row` (rows count from 1)."""
    return (row - 1) // shard_rows


def shard_name(index: int) -> str:
    """The shard's file, relative to the dataset: `data/train-00000.parquet`, a name `datasets`
    reads as the train split."""
    return f"{SHARD_FOLDER}/train-{index:05d}.parquet"


def prompts_digest(pairs: Iterable[tuple[int, str]]) -> str:
    """A digest of rows and their prompts, to notice prompts that changed since a shard was
    made without keeping every prompt in the manifest."""
    digest = hashlib.sha256()
    for row, prompt in sorted(pairs):
        digest.update(f"{row}\0{prompt}\0".encode("utf-8", "backslashreplace"))
    return digest.hexdigest()


def _runs(generations: Mapping[int, int]) -> list[list[int]]:
    """`{row: images}` as runs `[first, last, images]` of consecutive rows with as many images."""
    runs: list[list[int]] = []
    for row in sorted(generations):
        count = generations[row]
        if runs and runs[-1][1] == row - 1 and runs[-1][2] == count:
            runs[-1][1] = row
        else:
            runs.append([row, row, count])
    return runs


@dataclass(frozen=True)
class ShardDescriptor:
    """A shard written to the destination, as the job commits it to `shards.json`.

    Attributes:
        index: The shard's number (see `shard_index`).
        path: Its file, relative to the dataset.
        rows: Runs `[first, last, images]`: rows `first` to `last` are in the shard, each with
            `images` images (generations 0 to images - 1).
        images: The images it holds.
        bytes: The file's size.
        sha256: The file's SHA-256.
        prompts: `prompts_digest` of its rows.
        schema: Its Arrow schema, as `imgen.batch.parquet.schema_to_text` writes it.
    """

    index: int
    path: str
    rows: list[list[int]]
    images: int
    bytes: int
    sha256: str
    prompts: str
    schema: str

    @classmethod
    def describe(
        cls,
        index: int,
        generations: Mapping[int, int],
        size: int,
        sha256: str,
        prompts: str,
        schema: str,
    ) -> ShardDescriptor:
        """The descriptor of shard `index`, holding `generations[row]` images of each row."""
        return cls(
            index,
            shard_name(index),
            _runs(generations),
            sum(generations.values()),
            size,
            sha256,
            prompts,
            schema,
        )

    def generations(self) -> dict[int, int]:
        """Each row of the shard mapped to its number of images."""
        return {row: count for first, last, count in self.rows for row in range(first, last + 1)}

    def to_dict(self) -> dict[str, Any]:
        """The descriptor as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardDescriptor:
        """The descriptor `to_dict` gave.

        Raises:
            TypeError: `data` is not a descriptor.
        """
        return cls(**data)


@dataclass(frozen=True)
class ShardTask:
    """One shard to make: the rows of its range still to do, and the version to add to.

    Attributes:
        index: The shard's number.
        rows: Its rows still to make, in order, with their seeds and carried fields.
        generations: For each of those rows, the generations the shard lacks.
        previous: The committed version of the shard, whose images the new one keeps; None
            when there is none.
    """

    index: int
    rows: list[PromptRow]
    generations: dict[int, list[int]]
    previous: ShardDescriptor | None = None

    def to_json(self) -> str:
        """The task as JSON, to send to a worker (fields JSON cannot hold become text)."""
        return json.dumps(
            {
                "index": self.index,
                "rows": [
                    [row.row, row.prompt, dict(row.fields), row.seed, self.generations[row.row]]
                    for row in self.rows
                ],
                "previous": None if self.previous is None else self.previous.to_dict(),
            },
            default=str,
        )

    @classmethod
    def from_json(cls, text: str) -> ShardTask:
        """The task `to_json` sent."""
        data = json.loads(text)
        rows = [
            PromptRow(number, prompt, fields, seed)
            for number, prompt, fields, seed, _ in data["rows"]
        ]
        previous = data["previous"]
        return cls(
            data["index"],
            rows,
            {entry[0]: entry[4] for entry in data["rows"]},
            None if previous is None else ShardDescriptor.from_dict(previous),
        )


@dataclass(frozen=True)
class ShardReport:
    """What a worker tells the job: a row made or failed, or a shard written.

    Attributes:
        index: The shard it is about.
        descriptor: The shard, when it was written (and must be committed).
        failures: Rows that failed: (row, prompt, error).
        made: Images made and taken into the shard (for progress).
        rows_done: Rows the written shard completes.
        images: Images the written shard adds to the dataset.
        fault: Why the shard could not be written (a full disk, a denied bucket): the job
            stops.
    """

    index: int
    descriptor: ShardDescriptor | None = None
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    made: int = 0
    rows_done: int = 0
    images: int = 0
    fault: str | None = None

    def to_json(self) -> str:
        """The report as JSON, to send back from a worker."""
        data = asdict(self)
        data["descriptor"] = None if self.descriptor is None else self.descriptor.to_dict()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ShardReport:
        """The report `to_json` sent."""
        data = json.loads(text)
        descriptor = data.pop("descriptor")
        failures = [tuple(failure) for failure in data.pop("failures")]
        return cls(
            descriptor=None if descriptor is None else ShardDescriptor.from_dict(descriptor),
            failures=failures,  # type: ignore[arg-type]
            **data,
        )


def plan_shards(
    rows: Iterable[PromptRow],
    missing: Mapping[int, list[int]],
    shard_rows: int,
    committed: Mapping[int, ShardDescriptor],
) -> list[ShardTask]:
    """The shards to make for the rows still to do, in order.

    Args:
        rows: The rows to make, in order.
        missing: Each row mapped to the generations the dataset lacks.
        shard_rows: The rows each shard covers.
        committed: The shards the dataset holds, by index.
    """
    grouped: dict[int, list[PromptRow]] = {}
    for row in rows:
        grouped.setdefault(shard_index(row.row, shard_rows), []).append(row)
    return [
        ShardTask(
            index,
            members,
            {row.row: list(missing[row.row]) for row in members},
            committed.get(index),
        )
        for index, members in sorted(grouped.items())
    ]
