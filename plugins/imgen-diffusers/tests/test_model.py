"""Behaviour of the diffusers backend on a tiny random-weight pipeline, all on the CPU, offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import torch
from click.testing import CliRunner
from diffusers import AutoPipelineForText2Image

from imgen.batch.seeding import row_seed
from imgen.cli import main
from imgen.errors import ConfigurationError, GenerationInterrupted, InvalidInputError
from imgen.images import (
    ImageEncoding,
    decode_bytes,
    decode_image,
    detect_format,
    encode_bytes,
    encode_image,
)
from imgen.testing import exception_text
from imgen_diffusers import DiffusersImageGeneration
from imgen_diffusers.testing import build_tiny_pipeline

PROMPTS = ["a red fox", "the blue house"]


def pixels(b64_images: list[str]) -> np.ndarray:
    """The images stacked as one uint8 array."""
    return np.stack([np.asarray(decode_image(b64)) for b64 in b64_images])


def images_of(outputs: list[list[dict[str, Any]]]) -> list[str]:
    """Every image of a batch's outputs, in input order."""
    return [b64 for output in outputs for b64 in output[0]["images"]]


@pytest.fixture(scope="module")
def raw_pipeline(tiny_pipeline_path: Path) -> Any:
    """The tiny pipeline loaded by diffusers directly, without the backend."""
    pipeline = AutoPipelineForText2Image.from_pretrained(tiny_pipeline_path)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def raw_call(pipeline: Any, prompts: list[str], seeds: list[int], **options: Any) -> list[str]:
    """One plain pipeline call, one CPU generator per image, encoded to base64 PNG."""
    result = pipeline(
        prompt=prompts,
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
        output_type="pil",
        **options,
    )
    return [encode_image(image, "png") for image in result.images]


@pytest.fixture
def make_model(tiny_pipeline_path: Path) -> Iterator[Any]:
    """Build loaded models on the tiny pipeline with the given fields; unloads them after."""
    made: list[DiffusersImageGeneration] = []

    def make(**fields: Any) -> DiffusersImageGeneration:
        model = DiffusersImageGeneration(model=tiny_pipeline_path, device="cpu", **fields)
        model.load()
        made.append(model)
        return model

    yield make
    for model in made:
        model.unload()


# -- loading ------------------------------------------------------------------------------


def test_loads_the_local_folder_through_from_pretrained(
    model: DiffusersImageGeneration, tiny_pipeline_path: Path
) -> None:
    assert model.model_name == str(tiny_pipeline_path)
    assert type(model.pipeline).__name__ == "StableDiffusionPipeline"
    assert type(model.pipeline.scheduler).__name__ == "DDIMScheduler"
    assert model.pipeline.device.type == "cpu"


def test_auto_device_and_dtype(tiny_pipeline_path: Path) -> None:
    with DiffusersImageGeneration(model=tiny_pipeline_path) as model:
        device = model.pipeline.device.type
        if torch.cuda.is_available():
            assert device == "cuda"
        elif torch.backends.mps.is_available():
            assert device == "mps"
        else:
            assert device == "cpu"
        assert model.pipeline.dtype == (torch.float32 if device == "cpu" else torch.float16)


def test_explicit_dtype_is_used(make_model: Any) -> None:
    assert make_model(torch_dtype="bfloat16").pipeline.dtype == torch.bfloat16


def test_pipeline_kwargs_reach_from_pretrained(tiny_pipeline_path: Path) -> None:
    # use_safetensors=False makes diffusers look for .bin weights, which the folder lacks.
    model = DiffusersImageGeneration(
        model=tiny_pipeline_path, device="cpu", pipeline_kwargs={"use_safetensors": False}
    )
    with pytest.raises(ConfigurationError, match=r"pytorch_model\.bin"):
        model.load()


# -- outputs, seeds, batching -------------------------------------------------------------


def test_outputs_carry_format_and_per_image_seeds(
    model: DiffusersImageGeneration, fast_kwargs: dict[str, Any]
) -> None:
    outputs = model.generate_outputs(PROMPTS, num_generations=3, seed=10, **fast_kwargs)
    assert [output[0]["seeds"] for output in outputs] == [[10, 11, 12], [13, 14, 15]]
    for output in outputs:
        assert output[0]["format"] == "png"
        assert pixels(output[0]["images"]).shape == (3, 64, 64, 3)


