"""The job manifest, `DIR/job.json`: the model and parameters that made a dataset.

A rerun compares its own manifest with the one on disk: the same job resumes, another job's
dataset is refused (unless forced), so two jobs' images never mix in one dataset.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from imgen.base import ImageGenerationModel
from imgen.batch.seeding import draw_job_seed
from imgen.errors import InvalidInputError
from imgen.images import write_atomically

__all__ = ["DATASET_FORMATS", "JobManifest", "resumable_manifest", "settle_manifest"]

FORMAT = "imgen-batch/2"
DATASET_FORMATS = ("imagefolder", "parquet")
DEFAULT_SHARD_ROWS = 1000
logger = logging.getLogger("imgen.batch")


def _plain(value: Any) -> Any:
    """`value` as it reads back from JSON, so a manifest compares equal to its own file."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class JobManifest:
    """What identifies a batch job, and what made its dataset.

    Attributes:
        model: The canonical model spec, `backend:model-id`.
        model_config: The model's `dump()` (secrets are never in it).
        num_generations: Images per row.
        generation_kwargs: The generation kwargs every image was made with.
        prompts: Where the prompts came from.
        prompt_column: The prompt column of .jsonl/.csv rows, if one was chosen.
        seed: The job seed every image's seed derives from (see `imgen.batch.seeding`); None
            for a backend that takes no seed, or until the job draws one.
        dataset_format: "imagefolder" or "parquet".
        shard_rows: The rows of the source each Parquet shard covers (see
            `imgen.batch.shards`); None for an imagefolder, or until the job settles it.
    """

    model: str
    model_config: dict[str, Any]
    num_generations: int
    generation_kwargs: dict[str, Any]
    prompts: str
    prompt_column: str | None
    seed: int | None = None
    dataset_format: str = "imagefolder"
    shard_rows: int | None = None

    @classmethod
    def describe(
        cls,
        model: ImageGenerationModel,
        num_generations: int,
        generation_kwargs: dict[str, Any],
        prompts: str,
        prompt_column: str | None,
        seed: int | None = None,
        dataset_format: str = "imagefolder",
        shard_rows: int | None = None,
    ) -> JobManifest:
        """The manifest of a job about to run; `generation_kwargs` hold no seed."""
        return cls(
            model=model.spec,
            model_config=_plain(model.dump()),
            num_generations=num_generations,
            generation_kwargs=_plain(generation_kwargs),
            prompts=prompts,
            prompt_column=prompt_column,
            seed=seed,
            dataset_format=dataset_format,
            shard_rows=shard_rows,
        )

    @classmethod
    def read(cls, path: Path) -> JobManifest | None:
        """The manifest in `path`, or None when there is none.

        Raises:
            InvalidInputError: The file exists but is not a batch job manifest.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise _unreadable(str(path), exc) from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, where: str) -> JobManifest:
        """The manifest a job.json file holds.

        Raises:
            InvalidInputError: `text` is not a batch job manifest; the message names `where`.
        """
        try:
            data = json.loads(text)
            found = data.pop("format", None)
            if found != FORMAT:
                raise ValueError(
                    f"format {found!r}, expected {FORMAT!r}"
                    + (": an older imgen made it" if str(found).startswith("imgen-batch/") else "")
                )
            return cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise _unreadable(where, exc) from None

    def to_text(self) -> str:
        """The manifest as job.json holds it."""
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2, ensure_ascii=False) + "\n"

    def write(self, path: Path) -> None:
        """Write the manifest atomically."""
        write_atomically(path, self.to_text().encode("utf-8", "backslashreplace"))

    def difference(self, recorded: JobManifest) -> str | None:
        """Why the `recorded` manifest belongs to another job, or None if it is this one.

        A job is its model spec, generation kwargs, seed and dataset format (and shard size).
        A new `num_generations` extends the same job, fields such as concurrency or timeouts do
        not change the images, and a job given no seed or shard size takes the recorded one.
        """
        if recorded.dataset_format != self.dataset_format:
            return (
                f"it is {_a(recorded.dataset_format)} dataset, not {_a(self.dataset_format)} one "
                f"(pass --format {recorded.dataset_format} to resume it)"
            )
        if self.shard_rows is not None and recorded.shard_rows != self.shard_rows:
            return (
                f"its shards cover {recorded.shard_rows} rows each, not {self.shard_rows} (pass "
                f"--shard-rows {recorded.shard_rows}, or none, to resume it)"
            )
        if recorded.model != self.model:
            return f"its images were made by {recorded.model!r}, not {self.model!r}"
        if recorded.generation_kwargs != self.generation_kwargs:
            return (
                f"its images were made with generation kwargs {recorded.generation_kwargs}, "
                f"not {self.generation_kwargs}"
            )
        if self.seed is not None and recorded.seed != self.seed:
            return f"its images were made with job seed {recorded.seed}, not {self.seed}"
        return None


def _a(dataset_format: str) -> str:
    return f"an {dataset_format}" if dataset_format[0] in "aeiou" else f"a {dataset_format}"


def _unreadable(where: str, exc: BaseException) -> InvalidInputError:
    return InvalidInputError(
        f"{where!r} is not a readable imgen batch manifest ({exc}); pass --force "
        "(force=True) to replace the dataset, or choose another output dir."
    )


def resumable_manifest(
    manifest: JobManifest,
    read: Callable[[], JobManifest | None],
    leftovers: Callable[[], str | None],
    location: str,
    *,
    force: bool,
) -> JobManifest | None:
    """The manifest of the dataset at `location` when it is this job's (to resume); None when
    the dataset is new, or another job's that `force` replaces.

    Args:
        manifest: This job's manifest.
        read: Reads the recorded manifest; None when there is none.
        leftovers: Why the location holds a dataset although it has no manifest, or None.
        location: The dataset's location, for messages.
        force: Replace another job's dataset instead of refusing.

    Raises:
        InvalidInputError: The dataset is another job's, or unreadable, and `force` is False.
    """
    try:
        recorded = read()
    except InvalidInputError:
        if force:
            return None
        raise
    if recorded is not None:
        reason = manifest.difference(recorded)
    elif (reason := leftovers()) is None:
        return None
    if reason is None:
        return recorded
    if not force:
        raise InvalidInputError(
            f"Output dir {location!r} holds another job's dataset: {reason}. Pass "
            "--force (force=True) to replace it, or choose another output dir."
        )
    logger.warning("Replacing the dataset in %s: %s.", location, reason)
    return None


def settle_manifest(
    manifest: JobManifest, recorded: JobManifest | None, *, seeded: bool
) -> JobManifest:
    """This job's manifest with what it leaves to the dataset settled: the seed of a seeded job
    (the recorded one, or a new one drawn for a new dataset) and the shard size of a Parquet
    dataset (the recorded one, or the default)."""
    if seeded and manifest.seed is None:
        seed = recorded.seed if recorded is not None else None
        manifest = replace(manifest, seed=draw_job_seed() if seed is None else seed)
    if manifest.dataset_format == "parquet" and manifest.shard_rows is None:
        rows = recorded.shard_rows if recorded is not None else None
        manifest = replace(manifest, shard_rows=rows or DEFAULT_SHARD_ROWS)
    return manifest
