"""The built-in fake backends pass the conformance kit and behave as documented."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import imgen
from imgen.errors import GenerationError, InvalidInputError
from imgen.images import decode_bytes, decode_image, encode_bytes
from imgen.testing import AsyncFakeImageGeneration, BackendContract, FakeImageGeneration


class TestFakeContract(BackendContract):
    @pytest.fixture
    def model(self) -> Iterator[FakeImageGeneration]:
        with FakeImageGeneration(width=16, height=16) as model:
            yield model


class TestAsyncFakeContract(BackendContract):
    generation_kwargs = {"seed": 7}

    @pytest.fixture
    def model(self) -> Iterator[AsyncFakeImageGeneration]:
        with AsyncFakeImageGeneration(image_format="webp") as model:
            yield model


def test_images_are_deterministic_per_prompt_seed_and_index() -> None:
    model = imgen.get_model("fake-async", width=12, height=10)
    first = model.generate(["a fox", "a fox", "a cat"], num_generations=2, seed=3)
    again = model.generate(["a fox"], num_generations=2, seed=3)
    assert first[0] == first[1] == again[0]
    assert first[0][0]["seeds"] == [3, 4]
    assert first[0][0]["images"][0] != first[0][0]["images"][1]
    assert first[2][0]["images"] != first[0][0]["images"]
    assert decode_image(first[0][0]["images"][0]).size == (12, 10)
    sync = FakeImageGeneration(width=12, height=10).generate_outputs(["a fox"], 2, seed=3)
    assert sync[0] == first[0]


def test_failure_rate_is_seeded_and_retryable() -> None:
    class Patient(AsyncFakeImageGeneration):
        retry_initial_delay = 0.0

    prompts = [f"p{i}" for i in range(40)]
    flaky = Patient(failure_rate=0.5, max_retries=0, on_error="record")
    failed = [i for i, o in enumerate(flaky.generate(prompts)) if "error" in o[0]]
    assert 5 < len(failed) < 35
    repeat = Patient(failure_rate=0.5, max_retries=0, on_error="record")
    assert [i for i, o in enumerate(repeat.generate(prompts)) if "error" in o[0]] == failed
    assert len(Patient(failure_rate=0.5, max_retries=20).generate(prompts)) == 40
    with pytest.raises(GenerationError):
        AsyncFakeImageGeneration(failure_rate=1.0, max_retries=0).generate(["x"])


def test_compression_fields_change_the_bytes_not_the_pixels() -> None:
    def image(**fields: object) -> bytes:
        with FakeImageGeneration(width=96, height=96, **fields) as model:
            [[output]] = model.generate_outputs(["a fox"])
        return decode_bytes(output["images"][0])

    stored, smallest, default = image(compression_level=0), image(compression_level=9), image()
    assert len(stored) > len(default) and len(stored) > len(smallest)
    assert {decode_image(encode_bytes(d)).tobytes() for d in (stored, smallest, default)} == {
        decode_image(encode_bytes(default)).tobytes()
    }
    assert len(image(image_format="jpeg", image_quality=5)) < len(
        image(image_format="jpeg", image_quality=95)
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"compression_level": 10}, "compression_level"),
        ({"image_quality": 0}, "image_quality"),
        ({"image_format": "gif"}, "image_format"),
    ],
)
def test_bad_encoding_fields_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        FakeImageGeneration(**fields)


def test_sync_fake_encodes_off_the_generation_thread_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pixels are encoded on worker threads, as a local pipeline's are; the order is kept."""
    import threading

    from imgen.images import ImageEncoding

    threads: set[str] = set()
    real_encode = ImageEncoding.encode

    def recording_encode(self: ImageEncoding, image: object) -> object:
        threads.add(threading.current_thread().name)
        return real_encode(self, image)  # type: ignore[arg-type]

    monkeypatch.setattr(ImageEncoding, "encode", recording_encode)
    prompts = [f"prompt {i}" for i in range(6)]
    with FakeImageGeneration(width=24, height=24) as model:
        outputs = model.generate_outputs(prompts, 3, seed=[10 * i for i in range(6)])
    assert threads and threading.current_thread().name not in threads
    monkeypatch.undo()
    # Each prompt made alone gives the same images: none was swapped with another.
    for i, prompt in enumerate(prompts):
        [[alone]] = FakeImageGeneration(width=24, height=24).generate_outputs(
            [prompt], 3, seed=10 * i
        )
        assert outputs[i] == [alone]
        assert alone["seeds"] == [10 * i, 10 * i + 1, 10 * i + 2]
