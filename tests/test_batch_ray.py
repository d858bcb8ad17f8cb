"""The Ray engine on a local Ray instance: the same dataset contract as the local engine.

Marked `ray` (startup takes seconds), so it can run in a session of its own: `pytest -m ray`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_support import assert_complete, read_metadata, write_jsonl, write_lines
from imgen.batch import LocalEngine, RayEngine, run_batch
from imgen.batch.seeding import row_seed
from imgen.testing.fake import FakeImageGeneration

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.usefixtures("local_ray")
def test_the_ray_engine_writes_the_same_dataset_and_resumes(tmp_path: Path) -> None:
    rows = [{"prompt": f"prompt {i}", "id": i} for i in range(12)]
    rows[5] = {"id": 5}  # a bad row is skipped, as with the local engine
    source = write_jsonl(tmp_path / "p.jsonl", *rows)
    out = tmp_path / "out"
    engine = RayEngine(num_actors=2, batch_size=3)
    model = FakeImageGeneration(width=16, height=16)

    options = {"generation_kwargs": {"seed": 3}, "engine": engine}

    summary = run_batch(model, source, out, num_generations=2, **options)  # type: ignore[arg-type]

    assert (summary.rows_done, summary.rows_failed, len(summary.bad_rows)) == (11, 0, 1)
    lines = assert_complete(out, rows=[r for r in range(1, 13) if r != 6], num_generations=2)
    assert {line["model"] for line in lines} == {"fake:fake-v1"}
    assert {(line["row"], line["generation"]): line["seed"] for line in lines}[4, 1] == (
        row_seed(3, 4) + 1
    )
    assert {line["row"]: line["id"] for line in lines}[12] == 11
    assert not model.is_loaded  # the actors loaded their own copies

    again = run_batch(model, source, out, num_generations=3, **options)  # type: ignore[arg-type]

    assert (again.rows_done, again.rows_skipped, again.images_written) == (11, 0, 11)
    assert len(read_metadata(out)) == 33


@pytest.mark.usefixtures("local_ray")
def test_ray_and_local_engines_make_the_same_images_with_the_same_seeds(tmp_path: Path) -> None:
    prompts = write_lines(tmp_path / "p.txt", *(f"prompt {i % 3}" for i in range(10)))
    model = FakeImageGeneration(width=16, height=16)
    options: dict[str, Any] = {"num_generations": 2, "generation_kwargs": {"seed": 11}}

    run_batch(
        model, prompts, tmp_path / "ray", engine=RayEngine(num_actors=2, batch_size=3), **options
    )
    run_batch(model, prompts, tmp_path / "local", engine=LocalEngine(chunk_size=8), **options)

    ray_lines = assert_complete(tmp_path / "ray", rows=range(1, 11), num_generations=2)
    local_lines = assert_complete(tmp_path / "local", rows=range(1, 11), num_generations=2)
    by_image = {(line["row"], line["generation"]): line["seed"] for line in ray_lines}
    assert by_image == {(line["row"], line["generation"]): line["seed"] for line in local_lines}
    assert len(set(by_image.values())) == 20
    for line in ray_lines:
        name = line["file_name"]
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
