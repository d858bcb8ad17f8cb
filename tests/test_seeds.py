"""Per-prompt seeds (`imgen.seeds`): one call, each prompt with a seed of its own, any backend."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import pytest
from pydantic import Field, PrivateAttr

from imgen import AsyncImageGenerationModel, ImageGenerationModel
from imgen.errors import InvalidInputError
from imgen.images import encode_bytes
from imgen.testing.fake import AsyncFakeImageGeneration, FakeImageGeneration, fake_image

PROMPTS = ["a red fox", "a lighthouse", "a red fox"]
SmallSeed = Annotated[int, Field(ge=0, lt=100)]


def images_of(outputs: list[list[dict[str, Any]]]) -> list[list[str]]:
    return [output[0]["images"] for output in outputs]


class OnePromptAtATime(ImageGenerationModel):
    """A sync backend with a seed that knows nothing of seed lists; it records its calls."""

    backend_name: ClassVar[str] = "one-at-a-time"
    _calls: list[tuple[list[str], int]] = PrivateAttr(default_factory=list)

    @property
    def model_name(self) -> str:
        return "one-at-a-time"

    def generate(
        self, inputs: list[str], num_generations: int = 1, seed: int = 0
    ) -> list[list[dict[str, Any]]]:
        """Image k of every prompt uses seed + k.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            seed: The first seed.
        """
        self._calls.append((list(inputs), seed))
        seeds = [seed + k for k in range(num_generations)]
        return [
            [
                {
                    "images": [encode_bytes(fake_image(p, s, 8, 8, "png")) for s in seeds],
                    "seeds": seeds,
                }
            ]
            for p in inputs
        ]


class SingleImageAsync(AsyncImageGenerationModel):
    """An async backend that makes one image per request; the engine fans out, and gives image
    k of a prompt `seed + k` by default."""

    _num_generations_param_supported: ClassVar[bool] = False
    _requests: list[tuple[str, int]] = PrivateAttr(default_factory=list)

    @property
    def model_name(self) -> str:
        return "single"

    async def agenerate(
        self, input: str, num_generations: int = 1, seed: int = 0
    ) -> list[dict[str, Any]]:
        """One image.

        Args:
            input: The prompt.
            num_generations: Always 1.
            seed: Its seed.
        """
        self._requests.append((input, seed))
        return [{"images": [encode_bytes(fake_image(input, seed, 8, 8, "png"))], "seeds": [seed]}]


class LimitedSeeds(FakeImageGeneration):
    """A fake whose seeds must stay below 100."""

    def generate(
        self, inputs: list[str], num_generations: int = 1, seed: SmallSeed | list[SmallSeed] = 0
    ) -> list[list[dict[str, Any]]]:
        """Seeds below 100.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            seed: The first seed, or one per prompt.
        """
        return super().generate(inputs, num_generations, seed)


@pytest.mark.parametrize(
    "model",
    [FakeImageGeneration(), OnePromptAtATime(), AsyncFakeImageGeneration(), SingleImageAsync()],
    ids=["sync-with-lists", "sync-without-lists", "async", "async-fanning-out"],
)
def test_a_seed_list_gives_each_prompt_what_a_call_of_its_own_gives(
    model: ImageGenerationModel,
) -> None:
    seeds = [7, 1000, 42]

    together = model.generate_outputs(PROMPTS, 2, seed=seeds)

    alone = [model.generate_outputs([p], 2, seed=s)[0] for p, s in zip(PROMPTS, seeds, strict=True)]
    assert images_of(together) == images_of(alone)
    assert [output[0]["seeds"] for output in together] == [[7, 8], [1000, 1001], [42, 43]]
    # The same prompt with another seed gives other images.
    assert images_of(together)[0] != images_of(together)[2]


def test_a_backend_that_takes_lists_gets_one_call() -> None:
    class Counting(FakeImageGeneration):
        calls: ClassVar[list[Any]] = []

        def generate(
            self, inputs: list[str], num_generations: int = 1, seed: int | list[int] = 0
        ) -> list[list[dict[str, Any]]]:
            """Count the calls.

            Args:
                inputs: The prompts.
                num_generations: Images per prompt.
                seed: The first seed, or one per prompt.
            """
            self.calls.append(seed)
            return super().generate(inputs, num_generations, seed)

    Counting().generate_outputs(PROMPTS, 1, seed=[1, 2, 3])

    assert Counting.calls == [[1, 2, 3]]


def test_other_sync_backends_get_one_call_per_prompt_with_its_seed() -> None:
    model = OnePromptAtATime()

    model.generate_outputs(PROMPTS, 1, seed=[1, 2, 3])
    model.generate_outputs(PROMPTS, 1, seed=9)  # one int: one call, the backend's meaning

    assert model._calls == [
        (["a red fox"], 1),
        (["a lighthouse"], 2),
        (["a red fox"], 3),
        (PROMPTS, 9),
    ]


def test_a_fanning_out_async_backend_seeds_image_k_of_each_prompt_with_its_seed_plus_k() -> None:
    model = SingleImageAsync()

    model.generate_outputs(["a", "b"], 3, seed=[10, 20])

    assert sorted(model._requests) == [
        ("a", 10),
        ("a", 11),
        ("a", 12),
        ("b", 20),
        ("b", 21),
        ("b", 22),
    ]


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ([1, 2], r"seed is a list of 2 seeds for 3 prompts"),
        ([1, "two", 3], r"seed\[1\] must be an int, got str: 'two'"),
        ([1, True, 3], r"seed\[1\] must be an int, got bool"),
        ([1, 2, 100], r"Invalid seed\[2\]=100 for LimitedSeeds: Input should be less than 100"),
    ],
)
def test_a_bad_seed_list_is_refused_before_any_work(seeds: list[Any], message: str) -> None:
    model = LimitedSeeds()

    with pytest.raises(InvalidInputError, match=message):
        model.generate_outputs(PROMPTS, 1, seed=seeds)
    assert not model.is_loaded


def test_a_backend_without_a_seed_parameter_refuses_a_seed_list() -> None:
    class Seedless(ImageGenerationModel):
        @property
        def model_name(self) -> str:
            return "seedless"

        def generate(
            self, inputs: list[str], num_generations: int = 1, **kwargs: Any
        ) -> list[list[dict[str, Any]]]:
            raise AssertionError("never called")

    with pytest.raises(InvalidInputError, match="Seedless takes no seed"):
        Seedless().generate_outputs(["a", "b"], 1, seed=[1, 2])


@pytest.mark.asyncio
async def test_agenerate_outputs_takes_a_seed_list_too() -> None:
    model = AsyncFakeImageGeneration()

    outputs = await model.agenerate_outputs(["a", "b"], 2, seed=[5, 50])

    assert [output[0]["seeds"] for output in outputs] == [[5, 6], [50, 51]]
