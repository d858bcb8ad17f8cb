"""A row's output as dataset records: each image's bytes and its metadata, checked.

Both dataset formats describe an image the same way, so an imagefolder's metadata line and a
Parquet shard's row hold the same fields: `prompt`, `model`, `row`, `generation`, the image's
`seed` in a seeded job, then the image's own metadata from the backend, the generation kwargs
and the row's carried fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from imgen.batch.inputs import PromptRow
from imgen.batch.manifest import JobManifest
from imgen.errors import InvalidInputError, InvalidOutputError, brief_repr
from imgen.images import EXTENSIONS, decode_bytes, detect_format
from imgen.outputs import image_metadata

__all__ = ["FIXED_COLUMNS", "RESERVED_COLUMNS", "SEED_COLUMN", "ImageRecord", "image_records"]

FIXED_COLUMNS = ("prompt", "model", "row", "generation")
SEED_COLUMN = "seed"
# An imagefolder's `file_name` and a Parquet dataset's `image` column hold the image itself
# (`datasets` turns file_name into an "image" column), so no metadata column may take them.
RESERVED_COLUMNS = frozenset({*FIXED_COLUMNS, "file_name", "image"})
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class ImageRecord:
    """One image of a row, ready to be written.

    Attributes:
        data: The image's bytes, as the backend sent them.
        name: Its file name: `<row:06d>-<k>.<ext>`, with the extension of its real format.
        metadata: Its metadata, as it reads back from JSON.
    """

    data: bytes
    name: str
    metadata: dict[str, Any]


def image_records(
    row: PromptRow, output: Mapping[str, Any], generations: Iterable[int], manifest: JobManifest
) -> list[ImageRecord]:
    """The images `generations` of a row's output, checked; all of them or an error.

    Args:
        row: The row the output is for.
        output: Its output: `{"images": [b64, ...], ...metadata}`.
        generations: Which of its images to take (those the dataset lacks).
        manifest: The job's manifest (model spec, kwargs, images per row).

    Raises:
        InvalidOutputError: The output lacks an image, an image is not base64 or not a PNG,
            JPEG, WebP or GIF, or its metadata cannot be saved as JSON (a row failure: the
            backend's fault).
    """
    images = output.get("images")
    expected = manifest.num_generations
    if not isinstance(images, list) or len(images) != expected:
        found = len(images) if isinstance(images, list) else "no"
        raise InvalidOutputError(
            f"The backend returned {found} images for row {row.row}, not {expected}."
        )
    per_image = image_metadata(output)
    records = []
    for k in generations:
        data, extension = _image_file(images[k], k)
        metadata: dict[str, Any] = {
            "prompt": row.prompt,
            "model": manifest.model,
            "row": row.row,
            "generation": k,
        }
        if row.seed is not None:
            metadata[SEED_COLUMN] = _job_image_seed(row.seed + k, per_image[k], k)
        # The image's own metadata says more than the kwargs ("seed" of this image rather
        # than the base seed). Carried fields come last; they may not reuse a fixed column
        # or a kwarg name (checked up front).
        for part in (per_image[k], manifest.generation_kwargs, row.fields):
            for key, value in part.items():
                metadata.setdefault(key, value)
        records.append(ImageRecord(data, f"{row.row:06d}-{k}.{extension}", _saveable(metadata)))
    return records


def _image_file(image: Any, k: int) -> tuple[bytes, str]:
    """The bytes and file extension of image `k` of an output, if a dataset can hold it.

    Raises:
        InvalidOutputError: Not a base64 string, or not a PNG, JPEG, WebP or GIF image.
    """
    if not isinstance(image, str):
        raise InvalidOutputError(
            f"Image {k} is a {type(image).__name__}, not a base64 string: {brief_repr(image, 40)}"
        )
    try:
        data = decode_bytes(image)
    except InvalidInputError as exc:
        problem = f"Image {k}: {exc}"
    else:
        extension = EXTENSIONS.get(detect_format(data) or "")
        if extension is not None:
            return data, extension
        problem = (
            f"Image {k} is {len(data)} bytes of no known image format (PNG, JPEG, WebP or GIF); "
            f"it starts with {data[:12]!r}."
        )
    raise InvalidOutputError(problem)


def _job_image_seed(seed: int, metadata: Mapping[str, Any], k: int) -> int:
    """The seed the job gave image `k`, checked against the one the backend reports, if any.

    Raises:
        InvalidOutputError: The backend says it used another seed: the image could not be made
            again from the seed the dataset would record.
    """
    reported = metadata.get(SEED_COLUMN)
    if isinstance(reported, int) and reported != seed:
        raise InvalidOutputError(
            f"The backend made image {k} with seed {reported}, not with the seed {seed} it was "
            "given: its seed handling is broken."
        )
    return seed


def _saveable(record: dict[str, Any]) -> dict[str, Any]:
    """`record` as it reads back from JSON: values JSON cannot hold become text, and text
    UTF-8 cannot hold (a lone surrogate, which `datasets` would refuse to load) gets U+FFFD in
    its place. So both formats hold the same values, with the same types.

    Raises:
        InvalidOutputError: The record cannot be saved as JSON at all (a circular value).
    """
    try:
        text = json.dumps(record, ensure_ascii=False, default=str)
    except (TypeError, ValueError) as exc:
        problem = f"The image's metadata cannot be saved as JSON: {exc}"
    else:
        return dict(json.loads(_LONE_SURROGATE.sub("\ufffd", text)))
    raise InvalidOutputError(problem)