def test_same_seed_same_pixels_and_different_seeds_differ(
    model: DiffusersImageGeneration, fast_kwargs: dict[str, Any]
) -> None:
    first = images_of(model.generate_outputs(PROMPTS, 2, seed=5, **fast_kwargs))
    again = images_of(model.generate_outputs(PROMPTS, 2, seed=5, **fast_kwargs))
    other = images_of(model.generate_outputs(PROMPTS, 2, seed=6, **fast_kwargs))
    assert first == again
    assert len(set(first)) == 4, "every image has its own seed"
    assert all(a != b for a, b in zip(first, other, strict=True))


def test_random_seed_is_reported_and_reproduces_the_images(
    model: DiffusersImageGeneration, fast_kwargs: dict[str, Any]
) -> None:
    first = model.generate_outputs(["a red fox"], 2, **fast_kwargs)[0][0]
    base = first["seeds"][0]
    assert first["seeds"] == [base, base + 1]
    again = model.generate_outputs(["a red fox"], 2, seed=base, **fast_kwargs)[0][0]
    assert again["images"] == first["images"]
    later = model.generate_outputs(["a red fox"], 2, **fast_kwargs)[0][0]
    assert later["seeds"][0] != base, "seed=None draws a fresh base seed each call"


def test_images_match_a_raw_pipeline_call_bit_exactly(
    make_model: Any, raw_pipeline: Any, fast_kwargs: dict[str, Any]
) -> None:
    """With batch_size 3, 2 prompts x 2 images run as [fox, fox, house] + [house]."""
    options = {**fast_kwargs, "guidance_scale": 5.0}
    model = make_model(batch_size=3)
    outputs = model.generate_outputs(PROMPTS, 2, seed=7, negative_prompt="blurry", **options)
    fox, house = PROMPTS
    expected = raw_call(
        raw_pipeline, [fox, fox, house], [7, 8, 9], negative_prompt=["blurry"] * 3, **options
    ) + raw_call(raw_pipeline, [house], [10], negative_prompt=["blurry"], **options)
    assert images_of(outputs) == expected


