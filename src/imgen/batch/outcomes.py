"""One prompt's outcome: its output, or why it failed; never an exception that sinks a chunk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imgen.base import AsyncImageGenerationModel, ImageGenerationModel
from imgen.errors import GenerationError

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


def _failure(exc: BaseException) -> Outcome:
    return Outcome(error=f"{type(exc).__name__}: {exc}")


def _settle(output: Sequence[Mapping[str, Any]]) -> Outcome:
    first = dict(output[0])
    if first.get("error") is not None:  # a model with on_error="record" reports, not raises
        return Outcome(error=str(first["error"]))
    return Outcome(output=first)


def generate_outcomes(
    model: ImageGenerationModel,
    prompts: list[str],
    num_generations: int,
    generation_kwargs: Mapping[str, Any],
) -> list[Outcome]:
    """Generate for a chunk of prompts in one call; one outcome per prompt, in order.

    An async model keeps the prompts that completed when others fail. When a sync model's call
    fails as a whole, its prompts are tried one by one, so a bad prompt fails only itself.
    """
    try:
        outputs = model.generate_outputs(prompts, num_generations, **generation_kwargs)
    except GenerationError as exc:
        return [
            _settle(result) if result is not None else _failure(exc.errors[index])
            for index, result in enumerate(exc.results)
        ]
    except Exception as exc:
        if len(prompts) == 1:
            return [_failure(exc)]
        return [
            outcome
            for prompt in prompts
            for outcome in generate_outcomes(model, [prompt], num_generations, generation_kwargs)
        ]
    return [_settle(output) for output in outputs]


async def agenerate_outcome(
    model: AsyncImageGenerationModel,
    prompt: str,
    num_generations: int,
    generation_kwargs: Mapping[str, Any],
) -> Outcome:
    """Generate for one prompt through the model's engine (retries, timeout, its own loop)."""
    try:
        outputs = await model.agenerate_outputs([prompt], num_generations, **generation_kwargs)
    except GenerationError as exc:
        return _failure(exc.errors[0])
    except Exception as exc:
        return _failure(exc)
    return _settle(outputs[0])
