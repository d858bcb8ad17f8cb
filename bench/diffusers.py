"""imgen-diffusers against bare diffusers pipeline calls, on tiny random-weight pipelines.

Both sides run the same pipeline (built once into a temporary folder) on the CPU, with the
same batch composition (`batch_size` images per call, in prompt order), the same per-image
`torch.Generator`s and `output_type="pil"`; the images of both sides are checked to be the
same pixels.

The first row is about encoding: 16 images of 256x256 at batch_size 4, one step without
guidance (as sd-turbo runs), against the loop every script writes, pipeline calls then
`image.save(buffer, "PNG")` for each image. imgen encodes on worker threads while the next
batch is denoised, at its faster default compression; the row is timed in wall seconds, since
moving work off the generation thread is the point. Its pipeline has a VAE with Stable
Diffusion's 8x scale factor and no attention, so that 256x256 images come from 32x32 latents
as they do in real pipelines (the test pipeline's 2x VAE would spend its time in attention
over 128x128 latents).

The second row is imgen's own cost: 8 prompts x 2 images, 64x64, 4 steps, against the
pipeline calls, the generators and the same base64 PNG encoding of every image. What differs
is kwarg validation, seed bookkeeping, the encoder threads and the output dicts. A third row
compares the backend at batch_size 8 with batch_size 1 for the same 16 images.

torch runs on one thread. The overhead rows are timed in CPU seconds of this process: with
one thread that is the work done, whereas wall time on a shared machine also measures the
neighbours (at a load average of 4-8 on 2 cores, wall times of the same run varied 2.5x while
CPU times varied 10%). The comparison is about imgen's overhead, not torch's thread scaling.

Run it alone with `python -m bench diffusers`.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.harness import Row, side_by_side
from imgen.images import decode_bytes, encode_image
from imgen_diffusers import DiffusersImageGeneration
from imgen_diffusers.testing import build_tiny_pipeline

if TYPE_CHECKING:
    from PIL.Image import Image

PROMPTS = [f"a red fox, study {i}" for i in range(8)]
NUM_GENERATIONS = 2
OPTIONS = {"num_inference_steps": 4, "height": 64, "width": 64}
SEED = 0
BATCH_SIZE = 4  # the backend's default
ROUNDS = 7  # for the overhead row; the batch_size row only reports, so it gets fewer
BATCH_SIZE_ROUNDS = 3
ENCODING_PROMPTS = [f"a lighthouse at dusk, study {i}" for i in range(16)]
ENCODING_OPTIONS: dict[str, Any] = {
    "num_inference_steps": 1,
    "guidance_scale": 0.0,
    "height": 256,
    "width": 256,
}
ENCODING_ROUNDS = 5


def _backend_run(model: DiffusersImageGeneration) -> list[str]:
    outputs = model.generate_outputs(PROMPTS, NUM_GENERATIONS, seed=SEED, **OPTIONS)
    return [b64 for output in outputs for b64 in output[0]["images"]]


def _pipeline_calls(
    pipeline: Any, prompts: list[str], batch_size: int, options: dict[str, Any]
) -> Iterator[Image]:
    """Plain pipeline calls with the backend's per-image CPU generators; yields each image."""
    import torch

    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        result = pipeline(
            prompt=chunk,
            generator=[
                torch.Generator("cpu").manual_seed(SEED + index)
                for index in range(start, start + len(chunk))
            ],
            output_type="pil",
            **options,
        )
        yield from result.images


def _bare_run(pipeline: Any, batch_size: int) -> list[str]:
    """The overhead baseline: the pipeline calls, each image encoded as imgen does."""
    prompts = [prompt for prompt in PROMPTS for _ in range(NUM_GENERATIONS)]
    return [
        encode_image(image) for image in _pipeline_calls(pipeline, prompts, batch_size, OPTIONS)
    ]


def _save_loop_run(pipeline: Any) -> list[bytes]:
    """The encoding baseline: the pipeline calls, then PIL's PNG save of each image."""
    images = []
    for image in _pipeline_calls(pipeline, ENCODING_PROMPTS, BATCH_SIZE, ENCODING_OPTIONS):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def _encoding_backend_run(model: DiffusersImageGeneration) -> list[bytes]:
    outputs = model.generate_outputs(ENCODING_PROMPTS, seed=SEED, **ENCODING_OPTIONS)
    return [decode_bytes(b64) for output in outputs for b64 in output[0]["images"]]


