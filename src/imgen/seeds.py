"""Per-prompt seeds: one generate call, each prompt with a seed of its own.

Every backend that declares a `seed` generation parameter takes, through `generate_outputs`
and `agenerate_outputs`, either one int (its own meaning, as always) or a list holding one
seed per prompt. With a list, prompt i's image k is made with `seed[i] + k`, exactly as a call
for that prompt alone with `seed=seed[i]` makes it. The core checks the list and delivers it:

- async backends get each prompt's own int, since `agenerate` makes one prompt (and, when the
  engine fans a prompt out into single-image calls, image k gets `seed + k`);
- sync backends that set `_prompt_seeds_supported = True` get the list in one `generate`
  call (diffusers batches prompts, and seeds each image with its own generator);
- other sync backends get one `generate` call per prompt, each with its int.

Batch jobs rely on it to give every row seeds of its own in whatever chunks they run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeGuard

from pydantic import TypeAdapter, ValidationError

from imgen.errors import InvalidInputError, InvalidOutputError
from imgen.validation import kwarg_adapter

if TYPE_CHECKING:
    from imgen.base import ImageGenerationModel

__all__ = [
    "SEED",
    "check_prompt_seeds",
    "generate_by_prompt",
    "kwargs_by_prompt",
    "takes_seed",
    "with_image_seed",
]

SEED = "seed"
"""The generation parameter that seeds a backend."""


def takes_seed(model: ImageGenerationModel) -> bool:
    """Whether the model's `generate` (`agenerate`) declares a `seed` parameter."""
    named, _ = model._kwarg_parameters()
    return SEED in named


def _is_seed_list(value: Any) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    return isinstance(value, list | tuple)


def check_prompt_seeds(
    model: ImageGenerationModel, count: int, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Validate generation kwargs for a call of `count` prompts; a seed list is checked here.

    Returns:
        The checked kwargs; a seed list comes back as a list of checked ints.

    Raises:
        InvalidInputError: A bad kwarg, a seed list whose length is not `count`, a bad seed in
            it (named by position), or a seed list for a backend that takes no seed.
    """
    seeds = kwargs.get(SEED)
    if not _is_seed_list(seeds):
        return model._check_generation_kwargs(kwargs)
    owner = type(model).__name__
    checked = model._check_generation_kwargs({k: v for k, v in kwargs.items() if k != SEED})
    if not takes_seed(model):
        raise InvalidInputError(f"{owner} takes no seed, so it cannot take one seed per prompt.")
    if len(seeds) != count:
        raise InvalidInputError(
            f"seed is a list of {len(seeds)} seeds for {count} prompts: give one seed per "
            "prompt, or one int."
        )
    adapter = kwarg_adapter(model._generation_method(), SEED)
    checked[SEED] = [_check_seed(owner, adapter, i, seed) for i, seed in enumerate(seeds)]
    return checked


def _check_seed(owner: str, adapter: TypeAdapter[Any] | None, position: int, seed: Any) -> Any:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(
            f"seed[{position}] must be an int, got {type(seed).__name__}: {seed!r:.40}"
        )
    if adapter is None:
        return seed
    try:
        return adapter.validate_python(seed)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise InvalidInputError(
            f"Invalid seed[{position}]={seed!r} for {owner}: {reason}."
        ) from None


def kwargs_by_prompt(kwargs: Mapping[str, Any], count: int) -> list[dict[str, Any]] | None:
    """Each prompt's own kwargs when `kwargs` holds a seed list; None when they are shared."""
    seeds = kwargs.get(SEED)
    if not _is_seed_list(seeds):
        return None
    return [{**kwargs, SEED: seeds[index]} for index in range(count)]


def with_image_seed(kwargs: dict[str, Any], index: int) -> dict[str, Any]:
    """The kwargs of a call for image `index` alone: with `seed + index` when they hold a seed.

    Image k of a call with `seed=s` is made with `s + k`; a call for that image alone gets
    `s + k` itself.
    """
    seed = kwargs.get(SEED)
    if not index or isinstance(seed, bool) or not isinstance(seed, int):
        return kwargs
    return {**kwargs, SEED: seed + index}


def generate_by_prompt(
    generate: Callable[..., list[list[dict[str, Any]]]],
    inputs: list[str],
    num_generations: int,
    kwargs: Mapping[str, Any],
    prompt_seeds_supported: bool,
) -> list[list[dict[str, Any]]]:
    """Call a sync backend's `generate`, splitting the call by prompt when it must.

    A seed list goes to a backend that supports one as is; to any other, as one call per
    prompt with that prompt's seed.
    """
    split = None if prompt_seeds_supported else kwargs_by_prompt(kwargs, len(inputs))
    if split is None:
        return generate(inputs, num_generations=num_generations, **kwargs)
    outputs: list[list[dict[str, Any]]] = []
    for prompt, own in zip(inputs, split, strict=True):
        output = generate([prompt], num_generations=num_generations, **own)
        if len(output) != 1:  # the caller's count check could not tell whose output is missing
            raise InvalidOutputError(f"generate returned {len(output)} outputs for 1 input.")
        outputs.extend(output)
    return outputs
