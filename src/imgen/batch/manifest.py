"""The job manifest, `DIR/job.json`: the model and parameters that made a dataset.

A rerun compares its own manifest with the one on disk: the same job resumes, another job's
dataset is refused (unless forced), so two jobs' images never mix in one dataset.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imgen.base import ImageGenerationModel
from imgen.errors import InvalidInputError
from imgen.images import write_atomically

__all__ = ["JobManifest"]

FORMAT = "imgen-batch/2"


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
    """

    model: str
    model_config: dict[str, Any]
    num_generations: int
    generation_kwargs: dict[str, Any]
    prompts: str
    prompt_column: str | None
    seed: int | None = None

    @classmethod
    def describe(
        cls,
        model: ImageGenerationModel,
        num_generations: int,
        generation_kwargs: dict[str, Any],
        prompts: str,
        prompt_column: str | None,
        seed: int | None = None,
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
        )

    @classmethod
    def read(cls, path: Path) -> JobManifest | None:
        """The manifest in `path`, or None when there is none.

        Raises:
            InvalidInputError: The file exists but is not a batch job manifest.
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found = data.pop("format", None)
            if found != FORMAT:
                raise ValueError(
                    f"format {found!r}, expected {FORMAT!r}"
                    + (": an older imgen made it" if str(found).startswith("imgen-batch/") else "")
                )
            return cls(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidInputError(
                f"{str(path)!r} is not a readable imgen batch manifest ({exc}); pass --force "
                "(force=True) to replace the dataset, or choose another output dir."
            ) from None

    def write(self, path: Path) -> None:
        """Write the manifest atomically."""
        text = json.dumps({"format": FORMAT, **asdict(self)}, indent=2, ensure_ascii=False)
        write_atomically(path, (text + "\n").encode("utf-8", "backslashreplace"))

    def difference(self, recorded: JobManifest) -> str | None:
        """Why the `recorded` manifest belongs to another job, or None if it is this one.

        A job is its model spec, generation kwargs and seed. A new `num_generations` extends
        the same job, fields such as concurrency or timeouts do not change the images, and a
        job given no seed takes the recorded one.
        """
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
