"""The seeds of a batch job: one job seed, each image's seed fixed by (job seed, row, index).

Whatever the chunking, the engine, the concurrency or the resumes, image k of row r gets the
same seed, every seed of a dataset is distinct, and `imgen generate -p seed=<its seed>` makes
the same image again.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest
from click.testing import CliRunner
from pydantic import Field

from batch_support import assert_complete, read_metadata, write_jsonl, write_lines
from imgen import ImageGenerationModel
from imgen.batch import LocalEngine, run_batch
from imgen.batch.seeding import MAX_IMAGES_PER_ROW, row_seed, row_seeds
from imgen.cli import main
from imgen.errors import InvalidInputError
from imgen.images import encode_bytes
from imgen.testing.fake import AsyncFakeImageGeneration, FakeImageGeneration, fake_image

ROWS = 20
SmallSeed = Annotated[int, Field(ge=0, lt=2**32)]


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    # Repeated prompts: only the seed tells their images apart.
    return write_lines(tmp_path / "prompts.txt", *(f"prompt {i % 7}" for i in range(ROWS)))


def seeds_by_image(root: Path) -> dict[tuple[int, int], int]:
    return {(line["row"], line["generation"]): line["seed"] for line in read_metadata(root)}


def test_row_seeds_are_fixed_distinct_and_spaced_for_every_image_of_a_row() -> None:
    seeds = row_seeds(12345, range(100_000))

    assert seeds[17] == row_seed(12345, 17) == row_seeds(12345, [17])[17]
    assert len(set(seeds.values())) == 100_000
    # Image k of a row has its row's seed + k, so rows need room for every image.
    ordered = sorted(seeds.values())
    assert min(b - a for a, b in itertools.pairwise(ordered)) >= MAX_IMAGES_PER_ROW
    assert max(ordered) < 2**60
    # Nearby job seeds give unrelated seeds, not shifted copies of each other's.
    assert not set(seeds.values()) & set(row_seeds(12346, range(100_000)).values())


def test_every_image_has_its_own_seed_in_its_line(tmp_path: Path, prompts_file: Path) -> None:
    out = tmp_path / "out"

    summary = run_batch("fake", prompts_file, out, num_generations=3, generation_kwargs={"seed": 7})

    lines = assert_complete(out, rows=range(1, ROWS + 1), num_generations=3)
    assert {(line["row"], line["generation"]): line["seed"] for line in lines} == {
        (row, k): row_seed(7, row) + k for row in range(1, ROWS + 1) for k in range(3)
    }
    assert len({line["seed"] for line in lines}) == 3 * ROWS
    assert summary.seed == 7
    manifest = json.loads((out / "job.json").read_text())
    assert (manifest["seed"], manifest["generation_kwargs"]) == (7, {})


@pytest.mark.parametrize("chunk_size", [1, 3, 8])
def test_seeds_do_not_depend_on_the_chunk_size(
    tmp_path: Path, prompts_file: Path, chunk_size: int
) -> None:
    out = tmp_path / "out"
    engine = LocalEngine(chunk_size=chunk_size)

    run_batch(
        "fake", prompts_file, out, num_generations=2, generation_kwargs={"seed": 7}, engine=engine
    )

    assert seeds_by_image(out) == {
        (row, k): row_seed(7, row) + k for row in range(1, ROWS + 1) for k in range(2)
    }


@pytest.mark.parametrize("concurrency", [1, 8])
def test_seeds_do_not_depend_on_the_concurrency(
    tmp_path: Path, prompts_file: Path, concurrency: int
) -> None:
    model = AsyncFakeImageGeneration(max_concurrency=concurrency, latency=0.001)

    run_batch(
        model, prompts_file, tmp_path / "out", num_generations=2, generation_kwargs={"seed": 7}
    )

    assert seeds_by_image(tmp_path / "out") == {
        (row, k): row_seed(7, row) + k for row in range(1, ROWS + 1) for k in range(2)
    }


def test_resumed_and_extended_jobs_give_the_seeds_of_a_straight_run(
    tmp_path: Path, prompts_file: Path
) -> None:
    straight, pieces = tmp_path / "straight", tmp_path / "pieces"
    run_batch("fake", prompts_file, straight, num_generations=3, generation_kwargs={"seed": 9})

    # A first run that stopped after some rows, then more images per row, then the rest.
    lines = prompts_file.read_text().splitlines()
    partial = write_lines(tmp_path / "prompts.txt", *lines[:8])
    run_batch("fake", partial, pieces, num_generations=1, generation_kwargs={"seed": 9})
    write_lines(tmp_path / "prompts.txt", *lines)
    run_batch("fake", prompts_file, pieces, num_generations=3)  # the recorded seed is reused

    assert seeds_by_image(pieces) == seeds_by_image(straight)
    for line in read_metadata(straight):
        name = line["file_name"]
        assert (pieces / name).read_bytes() == (straight / name).read_bytes(), name


def test_a_job_given_no_seed_draws_one_keeps_it_and_prints_it(
    tmp_path: Path, prompts_file: Path
) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["batch", "fake", str(prompts_file), "-o", str(out)])
    assert result.exit_code == 0, result.output
    seed = json.loads((out / "job.json").read_text())["seed"]
    assert isinstance(seed, int)
    assert f"Job seed: {seed} " in result.stdout
    assert seeds_by_image(out) == {(row, 0): row_seed(seed, row) for row in range(1, ROWS + 1)}

    again = run_batch("fake", prompts_file, out, num_generations=2)

    assert again.seed == seed
    assert seeds_by_image(out)[3, 1] == row_seed(seed, 3) + 1
    with pytest.raises(InvalidInputError, match=f"made with job seed {seed}, not {seed + 1}"):
        run_batch("fake", prompts_file, out, generation_kwargs={"seed": seed + 1})
    other = run_batch("fake", prompts_file, tmp_path / "other")
    assert other.seed != seed  # a new dataset draws a new seed


def test_regenerating_an_image_from_its_recorded_seed_gives_the_same_pixels(
    tmp_path: Path, prompts_file: Path
) -> None:
    out = tmp_path / "out"
    run_batch(
        FakeImageGeneration(width=32, height=24),
        prompts_file,
        out,
        num_generations=2,
        engine=LocalEngine(chunk_size=3),
    )
    line = next(line for line in read_metadata(out) if (line["row"], line["generation"]) == (5, 1))

    result = CliRunner().invoke(
        main,
        [
            *("generate", "fake", line["prompt"], "-p", f"seed={line['seed']}"),
            *("-O", "width=32", "-O", "height=24", "-o", str(tmp_path / "again")),
        ],
    )

    assert result.exit_code == 0, result.output
    regenerated = Path(result.stdout.strip())
    assert regenerated.read_bytes() == (out / line["file_name"]).read_bytes()


class Seedless(ImageGenerationModel):
    """A backend with no seed parameter."""

    backend_name: ClassVar[str] = "seedless"

    @property
    def model_name(self) -> str:
        return "seedless"

    def generate(
        self, inputs: list[str], num_generations: int = 1, quality: str = "low"
    ) -> list[list[dict[str, Any]]]:
        """Placeholders.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            quality: Recorded only.
        """
        return [
            [
                {
                    "images": [
                        encode_bytes(fake_image(p, k, 8, 8, "png")) for k in range(num_generations)
                    ]
                }
            ]
            for p in inputs
        ]


def test_a_backend_without_a_seed_parameter_records_no_seed(tmp_path: Path) -> None:
    summary = run_batch(Seedless(), ["a fox", "a cat"], tmp_path / "out")

    lines = assert_complete(tmp_path / "out", rows=[1, 2], num_generations=1)
    assert "seed" not in lines[0]
    assert summary.seed is None
    assert json.loads((tmp_path / "out" / "job.json").read_text())["seed"] is None
    assert "Job seed" not in str(summary)


class SmallSeeds(FakeImageGeneration):
    """A fake whose seeds must be 32-bit."""

    def generate(
        self, inputs: list[str], num_generations: int = 1, seed: SmallSeed | list[SmallSeed] = 0
    ) -> list[list[dict[str, Any]]]:
        """32-bit seeds only.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            seed: The first seed, or one per prompt.
        """
        raise AssertionError("never called")


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        (SmallSeeds(), {}, r"seeds from 0 to 2\*\*60 - 1, but SmallSeeds refuses some"),
        (FakeImageGeneration(), {"num_generations": MAX_IMAGES_PER_ROW + 1}, r"at most 1048576"),
        (FakeImageGeneration(), {"generation_kwargs": {"seed": [1]}}, r"one int seed"),
    ],
)
def test_seeds_a_job_cannot_use_are_refused_before_any_work(
    tmp_path: Path, model: FakeImageGeneration, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        run_batch(model, ["a fox"], tmp_path / "out", **options)
    assert not model.is_loaded
    assert not (tmp_path / "out").exists()


def test_a_carried_seed_column_is_refused_in_a_seeded_job(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", {"prompt": "a fox", "seed": 3})

    with pytest.raises(InvalidInputError, match=r"has the column\(s\) 'seed'"):
        run_batch("fake", source, tmp_path / "out")

    run_batch(Seedless(), source, tmp_path / "seedless")  # its own column, with no job seed
    assert read_metadata(tmp_path / "seedless")[0]["seed"] == 3


class IgnoresSeedLists(FakeImageGeneration):
    """Claims to take a seed per prompt, but seeds every prompt with the first one."""

    def generate(
        self, inputs: list[str], num_generations: int = 1, seed: int | list[int] = 0
    ) -> list[list[dict[str, Any]]]:
        """Use only the first seed.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            seed: The first seed, or one per prompt.
        """
        return super().generate(
            inputs, num_generations, seed[0] if isinstance(seed, list) else seed
        )


def test_an_image_made_with_another_seed_than_the_jobs_fails_its_row(tmp_path: Path) -> None:
    """A recorded seed must make its image again; a backend that says otherwise fails."""
    summary = run_batch(
        IgnoresSeedLists(), ["a fox", "a cat"], tmp_path / "out", engine=LocalEngine(chunk_size=2)
    )

    assert (summary.rows_done, summary.rows_failed) == (1, 1)
    error = json.loads((tmp_path / "out" / "errors.jsonl").read_text())["error"]
    assert error.startswith("InvalidOutputError: The backend made image 0 with seed ")
    assert seeds_by_image(tmp_path / "out") == {(1, 0): row_seed(summary.seed or 0, 1)}
