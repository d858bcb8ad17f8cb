"""`--format parquet` with the local engine: shards `datasets` loads, fixed by row ranges, and
resumed a shard at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from batch_support import read_metadata, write_jsonl, write_lines
from imgen.batch import LocalEngine, run_batch
from imgen.cli import main
from imgen.errors import InvalidInputError
from imgen.testing import AsyncFakeImageGeneration, FakeImageGeneration
from parquet_support import (
    assert_complete_parquet,
    assert_images_are_the_fakes,
    checksums,
    committed,
    read_rows,
    shard_files,
)

ROWS = 10


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    records = [
        {"prompt": f"a lantern, number {i}", "style": "ink" if i % 2 else "oil", "id": i}
        for i in range(ROWS)
    ]
    return write_jsonl(tmp_path / "prompts.jsonl", *records)


def parquet_job(model: Any, prompts: Path, out: Path, **options: Any) -> Any:
    options.setdefault("generation_kwargs", {"seed": 7})
    return run_batch(model, prompts, out, format="parquet", **options)


def test_shards_load_with_datasets_as_decoded_images_with_the_imagefolder_columns(
    tmp_path: Path, prompts: Path
) -> None:
    import datasets

    model = AsyncFakeImageGeneration(model="batch")
    out = tmp_path / "parquet"
    summary = parquet_job(model, prompts, out, num_generations=2, shard_rows=4)
    run_batch(model, prompts, tmp_path / "folder", num_generations=2, generation_kwargs={"seed": 7})

    assert (summary.rows_done, summary.images_written) == (ROWS, 2 * ROWS)
    assert [path.name for path in shard_files(out)] == [
        "train-00000.parquet",
        "train-00001.parquet",
        "train-00002.parquet",
    ]
    records = assert_complete_parquet(out, range(1, ROWS + 1), 2, shard_rows=4)
    assert_images_are_the_fakes(out, records)
    by_dir = datasets.load_dataset(str(out), split="train")
    by_files = datasets.load_dataset(
        "parquet", data_files=str(out / "data" / "*.parquet"), split="train"
    )
    lines = sorted(read_metadata(tmp_path / "folder"), key=lambda r: (r["row"], r["generation"]))
    for dataset in (by_dir, by_files):
        assert isinstance(dataset.features["image"], datasets.Image)
        assert len(dataset) == 2 * ROWS
        assert dataset[5]["image"].size == (64, 64)  # decoded: a PIL image
        # The same columns as the imagefolder's metadata lines, the image in file_name's place.
        assert set(dataset.column_names) == {*lines[0], "image"} - {"file_name"}
    for line, record in zip(lines, by_dir.remove_columns("image"), strict=True):
        assert {k: v for k, v in line.items() if k != "file_name"} == record
    for line, record in zip(lines, records, strict=True):
        assert (tmp_path / "folder" / line["file_name"]).read_bytes() == record["image"]["bytes"]


@pytest.mark.parametrize(
    ("straight", "pieces"),
    [
        # async: many requests in flight, rows completing out of order; then one at a time
        (
            (AsyncFakeImageGeneration(max_concurrency=8), None),
            (AsyncFakeImageGeneration(max_concurrency=1), None),
        ),
        # sync: chunks of 7 prompts per call, then of 2
        ((FakeImageGeneration(), 7), (FakeImageGeneration(), 2)),
    ],
)
def test_the_shards_do_not_depend_on_concurrency_batching_or_resume(
    tmp_path: Path, prompts: Path, straight: tuple[Any, int | None], pieces: tuple[Any, int | None]
) -> None:
    def engine(chunk_size: int | None) -> LocalEngine:
        return LocalEngine(chunk_size=chunk_size)

    whole = tmp_path / "whole"
    parquet_job(straight[0], prompts, whole, shard_rows=3, engine=engine(straight[1]))
    # A run stopped short (its source ends at row 5, in the middle of shard 1), then resumed.
    resumed_dir = tmp_path / "pieces"
    first_rows = tmp_path / "first.jsonl"
    first_rows.write_text("".join(prompts.read_text().splitlines(keepends=True)[:5]))
    parquet_job(pieces[0], first_rows, resumed_dir, shard_rows=3, engine=engine(pieces[1]))
    resumed = parquet_job(pieces[0], prompts, resumed_dir, engine=engine(pieces[1]))

    assert (resumed.rows_skipped, resumed.rows_done) == (5, 5)
    assert len(checksums(whole)) == 4
    assert checksums(resumed_dir) == checksums(whole)


def test_failed_rows_are_recorded_and_their_shard_completed_by_the_next_run(
    tmp_path: Path, prompts: Path
) -> None:
    out = tmp_path / "out"
    flaky = AsyncFakeImageGeneration(failure_rate=0.5, failure_seed=3, max_retries=0)
    first = parquet_job(flaky, prompts, out, shard_rows=4)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    shards_before = committed(out)

    assert 0 < first.rows_failed < ROWS
    assert first.rows_done + first.rows_failed == ROWS
    assert sorted(e["row"] for e in errors) == sorted(
        set(range(1, ROWS + 1)) - {r["row"] for r in read_rows(out)}
    )
    assert {e["stage"] for e in errors} == {"generation"}

    second = parquet_job(AsyncFakeImageGeneration(), prompts, out)

    assert second.rows_done == first.rows_failed
    assert second.complete
    assert (out / "errors.jsonl").read_text() == ""
    records = assert_complete_parquet(out, range(1, ROWS + 1), 1, shard_rows=4)
    assert_images_are_the_fakes(out, records)
    straight = tmp_path / "straight"
    parquet_job(AsyncFakeImageGeneration(), prompts, straight, shard_rows=4)
    assert checksums(out) == checksums(straight)
    assert [s["sha256"] for s in committed(out)] != [s["sha256"] for s in shards_before]


def test_more_images_per_row_rewrite_each_shard_with_its_old_images_kept(
    tmp_path: Path, prompts: Path
) -> None:
    out = tmp_path / "out"
    parquet_job(FakeImageGeneration(), prompts, out, shard_rows=5)
    before = {(r["row"], r["generation"]): r["image"]["bytes"] for r in read_rows(out)}

    more = parquet_job(FakeImageGeneration(), prompts, out, num_generations=3)

    assert (more.rows_done, more.images_written) == (ROWS, 2 * ROWS)
    records = assert_complete_parquet(out, range(1, ROWS + 1), 3, shard_rows=5)
    assert {k: v for k, v in before.items()} == {
        (r["row"], r["generation"]): r["image"]["bytes"] for r in records if r["generation"] == 0
    }
    assert [d["rows"] for d in committed(out)] == [[[1, 5, 3]], [[6, 10, 3]]]


def test_a_torn_shard_and_leftovers_are_cleared_and_the_rows_made_again(
    tmp_path: Path, prompts: Path
) -> None:
    out = tmp_path / "out"
    parquet_job(FakeImageGeneration(), prompts, out, shard_rows=4)
    straight = checksums(out)
    torn = out / "data" / "train-00001.parquet"
    torn.write_bytes(torn.read_bytes()[:100])  # what a filesystem without atomic renames leaves
    (out / "data" / ".train-00002.parquet.1-abc.tmp").write_bytes(b"a spool file")
    (out / ".shards.json.0123abcd.tmp").write_bytes(b'{"format": "imgen-sh')  # a torn write
    (out / "data" / "train-00007.parquet").write_bytes(b"written, never committed")

    again = parquet_job(FakeImageGeneration(), prompts, out)

    assert (again.rows_skipped, again.rows_done) == (6, 4)  # the rows of the torn shard
    assert checksums(out) == straight
    assert_complete_parquet(out, range(1, ROWS + 1), 1, shard_rows=4)


def test_shards_whose_columns_disagree_are_given_one_schema(tmp_path: Path) -> None:
    import datasets

    records: list[dict[str, Any]] = [{"prompt": f"p {i}", "label": i} for i in range(3)]
    records += [{"prompt": f"p {i}", "label": f"L{i}", "note": "late"} for i in range(3, 6)]
    source = write_jsonl(tmp_path / "mixed.jsonl", *records)
    out = tmp_path / "out"

    parquet_job(FakeImageGeneration(), source, out, shard_rows=3)

    schemas = [pq.read_schema(str(path)) for path in shard_files(out)]
    assert len(schemas) == 2
    assert schemas[0].remove_metadata().equals(schemas[1].remove_metadata())
    assert str(schemas[0].field("label").type) == "string"
    loaded = datasets.load_dataset(str(out), split="train")
    assert loaded["label"] == ["0", "1", "2", "L3", "L4", "L5"]
    assert loaded["note"] == [None, None, None, "late", "late", "late"]


def test_a_resumed_job_keeps_its_shard_size_and_refuses_another(
    tmp_path: Path, prompts: Path
) -> None:
    out = tmp_path / "out"
    parquet_job(FakeImageGeneration(), prompts, out, shard_rows=4)

    assert parquet_job(FakeImageGeneration(), prompts, out).rows_skipped == ROWS

    with pytest.raises(
        InvalidInputError, match=r"shards cover 4 rows each, not 5 \(pass --shard-rows 4"
    ):
        parquet_job(FakeImageGeneration(), prompts, out, shard_rows=5)
    with pytest.raises(
        InvalidInputError,
        match=r"it is a parquet dataset, not an imagefolder one \(pass --format parquet to resume",
    ):
        run_batch(FakeImageGeneration(), prompts, out, generation_kwargs={"seed": 7})


def test_a_changed_prompt_is_refused_naming_its_shard(tmp_path: Path, prompts: Path) -> None:
    out = tmp_path / "out"
    parquet_job(FakeImageGeneration(), prompts, out, shard_rows=4)
    lines = prompts.read_text().splitlines()
    lines[5] = json.dumps({"prompt": "a changed prompt", "style": "ink", "id": 5})
    write_lines(prompts, *lines)

    with pytest.raises(InvalidInputError, match=r"prompts of rows 5 to 8 .* changed"):
        parquet_job(FakeImageGeneration(), prompts, out)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"shard_rows": 10}, "--shard-rows (shard_rows) applies to --format parquet"),
        ({"format": "webdataset"}, "Unknown dataset format 'webdataset'"),
        ({"format": "parquet", "shard_rows": 0}, "shard_rows must be a whole number >= 1"),
    ],
)
def test_options_that_do_not_fit_the_format_are_refused(
    tmp_path: Path, prompts: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_batch(FakeImageGeneration(), prompts, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_an_imagefolder_goes_to_a_local_folder_only(tmp_path: Path, prompts: Path) -> None:
    with pytest.raises(InvalidInputError, match="pass --format parquet"):
        run_batch(FakeImageGeneration(), prompts, "s3://bucket/prefix")

    summary = run_batch(FakeImageGeneration(), prompts, f"file://{tmp_path / 'folder'}")
    assert summary.output_dir == tmp_path / "folder"
    assert len(read_metadata(tmp_path / "folder")) == ROWS


def test_the_cli_writes_parquet_shards(tmp_path: Path, prompts: Path) -> None:
    out = tmp_path / "out"
    command = ["batch", "fake", str(prompts), "-o", str(out), "-p", "seed=3", "--json"]

    result = CliRunner().invoke(main, [*command, "--format", "parquet", "--shard-rows", "6"])
    wrong = CliRunner().invoke(main, [*command, "--shard-rows", "6"])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["rows_done"], summary["dataset_format"]) == (ROWS, "parquet")
    assert len(shard_files(out)) == 2
    assert wrong.exit_code == 2
    assert "--shard-rows applies to --format parquet" in wrong.output


def test_force_replaces_an_imagefolder_with_shards_and_back(tmp_path: Path, prompts: Path) -> None:
    out = tmp_path / "out"
    run_batch(FakeImageGeneration(), prompts, out)

    with pytest.raises(
        InvalidInputError,
        match=r"it is an imagefolder dataset, not a parquet one \(pass --format imagefolder",
    ):
        parquet_job(FakeImageGeneration(), prompts, out)
    parquet_job(FakeImageGeneration(), prompts, out, shard_rows=5, force=True)

    assert not (out / "images").exists()
    assert not (out / "metadata.jsonl").exists()
    assert_complete_parquet(out, range(1, ROWS + 1), 1, shard_rows=5)

    run_batch(FakeImageGeneration(), prompts, out, force=True)

    assert not (out / "data").exists()
    assert not (out / "shards.json").exists()
    assert len(read_metadata(out)) == ROWS
