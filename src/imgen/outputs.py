"""The output contract, the same for every backend.

`generate(inputs, num_generations=n)` returns one list per input; that list holds exactly one
dict whose "images" is a list of n base64 strings. Other keys say what the backend knows about
the images: "format", "seeds", "revised_prompts", ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from imgen.errors import ImgenError

__all__ = ["Output", "check_output", "failure_record", "image_metadata", "merge_outputs"]

Output = list[dict[str, Any]]
"""One input's output: `[{"images": [...], ...metadata}]`."""


def check_output(output: Any, num_generations: int) -> Output:
    """Hold one input's output to the contract: `[{"images": [n base64 strings], ...}]`.

    A bare dict is accepted and wrapped, since some older backends return one.

    Raises:
        ImgenError: The backend broke the contract.
    """
    if isinstance(output, dict):
        output = [output]
    if not (isinstance(output, list) and len(output) == 1 and isinstance(output[0], dict)):
        raise ImgenError(f"Backend returned {type(output).__name__}, not a list with one dict.")
    images = output[0].get("images")
    if not isinstance(images, list) or len(images) != num_generations:
        count = len(images) if isinstance(images, list) else "no"
        raise ImgenError(
            f"Backend returned {count} images where num_generations={num_generations}."
        )
    return output


def merge_outputs(parts: Sequence[Output]) -> Output:
    """Merge single-generation outputs into one dict: lists concatenate, equal values stay."""
    merged: dict[str, Any] = {}
    keys = dict.fromkeys(key for part in parts for key in part[0])
    for key in keys:
        values = [part[0].get(key) for part in parts]
        lists = [v for v in values if isinstance(v, list)]
        if len(lists) == len(values):
            merged[key] = [item for v in lists for item in v]
        elif all(v == values[0] for v in values):
            merged[key] = values[0]
        else:
            merged[key] = values
    return [merged]


def failure_record(exc: BaseException) -> Output:
    """The placeholder output of a failed input under `on_error="record"`."""
    return [{"images": [], "error": f"{type(exc).__name__}: {exc}"}]


def _singular(key: str) -> str:
    return key[:-1] if key.endswith("s") and not key.endswith("ss") else key


def image_metadata(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The metadata of each image of one output dict (`{"images": [...], ...}`).

    A list with an entry per image is split across the images under a singular name ("seeds"
    -> "seed", "revised_prompts" -> "revised_prompt"); any other value is shared as is.
    """
    count = len(result["images"])
    shared: dict[str, Any] = {}
    aligned: dict[str, list[Any]] = {}
    for key, value in result.items():
        if key == "images":
            continue
        if isinstance(value, list) and len(value) == count:
            aligned[_singular(key)] = value
        else:
            shared[key] = value
    return [
        {**shared, **{name: values[k] for name, values in aligned.items()}} for k in range(count)
    ]