def test_batch_size_1_and_8_agree_up_to_cpu_rounding(
    make_model: Any, raw_pipeline: Any, fast_kwargs: dict[str, Any]
) -> None:
    """batch_size 1 and 8 give the same seeds and, up to CPU rounding, the same pixels.

    Bit-exact equality across batch sizes is impossible on CPU: torch's Linear, Conv2d and
    GroupNorm kernels block and accumulate differently for different batch sizes, so a few
    float values differ in their last bits and a handful of pixels round to the neighbouring
    uint8 level (we measured 6-7 of 98,304 values). Off-by-one is allowed in at most 0.1% of
    the values. For a fixed batch composition the backend is bit-exact: batch_size 8 equals
    one raw pipeline call of the same 8 images.
    """
    one = make_model(batch_size=1).generate_outputs(PROMPTS, 4, seed=0, **fast_kwargs)
    eight = make_model(batch_size=8).generate_outputs(PROMPTS, 4, seed=0, **fast_kwargs)
    seeds = [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [o[0]["seeds"] for o in one] == [o[0]["seeds"] for o in eight] == seeds
    a = pixels(images_of(one)).astype(np.int16)
    b = pixels(images_of(eight)).astype(np.int16)
    assert np.abs(a - b).max() <= 1
    assert np.count_nonzero(a != b) <= a.size // 1000

    raw = raw_call(raw_pipeline, [PROMPTS[0]] * 4 + [PROMPTS[1]] * 4, list(range(8)), **fast_kwargs)
    assert images_of(eight) == raw


def test_a_seed_list_seeds_each_prompt_in_one_pipeline_call(
    model: DiffusersImageGeneration, raw_pipeline: Any, fast_kwargs: dict[str, Any]
) -> None:
    """What a batch job relies on: rows of one call, each with its own seed."""
    outputs = model.generate_outputs(PROMPTS, 2, seed=[100, 7], **fast_kwargs)

    assert [output[0]["seeds"] for output in outputs] == [[100, 101], [7, 8]]
    fox, house = PROMPTS
    assert images_of(outputs) == raw_call(
        raw_pipeline, [fox, fox, house, house], [100, 101, 7, 8], **fast_kwargs
    )


def assert_equal_up_to_cpu_rounding(first: list[str], second: list[str]) -> None:
    """The tolerance measured in test_batch_size_1_and_8_agree_up_to_cpu_rounding."""
    a, b = pixels(first).astype(np.int16), pixels(second).astype(np.int16)
    assert np.abs(a - b).max() <= 1
    assert np.count_nonzero(a != b) <= a.size // 1000


# -- batch jobs: seeds, interrupting ------------------------------------------------------


def test_a_batch_image_is_made_again_from_its_recorded_seed(
    tiny_pipeline_path: Path, tmp_path: Path
) -> None:
    spec = f"diffusers:{tiny_pipeline_path}"
    options = ["-p", "num_inference_steps=2", "-p", "height=64", "-p", "width=64"]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox\nthe blue house\na red fox\nthe sea\na cat\n")
    batch = [
        "batch",
        spec,
        str(prompts),
        "-o",
        str(tmp_path / "out"),
        "-n",
        "2",
        "-O",
        "batch_size=3",
    ]
    made = CliRunner().invoke(main, [*batch, *options, "-O", "device=cpu"])
    assert made.exit_code == 0, made.output
    lines = [
        json.loads(line) for line in (tmp_path / "out" / "metadata.jsonl").read_text().splitlines()
    ]
    assert len({line["seed"] for line in lines}) == 10
    line = next(line for line in lines if (line["row"], line["generation"]) == (3, 1))

    again = CliRunner().invoke(
        main,
        [
            *("generate", spec, line["prompt"], "-p", f"seed={line['seed']}", *options),
            *("-O", "device=cpu", "-o", str(tmp_path / "again")),
        ],
    )

    assert again.exit_code == 0, again.output
    regenerated = encode_bytes(Path(again.stdout.strip()).read_bytes())
    original = encode_bytes((tmp_path / "out" / line["file_name"]).read_bytes())
    assert_equal_up_to_cpu_rounding([regenerated], [original])


def test_interrupt_stops_a_call_in_progress_and_spares_later_ones(
    model: DiffusersImageGeneration, fast_kwargs: dict[str, Any]
) -> None:
    unet = model.pipeline.unet
    denoise = unet.forward
    steps: list[int] = []

    def counting_forward(*args: Any, **kwargs: Any) -> Any:
        steps.append(len(steps))
        if len(steps) == 2:
            model.interrupt()  # as a batch job does, from another thread, on Ctrl-C
        return denoise(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(unet, "forward", counting_forward)
        with pytest.raises(GenerationInterrupted):
            model.generate_outputs(PROMPTS, 2, seed=1, **{**fast_kwargs, "num_inference_steps": 50})

    assert steps == [0, 1]  # stopped at the end of the step it was interrupted in, not 48 later
    assert len(images_of(model.generate_outputs(PROMPTS, 1, seed=1, **fast_kwargs))) == 2


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_batch_stopped_by_a_signal_exits_cleanly_and_resumes(
    tiny_pipeline_path: Path, tmp_path: Path, signum: int, code: int
) -> None:
    """Ctrl-C used to abort with "terminate called without an active exception" (SIGABRT):
    the process exited while torch still computed in the generation thread."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a red fox number {i}\n" for i in range(40)))
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from imgen.cli import main; main()", "batch"]
    command += [f"diffusers:{tiny_pipeline_path}", str(prompts), "-o", str(out), "-p", "seed=5"]
    command += ["-O", "device=cpu", "-O", "batch_size=2", "-p", "num_inference_steps=20"]
    command += ["-p", "height=64", "-p", "width=64"]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (out / "images").is_dir() or len(os.listdir(out / "images")) < 2:
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()
        time.sleep(0.05)

    job.send_signal(signum)
    stdout, stderr = job.communicate(timeout=120)

    assert job.returncode == code, stderr.decode()
    assert b"terminate called" not in stderr
    assert b"Traceback" not in stderr
    assert stdout.decode().startswith("Interrupted in ")
    assert f"by {signal.Signals(signum).name}" in stdout.decode()
    assert not (out / ".imgen-batch.lock").exists()
    again = subprocess.run(command, capture_output=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr.decode()
    lines = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert {line["row"]: line["seed"] for line in lines} == {
        row: row_seed(5, row) for row in range(1, 41)
    }


def sets_sigterm_handler(pid: int) -> bool:
    """Whether process `pid` handles SIGTERM now (Linux: the SigCgt mask of /proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


def test_ctrl_c_during_imgen_generate_exits_130_with_one_line(
    tiny_pipeline_path: Path, tmp_path: Path
) -> None:
    command = [sys.executable, "-c", "from imgen.cli import main; main()", "generate"]
    command += [f"diffusers:{tiny_pipeline_path}", "a red fox", "-n", "8", "-O", "device=cpu"]
    command += ["-p", "num_inference_steps=500", "-p", "height=64", "-p", "width=64"]
    job = subprocess.Popen([*command, "-o", str(tmp_path)], stderr=subprocess.PIPE)
    started = time.monotonic()
    # Past imgen's imports (its handlers are set), then past loading torch and the pipeline:
    # about 5 CPU seconds; 8 images of 500 denoising steps take far longer.
    process = psutil.Process(job.pid)
    while not (sets_sigterm_handler(job.pid) and process.cpu_times().user > 8):
        assert job.poll() is None and time.monotonic() - started < 300, job.communicate()
        time.sleep(0.1)

    job.send_signal(signal.SIGINT)
    _, stderr = job.communicate(timeout=120)

    assert job.returncode == 130
    assert stderr.decode().splitlines()[-1] == "Interrupted by SIGINT (Ctrl-C)."
    assert b"terminate called" not in stderr
    assert b"Traceback" not in stderr


# -- generation parameters ----------------------------------------------------------------


def test_height_and_width_set_the_image_size(
    model: DiffusersImageGeneration, fast_kwargs: dict[str, Any]
) -> None:
    outputs = model.generate_outputs(["a red fox"], **{**fast_kwargs, "height": 64, "width": 128})
    assert pixels(outputs[0][0]["images"]).shape == (1, 64, 128, 3)


def test_negative_prompt_changes_the_images(
    model: DiffusersImageGeneration, fast_kwargs: dict[str, Any]
) -> None:
    options = {**fast_kwargs, "seed": 3, "guidance_scale": 7.5}
    plain = model.generate_outputs(["a red fox"], **options)
    negative = model.generate_outputs(["a red fox"], negative_prompt="blurry", **options)
    assert images_of(plain) != images_of(negative)


@pytest.mark.parametrize("image_format", ["jpeg", "webp"])
def test_image_format(make_model: Any, fast_kwargs: dict[str, Any], image_format: str) -> None:
    outputs = make_model(image_format=image_format).generate_outputs(["a red fox"], **fast_kwargs)
    assert outputs[0][0]["format"] == image_format
    assert detect_format(decode_bytes(outputs[0][0]["images"][0])) == image_format


def test_compression_fields_change_the_bytes_never_the_pixels(
    make_model: Any, fast_kwargs: dict[str, Any]
) -> None:
    def first_image(**fields: Any) -> bytes:
        outputs = make_model(**fields).generate_outputs(["a red fox"], seed=1, **fast_kwargs)
        return decode_bytes(outputs[0][0]["images"][0])

    stored, smallest, default = (
        first_image(compression_level=0),
        first_image(compression_level=9),
        first_image(),
    )
    assert len(stored) > len(default) and len(stored) > len(smallest)
    assert (
        len(
            {
                np.asarray(decode_image(encode_bytes(d))).tobytes()
                for d in (stored, smallest, default)
            }
        )
        == 1
    )
    coarse = first_image(image_format="jpeg", image_quality=5)
    fine = first_image(image_format="jpeg", image_quality=95)
    assert detect_format(coarse) == detect_format(fine) == "jpeg"
    assert len(coarse) < len(fine)


def test_the_next_batch_is_denoised_while_the_last_is_encoded(
    make_model: Any, fast_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every image's encoding waits for the second pipeline call to start denoising.

    Were images encoded on the generation thread, that call could never start: the wait would
    time out and the test fail.
    """
    model = make_model(batch_size=2)
    steps = fast_kwargs["num_inference_steps"]  # one UNet call per step (guidance is batched)
    unet_calls = 0
    second_batch_denoising = threading.Event()

    def count_unet_call(module: Any, args: Any) -> None:
        nonlocal unet_calls
        unet_calls += 1
        if unet_calls > steps:
            second_batch_denoising.set()

    encode = ImageEncoding.encode
    waited: list[bool] = []
    threads: set[str] = set()

    def encode_after_the_second_batch_starts(self: ImageEncoding, image: Any) -> Any:
        threads.add(threading.current_thread().name)
        waited.append(second_batch_denoising.wait(timeout=20))
        return encode(self, image)

    monkeypatch.setattr(ImageEncoding, "encode", encode_after_the_second_batch_starts)
    hook = model.pipeline.unet.register_forward_pre_hook(count_unet_call)
    try:
        outputs = model.generate_outputs(["a red fox", "the blue house"], 2, seed=5, **fast_kwargs)
    finally:
        hook.remove()
    assert waited == [True] * 4
    assert "MainThread" not in threads
    assert unet_calls == 2 * steps
    # Output order is that of the prompts and seeds, whatever order the threads finished in.
    unpatched = make_model(batch_size=4).generate_outputs(
        ["a red fox", "the blue house"], 2, seed=5, **fast_kwargs
    )
    assert [o[0]["seeds"] for o in outputs] == [[5, 6], [7, 8]]
    assert images_of(outputs) == images_of(unpatched)


def test_an_encoding_failure_is_raised(
    make_model: Any, fast_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self: ImageEncoding, image: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(ImageEncoding, "encode", fail)
    with pytest.raises(OSError, match="disk full"):
        make_model(batch_size=1).generate_outputs(PROMPTS, 2, **fast_kwargs)


def test_generation_prints_no_progress_bars(
    model: DiffusersImageGeneration, fast_kwargs: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    model.generate_outputs(PROMPTS, 2, **fast_kwargs)
    assert capfd.readouterr() == ("", "")


# -- memory -------------------------------------------------------------------------------


def test_unload_frees_the_pipeline_and_returns_memory(
    tiny_pipeline_path: Path, fast_kwargs: dict[str, Any]
) -> None:
    """After unload() the weights are garbage and RSS is back within 10% of before load().

    The baseline is taken after a first load/generate/unload cycle: the first cycle imports
    and initialises parts of torch, diffusers and transformers (lazy modules, kernel caches,
    thread pools) that stay for the life of the process whatever the backend does. A second
    cycle must then give back what it took.
    """
    model = DiffusersImageGeneration(model=tiny_pipeline_path, device="cpu")

    def cycle() -> weakref.ref[torch.nn.Module]:
        model.load()
        model.generate_outputs(PROMPTS, 2, **fast_kwargs)
        unet = weakref.ref(model.pipeline.unet)
        model.unload()
        return unet

    cycle()
    process = psutil.Process()
    baseline = process.memory_info().rss
    unet = cycle()
    assert unet() is None, "unload() left the weights reachable"
    assert not model.is_loaded
    assert process.memory_info().rss <= baseline * 1.10


# -- bad input and configuration ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_inference_steps": 0},
        {"num_inference_steps": -3},
        {"height": 60},
        {"width": 0},
        {"height": -64},
        {"seed": -1},
        {"guidance_scale": -1.0},
        {"negative_prompt": 3},
    ],
)
def test_bad_generation_kwargs_fail_before_anything_loads(
    tiny_pipeline_path: Path, kwargs: dict[str, Any]
) -> None:
    model = DiffusersImageGeneration(model=tiny_pipeline_path, device="cpu")
    name = next(iter(kwargs))
    with pytest.raises(InvalidInputError, match=name):
        model.generate_outputs(["a red fox"], **kwargs)
    assert not model.is_loaded, "the weights loaded despite bad input"


def test_bad_generation_kwargs_in_the_field_fail_at_construction(tiny_pipeline_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        DiffusersImageGeneration(model=tiny_pipeline_path, generation_kwargs={"width": 100})


@pytest.mark.parametrize(
    "fields",
    [
        {"torch_dtype": "float64"},
        {"device": "gpu"},
        {"device": "cuda:first"},
        {"batch_size": 0},
        {"image_format": "gif"},
        {"pipeline_kwargs": {"torch_dtype": "float16"}},
        {"pipeline_kwargs": {"revision": "main"}},
        {"model": ""},
    ],
)
def test_bad_fields_fail_at_construction(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=next(iter(fields))):
        DiffusersImageGeneration(**fields)


@pytest.mark.parametrize("key", ["token", "use_auth_token"])
def test_a_token_in_pipeline_kwargs_is_refused_and_not_shown(key: str) -> None:
    # A plain field would put the token in reprs and in every saved config.
    secret = "hf_pipeline_token_0123"
    with pytest.raises(InvalidInputError, match=f"put no '{key}' here.*HF_TOKEN") as raised:
        DiffusersImageGeneration(pipeline_kwargs={key: secret})
    assert secret not in exception_text(raised.value)


def test_missing_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-pipeline"
    model = DiffusersImageGeneration(model=missing, device="cpu")
    with pytest.raises(ConfigurationError, match="no-such-pipeline"):
        model.load()
    assert not model.is_loaded


def test_missing_relative_path_is_named() -> None:
    model = DiffusersImageGeneration(model="./no/such/pipeline", device="cpu")
    with pytest.raises(ConfigurationError, match=r"\./no/such/pipeline"):
        model.load()


def test_a_path_too_long_for_the_filesystem_is_named(tmp_path: Path) -> None:
    """stat() raises ENAMETOOLONG for such a name: that was a bare OSError."""
    model = DiffusersImageGeneration(model=str(tmp_path / ("n" * 300)), device="cpu")
    with pytest.raises(ConfigurationError, match="neither an existing folder"):
        model.load()


def test_folder_without_model_index_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"model_index\.json"):
        DiffusersImageGeneration(model=tmp_path, device="cpu").load()


@pytest.mark.parametrize(("index", "cause"), [("{not json", OSError), ("{}", KeyError)])
def test_unreadable_pipeline_folder_is_named(
    tmp_path: Path, index: str, cause: type[Exception]
) -> None:
    folder = tmp_path / "broken-pipeline"
    folder.mkdir()
    (folder / "model_index.json").write_text(index)
    model = DiffusersImageGeneration(model=folder, device="cpu")
    with pytest.raises(ConfigurationError, match="broken-pipeline") as caught:
        model.load()
    assert isinstance(caught.value.__cause__, cause)
    assert not model.is_loaded


def test_unavailable_device_fails_at_load(tiny_pipeline_path: Path) -> None:
    model = DiffusersImageGeneration(model=tiny_pipeline_path, device="cuda:99")
    with pytest.raises(ConfigurationError, match="cuda:99"):
        model.load()
    assert not model.is_loaded


def test_cpu_offload_without_accelerate_or_gpu_fails_clearly(tiny_pipeline_path: Path) -> None:
    model = DiffusersImageGeneration(
        model=tiny_pipeline_path, device="cpu", enable_model_cpu_offload=True
    )
    with pytest.raises(ConfigurationError, match="enable_model_cpu_offload"):
        model.load()
    assert not model.is_loaded


# -- the tiny pipeline builder ------------------------------------------------------------


def test_tiny_pipeline_weights_depend_only_on_the_seed(tmp_path: Path) -> None:
    rng_before = torch.random.get_rng_state()
    first = build_tiny_pipeline(tmp_path / "first", seed=1)
    again = build_tiny_pipeline(tmp_path / "again", seed=1)
    other = build_tiny_pipeline(tmp_path / "other", seed=2)
    assert torch.equal(torch.random.get_rng_state(), rng_before), "the global RNG moved"
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert (first / weights).read_bytes() == (again / weights).read_bytes()
    assert (first / weights).read_bytes() != (other / weights).read_bytes()


# -- packaging ----------------------------------------------------------------------------


def test_importing_the_package_imports_nothing_heavy() -> None:
    probe = (
        "import json, sys\n"
        "import imgen_diffusers, imgen_diffusers.plugin, imgen_diffusers.testing\n"
        "imgen_diffusers.DiffusersImageGeneration(model='some/model', batch_size=2)\n"
        "print(json.dumps([m for m in ('torch', 'diffusers', 'transformers', 'PIL') "
        "if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []
