"""The built-in `fake` backend: deterministic placeholder images for dry runs and tests.

Images derive from the prompt, the seed and the generation index, so reruns give the same
bytes. `latency` and `failure_rate` let dry runs exercise concurrency, retries and resume.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, PrivateAttr

from imgen.base import AsyncImageGenerationModel, ImageGenerationModel
from imgen.errors import RetryableError
from imgen.images import (
    BackgroundEncoder,
    EncodedImage,
    ImageEncoding,
    ImageEncodingFields,
    ImageFormat,
    images_output,
    keep_or_encode_async,
)
from imgen.interrupts import CallInterrupter, CallWatch

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["AsyncFakeImageGeneration", "FakeImageGeneration", "fake_image", "fake_pixels"]


def fake_image(prompt: str, seed: int, width: int, height: int, image_format: ImageFormat) -> bytes:
    """The bytes of `fake_pixels`, encoded in `image_format` at the default compression."""
    return ImageEncoding(image_format).encode(fake_pixels(prompt, seed, width, height)).data


def fake_pixels(prompt: str, seed: int, width: int, height: int) -> Image:
    """A deterministic image: two colours and a band, all derived from the prompt and seed."""
    from PIL import Image, ImageDraw

    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    image = Image.new("RGB", (width, height), tuple(digest[0:3]))
    band = (digest[3] % max(1, height // 2), digest[4] % max(1, width // 2))
    ImageDraw.Draw(image).rectangle(
        (band[1], band[0], band[1] + width // 2, band[0] + height // 3), fill=tuple(digest[5:8])
    )
    return image


class _FakeSettings(ImageEncodingFields):
    """Fields and image making shared by the sync and async fake backends.

    `compression_level` and `image_quality` come from `imgen.images.ImageEncodingFields`.

    Attributes:
        model: A free-form model id, recorded in outputs; it does not change the images.
        width: Image width in pixels.
        height: Image height in pixels.
        image_format: The encoding of the images.
        latency: Seconds each call waits before answering.
        cpu_seconds: Seconds of CPU-bound work per image, to benchmark engines.
        failure_rate: Share of calls (0..1) that fail with a retryable error.
        failure_seed: Seeds the failure draws, so a run's failures are reproducible.
    """

    model: str = "fake-v1"
    width: int = Field(64, ge=1, le=4096)
    height: int = Field(64, ge=1, le=4096)
    image_format: ImageFormat = "png"
    latency: float = Field(0.0, ge=0, allow_inf_nan=False)
    cpu_seconds: float = Field(0.0, ge=0, allow_inf_nan=False)
    failure_rate: float = Field(0.0, ge=0, le=1)
    failure_seed: int = 0
    _failures: random.Random = PrivateAttr(default_factory=random.Random)

    @property
    def model_name(self) -> str:
        """The model id."""
        return self.model

    def _reset_failures(self) -> None:
        self._failures = random.Random(self.failure_seed)

    def _maybe_fail(self, prompt: str) -> None:
        if self.failure_rate and self._failures.random() < self.failure_rate:
            raise RetryableError(f"fake transient failure for {prompt[:40]!r}")

    def _pixels(self, prompt: str, seed: int, watch: CallWatch | None = None) -> Image:
        if self.cpu_seconds:
            # This thread's CPU time: encoding threads working meanwhile do not count.
            deadline = time.thread_time() + self.cpu_seconds
            while time.thread_time() < deadline:
                pass
        if watch is not None:
            watch.check()
        return fake_pixels(prompt, seed, self.width, self.height)

    def _output(self, images: list[EncodedImage], seed: int) -> list[dict[str, Any]]:
        return [{**images_output(images), "seeds": list(range(seed, seed + len(images)))}]


class FakeImageGeneration(_FakeSettings, ImageGenerationModel):
    """Deterministic placeholder images, generated in-process (sync)."""

    backend_name: ClassVar[str] = "fake"
    _prompt_seeds_supported: ClassVar[bool] = True
    _interrupter: CallInterrupter = PrivateAttr(default_factory=CallInterrupter)

    def load(self) -> None:
        """Reset the failure draws."""
        super().load()
        self._reset_failures()

    def interrupt(self) -> None:
        """Stop the calls in progress at their next image or latency wait."""
        self._interrupter.interrupt()

    def generate(
        self, inputs: list[str], num_generations: int = 1, seed: int | list[int] = 0
    ) -> list[list[dict[str, Any]]]:
        """Make `num_generations` placeholder images per prompt.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            seed: Image k of a prompt uses seed + k; a list gives each prompt its own seed.

        Returns:
            One list per prompt holding {"images", "format", "seeds"}.
        """
        watch = self._interrupter.watch()
        firsts = seed if isinstance(seed, list) else [seed] * len(inputs)
        # Pixels are encoded on worker threads while the next ones are made, as a local
        # pipeline's backend does; the results keep the order they were submitted in.
        with BackgroundEncoder(self.image_encoding(self.image_format)) as encoder:
            for prompt, first in zip(inputs, firsts, strict=True):
                if self.latency:
                    watch.sleep(self.latency)
                self._maybe_fail(prompt)
                for k in range(num_generations):
                    encoder.submit(self._pixels(prompt, first + k, watch))
            images = encoder.results()
        return [
            self._output(images[i * num_generations : (i + 1) * num_generations], first)
            for i, first in enumerate(firsts)
        ]


class AsyncFakeImageGeneration(_FakeSettings, AsyncImageGenerationModel):
    """Deterministic placeholder images through the async engine."""

    backend_name: ClassVar[str] = "fake-async"

    def load(self) -> None:
        """Reset the failure draws."""
        super().load()
        self._reset_failures()

    async def agenerate(
        self, input: str, num_generations: int = 1, seed: int = 0
    ) -> list[dict[str, Any]]:
        """Make `num_generations` placeholder images for one prompt.

        Args:
            input: The prompt.
            num_generations: Images to make.
            seed: Image k uses seed + k.

        Returns:
            A list holding {"images", "format", "seeds"}.
        """
        if self.latency:
            import asyncio  # kept out of module import: see imgen.base

            await asyncio.sleep(self.latency)
        self._maybe_fail(input)
        encoding = self.image_encoding(self.image_format)
        images = [
            await keep_or_encode_async(self._pixels(input, seed + k), encoding)
            for k in range(num_generations)
        ]
        return self._output(images, seed)
