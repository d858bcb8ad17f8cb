"""imgen-openai throughput against the bare SDK: 500 image requests at concurrency 32.

Both sides send their requests through the real openai SDK to the same fake Images API on a
local server (b64_json mode, a 16x16 PNG), so what differs is imgen's own cost: validation,
the engine's slots, timeouts and retry bookkeeping, the hop to the model's event loop, reading
each image's format from its first bytes, and the output dicts. The base64 strings are handed
on as the API sent them, never decoded. Rounds alternate; the ratio is imgen / bare (higher is
better).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import TYPE_CHECKING

from bench.harness import Row, imgen_throughput
from bench.pictures import encoded, photo_like
from imgen.images import encode_bytes
from imgen.testing import LocalServer, Reply
from imgen_openai import OpenAIImageGeneration

if TYPE_CHECKING:
    from openai import AsyncOpenAI

REQUESTS = 500
CONCURRENCY = 32
ROUNDS = 7
MODEL = "gpt-image-1"
API_KEY = "sk-bench"


def _serve_images(server: LocalServer) -> None:
    small_png = encoded(photo_like().resize((16, 16)), "png")
    reply = Reply.json({"created": 0, "data": [{"b64_json": encode_bytes(small_png)}]})
    server.route("POST", "/v1/images/generations", lambda request: reply)


async def _bare(client: AsyncOpenAI, prompts: list[str]) -> float:
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(prompt: str) -> list[str | None]:
        async with slots:
            response = await client.images.generate(model=MODEL, prompt=prompt, n=1)
            return [image.b64_json for image in response.data or []]

    start = time.perf_counter()
    outputs = await asyncio.gather(*(one(prompt) for prompt in prompts))
    elapsed = time.perf_counter() - start
    assert len(outputs) == len(prompts)
    return len(prompts) / elapsed


def throughput(rounds: int = ROUNDS) -> Row:
    """Median requests/s of imgen-openai and of the bare SDK, measured alternately."""
    prompts = [f"prompt {i}" for i in range(REQUESTS)]
    with LocalServer() as server:
        _serve_images(server)
        base_url = server.url + "/v1"
        model = OpenAIImageGeneration(
            model=MODEL, api_key=API_KEY, base_url=base_url, max_concurrency=CONCURRENCY
        )

        async def measure() -> tuple[list[float], list[float]]:
            from openai import AsyncOpenAI

            ours, bare = [], []
            # Like the model, the bare client keeps one connection pool for every round.
            async with AsyncOpenAI(api_key=API_KEY, base_url=base_url, max_retries=0) as client:
                # Warm-up: event loops, connection pools and the SDK's lazy imports.
                await imgen_throughput(model, prompts[:CONCURRENCY])
                await _bare(client, prompts[:CONCURRENCY])
                for _ in range(rounds):
                    ours.append(await imgen_throughput(model, prompts))
                    bare.append(await _bare(client, prompts))
            return ours, bare

        with model:
            ours, bare = asyncio.run(measure())
    subject, baseline = statistics.median(ours), statistics.median(bare)
    return Row(
        f"{REQUESTS:,} image requests at concurrency {CONCURRENCY} to a local server replying "
        "a 16x16 PNG as b64_json: imgen-openai vs AsyncOpenAI + Semaphore + gather",
        f"{subject:,.0f} req/s",
        f"{baseline:,.0f} req/s",
        subject / baseline,
        ">= 0.97x",
        kind="throughput",
    )


def run() -> list[Row]:
    return [throughput()]


if __name__ == "__main__":
    for row in run():
        print(f"{row.benchmark}\n  imgen-openai: {row.subject}\n  bare SDK:     {row.baseline}")
        print(f"  ratio:        {row.ratio:.2f}x (target {row.target})")
