"""Backends for the core tests, written the way the seed reference describes them.

Imported by test modules as `core_backends` (the tests folder is on pytest's pythonpath).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from pydantic import PrivateAttr

from imgen import AsyncImageGenerationModel, ImageGenerationModel
from imgen.errors import RetryableError
from imgen.images import encode_bytes
from imgen.testing.fake import fake_image


def placeholder(prompt: str, index: int) -> str:
    return encode_bytes(fake_image(prompt, index, 8, 8, "png"))


class SeedSyncModel(ImageGenerationModel):
    """A sync backend exactly as the seed describes: load, model_name, generate."""

    def load(self) -> None:
        super().load()

    @property
    def model_name(self) -> str:
        return "seed-sync"

    def generate(
        self, inputs: list[str], num_generations: int = 1, **kwargs: Any
    ) -> list[list[dict[str, Any]]]:
        return [[{"images": [placeholder(p, k) for k in range(num_generations)]}] for p in inputs]


class SeedAsyncModel(AsyncImageGenerationModel):
    """An async backend exactly as the seed describes: load, model_name, agenerate."""

    def load(self) -> None:
        super().load()

    @property
    def model_name(self) -> str:
        return "seed-async"

    async def agenerate(
        self, input: str, num_generations: int = 1, **kwargs: Any
    ) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        return [{"images": [placeholder(input, k) for k in range(num_generations)]}]


class Fatal(Exception):
    """A failure no retry can fix."""


class ProbeModel(AsyncImageGenerationModel):
    """Records concurrency and attempts; fails on cue.

    Attributes:
        delay: Seconds each call takes.
        script: Prompt mapped to the failures its first attempts raise, in order:
            "transient", "fatal" or "wait:<seconds>" (a retryable error with Retry-After).
    """

    delay: float = 0.0
    script: dict[str, list[str]] = {}
    retry_initial_delay = 0.001
    _in_flight: int = PrivateAttr(0)
    _peak: int = PrivateAttr(0)
    _attempts: Counter[str] = PrivateAttr(default_factory=Counter)
    _calls: list[tuple[str, int, dict[str, Any]]] = PrivateAttr(default_factory=list)

    @property
    def model_name(self) -> str:
        return "probe"

    async def agenerate(
        self, input: str, num_generations: int = 1, tag: str = "", count: int = 0
    ) -> list[dict[str, Any]]:
        """Make placeholder images.

        Args:
            input: The prompt.
            num_generations: Images to make.
            tag (str): A label that is echoed back
                in the output.
            count (int): A number that must be an int.
        """
        attempt = self._attempts[input]
        self._attempts[input] += 1
        self._calls.append((input, num_generations, {"tag": tag, "count": count}))
        self._in_flight += 1
        self._peak = max(self._peak, self._in_flight)
        try:
            await asyncio.sleep(self.delay)
            planned = self.script.get(input, [])
            if attempt < len(planned):
                cue = planned[attempt]
                if cue == "fatal":
                    raise Fatal(f"fatal failure for {input}")
                wait = float(cue.split(":")[1]) if cue.startswith("wait:") else None
                raise RetryableError(f"transient failure for {input}", retry_after=wait)
            return [
                {
                    "images": [placeholder(input, k) for k in range(num_generations)],
                    "tag": tag,
                    "seeds": list(range(num_generations)),
                }
            ]
        finally:
            self._in_flight -= 1
