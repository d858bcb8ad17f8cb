"""imgen-hf-inference throughput against the bare SDK: 500 requests at concurrency 32.

Both sides send their requests through huggingface_hub's `AsyncInferenceClient.text_to_image`
to the same local server, once replying with a realistic 1024x1024 JPEG (about 110 KB, as
several inference providers send) and once with a 16x16 PNG (where only imgen's own cost
shows). imgen hands the reply's bytes on as they came. The bare client returns a PIL image
opened lazily over them, which a program must decode (`load()`) before any use of it: the
baseline does that, as the decode imgen no longer does. A last row drops the decode from the
baseline, leaving the transport alone: imgen against the floor of any use of the client.
Rounds alternate; the ratio is imgen / bare (higher is better).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import TYPE_CHECKING

from bench.harness import Row, imgen_throughput
from bench.pictures import REPLY_JPEG_QUALITY, encoded, photo_like
from imgen.testing import LocalServer, Reply
from imgen_hf_inference import InferenceEndpointsImageGeneration

if TYPE_CHECKING:
    from huggingface_hub import AsyncInferenceClient

REQUESTS = 500
CONCURRENCY = 32
ROUNDS = 5
ENDPOINT = "/endpoint"


async def _bare(client: AsyncInferenceClient, prompts: list[str], decode: bool) -> float:
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(prompt: str) -> object:
        async with slots:
            image = await client.text_to_image(prompt)
            if decode:
                image.load()
            return image

    start = time.perf_counter()
    outputs = await asyncio.gather(*(one(prompt) for prompt in prompts))
    elapsed = time.perf_counter() - start
    assert len(outputs) == len(prompts)
    return len(prompts) / elapsed


def throughput(reply: bytes, content_type: str, decode: bool, rounds: int) -> tuple[float, float]:
    """Median requests/s of imgen-hf-inference and of the bare client, measured alternately."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # as the backend's load() does
    from huggingface_hub import AsyncInferenceClient

    prompts = [f"prompt {i}" for i in range(REQUESTS)]
    with LocalServer() as server:
        answer = Reply(body=reply, headers={"Content-Type": content_type})
        server.route("POST", ENDPOINT, lambda request: answer)
        base_url = server.url + ENDPOINT
        model = InferenceEndpointsImageGeneration(base_url=base_url, max_concurrency=CONCURRENCY)

        async def measure() -> tuple[list[float], list[float]]:
            ours, bare = [], []
            # Like the model, the bare client keeps one connection pool for every round.
            async with AsyncInferenceClient(base_url=base_url) as client:
                # Warm-up: event loops, connection pools and the SDK's lazy imports.
                await imgen_throughput(model, prompts[:CONCURRENCY])
                await _bare(client, prompts[:CONCURRENCY], decode)
                for _ in range(rounds):
                    ours.append(await imgen_throughput(model, prompts))
                    bare.append(await _bare(client, prompts, decode))
            return ours, bare

        with model:
            ours, bare = asyncio.run(measure())
    return statistics.median(ours), statistics.median(bare)


def _row(what: str, baseline: str, medians: tuple[float, float], target: str) -> Row:
    subject, base = medians
    return Row(
        f"{REQUESTS} requests at concurrency {CONCURRENCY}, {what}: imgen-hf-inference vs "
        f"AsyncInferenceClient + Semaphore{baseline}",
        f"{subject:,.0f} req/s",
        f"{base:,.0f} req/s",
        subject / base,
        target,
        kind="throughput",
    )


def run(rounds: int = ROUNDS) -> list[Row]:
    picture = photo_like()
    jpeg = encoded(picture, "jpeg", quality=REPLY_JPEG_QUALITY)
    small_png = encoded(picture.resize((16, 16)), "png")
    jpeg_reply = f"server replying a 1024x1024 JPEG of {len(jpeg) // 1000} KB"
    return [
        _row(jpeg_reply, " + decode", throughput(jpeg, "image/jpeg", True, rounds), ">= 1.0x"),
        _row(
            "server replying a 16x16 PNG",
            " + decode",
            throughput(small_png, "image/png", True, rounds),
            ">= 0.97x",
        ),
        _row(jpeg_reply, ", no decode", throughput(jpeg, "image/jpeg", False, rounds), "report"),
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row.benchmark}\n  imgen: {row.subject}  bare: {row.baseline}")
        print(f"  ratio: {row.ratio:.2f}x (target {row.target})")
