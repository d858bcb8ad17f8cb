"""The seeds of a batch job: one job seed, and from it a seed for every image.

The seed of image k of row r depends on the job seed S, r and k only, never on how the rows
were chunked, which engine or worker made them, or where a resumed run started:

    seed(S, r, k) = ((a * r + b) mod 2**40) * 2**20 + k

where `a` (odd) and `b` come from the BLAKE2b hash of S. For a given S, `r -> (a * r + b) mod
2**40` is a bijection, so every (row, image) pair of a dataset gets its own seed, below 2**60,
for up to 2**40 rows and 2**20 images per row; and jobs with nearby seeds (1, 2, 3...) get
unrelated image seeds, not shifted copies of each other's.

A row's images are made in one call with the row's seed, `seed(S, r, 0)`: a backend gives
image k `seed + k`. So `imgen generate MODEL PROMPT -p seed=<an image's seed>` makes that image
again.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from imgen.base import ImageGenerationModel
from imgen.errors import InvalidInputError
from imgen.seeds import SEED, check_prompt_seeds

__all__ = ["MAX_IMAGES_PER_ROW", "check_seed_range", "draw_job_seed", "row_seed", "row_seeds"]

_ROW_BITS = 40
_IMAGE_BITS = 20
MAX_IMAGES_PER_ROW = 2**_IMAGE_BITS
# Drawn job seeds stay short, so they are easy to read back and retype.
_DRAWN_SEED_LIMIT = 2**32


def draw_job_seed() -> int:
    """A fresh job seed, for a job that was given none."""
    return secrets.randbelow(_DRAWN_SEED_LIMIT)


def _mixing(job_seed: int) -> tuple[int, int]:
    digest = hashlib.blake2b(f"imgen-batch-seed:{job_seed}".encode(), digest_size=16).digest()
    mask = 2**_ROW_BITS - 1
    multiplier = int.from_bytes(digest[:8], "big") & mask | 1
    offset = int.from_bytes(digest[8:], "big") & mask
    return multiplier, offset


def row_seeds(job_seed: int, rows: Iterable[int]) -> dict[int, int]:
    """Each row's seed: the seed of its image 0; image k of the row has this seed + k."""
    multiplier, offset = _mixing(job_seed)
    mask = 2**_ROW_BITS - 1
    return {row: ((multiplier * row + offset) & mask) << _IMAGE_BITS for row in rows}


def row_seed(job_seed: int, row: int) -> int:
    """The seed of image 0 of `row`; image k of the row has this seed + k."""
    return row_seeds(job_seed, [row])[row]


def check_seed_range(model: ImageGenerationModel, num_generations: int) -> None:
    """Fail before any work when the backend cannot take every seed a job may give it.

    Raises:
        InvalidInputError: Too many images per row for distinct seeds, or the backend's
            `seed` parameter refuses seeds below 2**60.
    """
    if num_generations > MAX_IMAGES_PER_ROW:
        raise InvalidInputError(
            f"A seeded batch job makes at most {MAX_IMAGES_PER_ROW} images per row, not "
            f"{num_generations}: split the job."
        )
    extremes = [0, 2 ** (_ROW_BITS + _IMAGE_BITS) - 1]
    try:
        check_prompt_seeds(model, len(extremes), {SEED: extremes})
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"Batch jobs give images seeds from 0 to 2**{_ROW_BITS + _IMAGE_BITS} - 1, but "
            f"{type(model).__name__} refuses some of them ({exc})."
        ) from None
