"""The output contract, the same for every backend.

`generate(inputs, num_generations=n)` returns one list per input; that list holds exactly one
dict whose "images" is a list of n base64 strings. Other keys say what the backend knows about
the images: "format", "seeds", "revised_prompts", ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from imgen.errors import GenerationError, InvalidOutputError

__all__ = [
    "Output",
    "check_output",
    "check_outputs",
    "failure_record",
    "image_metadata",
    "merge_outputs",
]

Output = list[dict[str, Any]]
"""One input's output: `[{"images": [...], ...metadata}]`."""


def check_output(output: Any, num_generations: int, backend: str = "The backend") -> Output:
    """Hold one input's output to the contract: `[{"images": [n base64 strings], ...}]`.

    A bare dict is accepted and wrapped, since some older backends return one.

    Args:
        output: What the backend returned for one input.
        num_generations: The images asked for.
        backend: Who returned it, for the message (e.g. the class name).

    Raises:
        InvalidOutputError: The backend broke the contract.
    """
    if isinstance(output, dict):
        output = [output]
    if not (isinstance(output, list) and len(output) == 1 and isinstance(output[0], dict)):
        shape = f"a list of {len(output)}" if isinstance(output, list) else type(output).__name__
        raise InvalidOutputError(
            f"{backend} returned {shape} for one input, not a list holding one dict."
        )
    images = output[0].get("images")
    if not isinstance(images, list) or len(images) != num_generations:
        count = len(images) if isinstance(images, list) else "no"
        raise InvalidOutputError(
            f"{backend} returned {count} images where num_generations={num_generations}."
        )
    for index, image in enumerate(images):
        if not (isinstance(image, str) and image):
            raise InvalidOutputError(
                f"{backend} returned images[{index}] as {type(image).__name__}, not a "
                "non-empty base64 string (imgen.images.encode_bytes makes one)."
            )
    return output


def check_outputs(
    outputs: Any, num_inputs: int, num_generations: int, backend: str = "The backend"
) -> list[Output]:
    """Hold a sync backend's whole batch to the contract: one checked output per input.

    Outputs that break the contract fail only their own input, as in the async engine.

    Raises:
        InvalidOutputError: `outputs` is not a list with one entry per input.
        GenerationError: Some outputs broke the contract; it holds the others.
    """
    if not isinstance(outputs, list) or len(outputs) != num_inputs:
        found = f"{len(outputs)} outputs" if isinstance(outputs, list) else type(outputs).__name__
        raise InvalidOutputError(
            f"{backend}.generate returned {found} for {num_inputs} inputs; it must return a "
            "list with one output per input."
        )
    results: list[Output | None] = []
    errors: dict[int, BaseException] = {}
    for index, output in enumerate(outputs):
        try:
            results.append(check_output(output, num_generations, f"{backend}.generate"))
        except InvalidOutputError as exc:
            results.append(None)
            errors[index] = exc
    if errors:
        raise GenerationError(results, errors)
    return results  # type: ignore[return-value]  # no None is left


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