def _pixels(images: list[bytes]) -> list[bytes]:
    from PIL import Image

    return [Image.open(io.BytesIO(data)).tobytes() for data in images]


def _seconds(
    run: Callable[[], object], clock: Callable[[], float] = time.process_time
) -> Callable[[], float]:
    """A measurement of `run` on `clock`: by default, the CPU seconds this process spends."""

    def measure() -> float:
        start = clock()
        run()
        return clock() - start

    return measure


def _build_pipeline_with_8x_vae(folder: Path) -> Path:
    """The tiny pipeline with a VAE of four blocks (8x scale factor) and no attention."""
    import torch
    from diffusers import AutoencoderKL, AutoPipelineForText2Image

    pipeline = AutoPipelineForText2Image.from_pretrained(  # type: ignore[no-untyped-call]
        build_tiny_pipeline(folder / "tiny")
    )
    torch.manual_seed(0)  # random weights, the same in every run
    pipeline.register_modules(
        vae=AutoencoderKL(  # type: ignore[no-untyped-call]
            in_channels=3,
            out_channels=3,
            block_out_channels=(8, 16, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=256,
            mid_block_add_attention=False,
        )
    )
    target = folder / "tiny-8x-vae"
    pipeline.save_pretrained(target)
    return target


def _encoding_row(folder: Path) -> Row:
    from diffusers import AutoPipelineForText2Image

    model = DiffusersImageGeneration(model=folder, device="cpu", batch_size=BATCH_SIZE)
    pipeline = AutoPipelineForText2Image.from_pretrained(folder)  # type: ignore[no-untyped-call]
    pipeline.set_progress_bar_config(disable=True)
    with model:
        # Warm-up, and proof that both sides make the same pixels.
        if _pixels(_encoding_backend_run(model)) != _pixels(_save_loop_run(pipeline)):
            raise AssertionError("the backend and the bare pipeline made different images")
        ours, bare = side_by_side(
            _seconds(lambda: _encoding_backend_run(model), time.perf_counter),
            _seconds(lambda: _save_loop_run(pipeline), time.perf_counter),
            ENCODING_ROUNDS,
        )
    return Row(
        f"imgen-diffusers vs bare pipeline calls + a PIL `save(PNG)` loop ("
        f"{len(ENCODING_PROMPTS)} images, 256x256, 1 step, tiny pipeline with an 8x VAE, CPU, "
        f"batch_size {BATCH_SIZE}), wall time",
        f"{ours:.2f} s",
        f"{bare:.2f} s",
        ours / bare,
        "<= 0.9x",
    )


def _rows(folder: Path, rounds: int) -> list[Row]:
    from diffusers import AutoPipelineForText2Image

    model = DiffusersImageGeneration(model=folder, device="cpu", batch_size=BATCH_SIZE)
    single = DiffusersImageGeneration(model=folder, device="cpu", batch_size=1)
    eight = DiffusersImageGeneration(model=folder, device="cpu", batch_size=8)
    pipeline = AutoPipelineForText2Image.from_pretrained(folder)  # type: ignore[no-untyped-call]
    pipeline.set_progress_bar_config(disable=True)
    with model, single, eight:
        # Warm-up, and proof that both sides do the same work.
        if _backend_run(model) != _bare_run(pipeline, BATCH_SIZE):
            raise AssertionError("the backend and the bare pipeline made different images")
        _backend_run(single)
        _backend_run(eight)
        ours, bare = side_by_side(
            _seconds(lambda: _backend_run(model)),
            _seconds(lambda: _bare_run(pipeline, BATCH_SIZE)),
            rounds,
        )
        batched, unbatched = side_by_side(
            _seconds(lambda: _backend_run(eight)),
            _seconds(lambda: _backend_run(single)),
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
    """The encoding row (wall time), then the overhead and batch_size rows (CPU time)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="imgen-bench-diffusers-") as folder:
            encoding = _encoding_row(_build_pipeline_with_8x_vae(Path(folder)))
            return [encoding, *_rows(build_tiny_pipeline(Path(folder) / "overhead"), rounds)]
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    for row in run():
        print(
            f"{row.benchmark}\n  imgen-diffusers: {row.subject}\n  baseline:        {row.baseline}"
        )
        print(f"  ratio:           {row.ratio:.3f}x (target {row.target})")
