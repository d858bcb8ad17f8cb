"""imgen-diffusers against a bare diffusers pipeline call: 8 prompts x 2 images, 64x64, 4 steps.

Both sides run the same tiny random-weight pipeline (built once into a temporary folder) on the
CPU, with the same batch composition (`batch_size` images per call, in prompt order), the same
per-image `torch.Generator`s and `output_type="pil"`. The baseline is exactly that: the
pipeline calls, the generators and the base64 PNG encoding of every image; the images of both
sides are checked to be identical. What differs is imgen's own cost: kwarg validation, seed
bookkeeping and the output dicts. A second row compares the backend at batch_size 8 with
batch_size 1 for the same 16 images.

torch runs on one thread and each run is timed in CPU seconds of this process: with one
thread that is the work done, whereas wall time on a shared machine also measures the
neighbours (at a load average of 4-8 on 2 cores, wall times of the same run varied 2.5x while
CPU times varied 10%). The comparison is about imgen's overhead, not torch's thread scaling.

Run it alone with `python -m bench diffusers`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Row, side_by_side
from imgen.images import encode_image
from imgen_diffusers import DiffusersImageGeneration
from imgen_diffusers.testing import build_tiny_pipeline

PROMPTS = [f"a red fox, study {i}" for i in range(8)]
NUM_GENERATIONS = 2
OPTIONS = {"num_inference_steps": 4, "height": 64, "width": 64}
SEED = 0
BATCH_SIZE = 4  # the backend's default
ROUNDS = 7  # for the overhead row; the batch_size row only reports, so it gets fewer
BATCH_SIZE_ROUNDS = 3


def _backend_run(model: DiffusersImageGeneration) -> list[str]:
    outputs = model.generate_outputs(PROMPTS, NUM_GENERATIONS, seed=SEED, **OPTIONS)
    return [b64 for output in outputs for b64 in output[0]["images"]]


def _bare_run(pipeline: Any, batch_size: int) -> list[str]:
    """The baseline: plain pipeline calls with per-image CPU generators, encoded to PNG."""
    import torch

    prompts = [prompt for prompt in PROMPTS for _ in range(NUM_GENERATIONS)]
    images = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        result = pipeline(
            prompt=chunk,
            generator=[
                torch.Generator("cpu").manual_seed(SEED + index)
                for index in range(start, start + len(chunk))
            ],
            output_type="pil",
            **OPTIONS,
        )
        images.extend(encode_image(image, "png") for image in result.images)
    return images


def _cpu_seconds(run: Callable[[], object]) -> Callable[[], float]:
    """A measurement of `run`: the CPU seconds this process spends in it."""

    def measure() -> float:
        start = time.process_time()
        run()
        return time.process_time() - start

    return measure


def _rows(folder: Path, rounds: int) -> list[Row]:
    from diffusers import AutoPipelineForText2Image

    model = DiffusersImageGeneration(model=folder, device="cpu", batch_size=BATCH_SIZE)
    single = DiffusersImageGeneration(model=folder, device="cpu", batch_size=1)
    eight = DiffusersImageGeneration(model=folder, device="cpu", batch_size=8)
    pipeline = AutoPipelineForText2Image.from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    with model, single, eight:
        # Warm-up, and proof that both sides do the same work.
        if _backend_run(model) != _bare_run(pipeline, BATCH_SIZE):
            raise AssertionError("the backend and the bare pipeline made different images")
        _backend_run(single)
        _backend_run(eight)
        ours, bare = side_by_side(
            _cpu_seconds(lambda: _backend_run(model)),
            _cpu_seconds(lambda: _bare_run(pipeline, BATCH_SIZE)),
            rounds,
        )
        batched, unbatched = side_by_side(
            _cpu_seconds(lambda: _backend_run(eight)),
            _cpu_seconds(lambda: _backend_run(single)),
            BATCH_SIZE_ROUNDS,
        )
    images = len(PROMPTS) * NUM_GENERATIONS
    setting = f"{len(PROMPTS)} prompts x {NUM_GENERATIONS}, 64x64, 4 steps, tiny pipeline, CPU"
    return [
        Row(
            f"imgen-diffusers vs bare pipeline calls + base64 PNG ({setting}, "
            f"batch_size {BATCH_SIZE})",
            f"{ours:.3f} CPU s",
            f"{bare:.3f} CPU s",
            ours / bare,
            "<= 1.03x",
        ),
        Row(
            f"imgen-diffusers batch_size 8 vs batch_size 1 ({images} images, {setting})",
            f"{batched:.3f} CPU s",
            f"{unbatched:.3f} CPU s",
            batched / unbatched,
            "report",
        ),
    ]


def run(rounds: int = ROUNDS) -> list[Row]:
    """Median CPU seconds of the backend and the bare pipeline, and of batch_size 8 vs 1."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="imgen-bench-diffusers-") as folder:
            return _rows(build_tiny_pipeline(folder), rounds)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    for row in run():
        print(
            f"{row.benchmark}\n  imgen-diffusers: {row.subject}\n  baseline:        {row.baseline}"
        )
        print(f"  ratio:           {row.ratio:.3f}x (target {row.target})")
