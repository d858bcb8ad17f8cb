"""One row's outcome: its output, or why it failed; never an exception that sinks a chunk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imgen.base import AsyncImageGenerationModel, ImageGenerationModel
from imgen.batch.inputs import PromptRow
from imgen.errors import GenerationError, GenerationInterrupted, ImgenError, mask_secrets
from imgen.outputs import check_output
from imgen.runtime_parameters import secret_values
from imgen.seeds import SEED

__all__ = ["Outcome", "agenerate_outcome", "generate_outcomes"]


@dataclass(frozen=True)
class Outcome:
    """What became of one prompt.

    Attributes:
        output: Its output, `{"images": [b64, ...], ...metadata}`, when it succeeded.
        error: `"<type>: <message>"` when it failed.
    """

    output: dict[str, Any] | None = None
    error: str | None = None


def _failure(model: ImageGenerationModel, error: BaseException | str) -> Outcome:
    """A failed row; the model's secrets are masked: errors.jsonl is a file users share."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return Outcome(error=mask_secrets(text, secret_values(model)))


def _settle(model: ImageGenerationModel, output: Any, num_generations: int) -> Outcome:
    try:
        first = dict(check_output(output, num_generations)[0])
    except ImgenError as exc:  # a backend that broke the output contract fails this row only
        return _failure(model, exc)
    if first.get("error") is not None:  # a model with on_error="record" reports, not raises
        return _failure(model, str(first["error"]))
    return Outcome(output=first)


def _seeded(kwargs: Mapping[str, Any], rows: Sequence[PromptRow]) -> Mapping[str, Any]:
    """The kwargs of a call for `rows`: with each row's own seed, in a seeded job."""
    if rows[0].seed is None:  # a job seeds all its rows or none
        return kwargs
    return {**kwargs, SEED: [row.seed for row in rows]}


def generate_outcomes(
    model: ImageGenerationModel,
    rows: Sequence[PromptRow],
    num_generations: int,
    generation_kwargs: Mapping[str, Any],
) -> list[Outcome]:
    """Generate for a chunk of rows in one call; one outcome per row, in order.

    An async model keeps the rows that completed when others fail. When a sync model's call
    fails as a whole, its rows are tried one by one, so a bad row fails only itself.

    Raises:
        GenerationInterrupted: The model was interrupted: the job is stopping.
    """
    try:
        outputs = model.generate_outputs(
            [row.prompt for row in rows], num_generations, **_seeded(generation_kwargs, rows)
        )
    except GenerationInterrupted:
        raise
    except GenerationError as exc:
        return [
            _settle(model, result, num_generations)
            if result is not None
            else _failure(model, exc.errors[i])
            for i, result in enumerate(exc.results)
        ]
    except Exception as exc:
        if len(rows) == 1:
            return [_failure(model, exc)]
        return [
            outcome
            for row in rows
            for outcome in generate_outcomes(model, [row], num_generations, generation_kwargs)
        ]
    return [_settle(model, output, num_generations) for output in outputs]


async def agenerate_outcome(
    model: AsyncImageGenerationModel,
    row: PromptRow,
    num_generations: int,
    generation_kwargs: Mapping[str, Any],
) -> Outcome:
    """Generate for one row through the model's engine (retries, timeout, its own loop)."""
    kwargs = generation_kwargs if row.seed is None else {**generation_kwargs, SEED: row.seed}
    try:
        outputs = await model.agenerate_outputs([row.prompt], num_generations, **kwargs)
    except GenerationError as exc:
        return _failure(model, exc.errors[0])
    except Exception as exc:
        return _failure(model, exc)
    return _settle(model, outputs[0], num_generations)
