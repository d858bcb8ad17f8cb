"""`DiffusersImageGeneration`: Hugging Face diffusers text-to-image pipelines run locally on torch.

torch and diffusers are imported inside `load()` and `generate()`, never at module import, so
that resolving the backend by name stays cheap.
"""

from __future__ import annotations

import gc
import importlib.util
import inspect
import os
import re
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, PrivateAttr, field_validator

from imgen import ImageGenerationModel, local_paths
from imgen.errors import ConfigurationError, brief_repr
from imgen.images import BackgroundEncoder, ImageEncodingFields, ImageFormat, images_output
from imgen.interrupts import CallInterrupter, CallWatch
from imgen_diffusers.hub import hub_load_kwargs

if TYPE_CHECKING:
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline

__all__ = ["DiffusersImageGeneration"]

TorchDtype = Literal["auto", "float32", "float16", "bfloat16"]

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# A Hub repo id: "name" or "owner/name". Anything else that does not exist locally is a path.
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
# from_pretrained arguments the backend sets from its own fields, mapped to that field.
_FIELD_OF_LOAD_KWARG = {
    "dtype": "torch_dtype",
    "torch_dtype": "torch_dtype",
    "revision": "revision",
    "variant": "variant",
}
# from_pretrained arguments that carry a Hub token: a plain field would show it in reprs and
# write it into saved configs.
_TOKEN_LOAD_KWARGS = frozenset({"token", "use_auth_token"})
# torch seeds are unsigned 64-bit; staying below 2**63 leaves room for seed + image index.
_SEED_LIMIT = 2**63
# Fresh base seeds stay short, so they are easy to read back from the outputs and retype.
_RANDOM_SEED_LIMIT = 2**32


def _check_device(device: str) -> str:
    if not _DEVICE.fullmatch(device):
        raise ValueError('must be "auto", "cpu", "mps", "cuda" or "cuda:<index>"')
    return device


def _check_multiple_of_8(pixels: int) -> int:
    if pixels % 8:
        raise ValueError(f"must be a multiple of 8, e.g. {max(8, round(pixels / 8) * 8)}")
    return pixels


Device = Annotated[str, AfterValidator(_check_device)]
InferenceSteps = Annotated[int, Field(ge=1)]
GuidanceScale = Annotated[float, Field(ge=0, allow_inf_nan=False)]
ImageSide = Annotated[int, Field(gt=0), AfterValidator(_check_multiple_of_8)]
Seed = Annotated[int, Field(ge=0, lt=_SEED_LIMIT)]


class DiffusersImageGeneration(ImageEncodingFields, ImageGenerationModel):
    """Text-to-image with a local diffusers pipeline (Stable Diffusion, SDXL, Flux, ...).

    The pipeline is loaded with `AutoPipelineForText2Image.from_pretrained` from a Hub id or a
    local folder. Prompts and their generations are flattened and run `batch_size` images per
    pipeline call; every image gets its own `torch.Generator` seeded with `seed + index`, so the
    reported seeds reproduce the images (bit-exactly with the same `batch_size`). Images are
    encoded on worker threads while the pipeline denoises the next batch.
    """

    backend_name: ClassVar[str] = "diffusers"
    _prompt_seeds_supported: ClassVar[bool] = True

    model: str = Field(
        "stabilityai/sd-turbo",
        min_length=1,
        description='A Hugging Face Hub id ("owner/name") or a local folder written by '
        "save_pretrained.",
    )
    revision: str | None = Field(
        None, description="Hub revision to load: a branch, tag or commit; None for the default."
    )
    variant: str | None = Field(
        None,
        description='Weight file variant, e.g. "fp16" loads *.fp16.safetensors; None for the '
        "default weights.",
    )
    torch_dtype: TorchDtype = Field(
        "auto",
        description='Weight dtype. "auto": float16 on cuda and mps, float32 on cpu.',
    )
    device: Device = Field(
        "auto",
        description='"auto" picks cuda, then mps, then cpu; or "cpu", "cuda", "cuda:<index>", '
        '"mps".',
    )
    batch_size: int = Field(4, ge=1, description="Images per pipeline call.")
    enable_model_cpu_offload: bool = Field(
        False,
        description="Keep components on the CPU and move each to the GPU only while it runs "
        "(needs a GPU and the accelerate package).",
    )
    pipeline_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for from_pretrained (e.g. use_safetensors, "
        "local_files_only).",
    )
    image_format: ImageFormat = Field(
        "png",
        description='Encoding of the returned images: "png" (lossless; see compression_level), '
        '"jpeg" or "webp" (lossy; see image_quality).',
    )

    _pipeline: DiffusionPipeline | None = PrivateAttr(None)
    _device: str = PrivateAttr("cpu")
    _interrupter: CallInterrupter = PrivateAttr(default_factory=CallInterrupter)

    @field_validator("model", mode="before")
    @classmethod
    def _path_to_str(cls, model: Any) -> Any:
        return os.fspath(model) if isinstance(model, os.PathLike) else model

    @field_validator("pipeline_kwargs")
    @classmethod
    def _no_field_overrides(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        for key in kwargs:
            if key in _TOKEN_LOAD_KWARGS:
                # Not echoed: the value is a secret.
                raise ValueError(
                    f"put no {key!r} here, where reprs and saved configs would show it: "
                    "from_pretrained reads the HF_TOKEN environment variable and the saved "
                    "login (`hf auth login`) itself"
                )
            if key in _FIELD_OF_LOAD_KWARG:
                raise ValueError(f"set {key!r} with the {_FIELD_OF_LOAD_KWARG[key]!r} field")
        return kwargs

    @property
    def model_name(self) -> str:
        """The Hub id or local folder of the pipeline."""
        return self.model

    @property
    def pipeline(self) -> DiffusionPipeline:
        """The loaded diffusers pipeline (loading it first if needed), for direct tweaks."""
        if self._pipeline is None:
            self.load()
        assert self._pipeline is not None  # load() either sets it or raises
        return self._pipeline

    def load(self) -> None:
        """Load the pipeline onto `device`, checking all it can before reading any weights.

        Raises:
            ConfigurationError: The model folder is missing or not a diffusers pipeline, a
                Hub id is neither reachable nor cached, the device is not available, offload
                cannot run, or from_pretrained failed (the message names the model).
        """
        source = _pipeline_source(self.model)
        # A Hub id: fail fast, with the fixes, when the Hub is out of reach.
        hub_kwargs = (
            {}
            if local_paths.is_dir(source)
            else hub_load_kwargs(source, self.revision, self.pipeline_kwargs)
        )
        import torch

        device = _resolve_device(torch, self.device)
        if self.enable_model_cpu_offload:
            _check_offload_possible(device)
        from diffusers import AutoPipelineForText2Image

        dtype = getattr(torch, _dtype_name(self.torch_dtype, device))
        try:
            # diffusers leaves from_pretrained and pipeline __call__ unannotated, hence the
            # type: ignores here and in generate.
            pipeline = AutoPipelineForText2Image.from_pretrained(  # type: ignore[no-untyped-call]
                source,
                dtype=dtype,
                revision=self.revision,
                variant=self.variant,
                **self.pipeline_kwargs,
                **hub_kwargs,
            )
        except Exception as exc:
            raise ConfigurationError(
                f"Could not load the diffusers pipeline {brief_repr(self.model)}"
                f"{f' at revision {brief_repr(self.revision)}' if self.revision else ''}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if self.enable_model_cpu_offload:
            pipeline.enable_model_cpu_offload(device=device)
        else:
            pipeline.to(device)
        pipeline.set_progress_bar_config(disable=True)
        self._pipeline = pipeline
        self._device = device
        super().load()

    def unload(self) -> None:
        """Drop the pipeline and hand its memory back, so the process's RSS really drops."""
        self._pipeline = None
        super().unload()
        # Pipelines hold reference cycles (modules, hooks, configs): refcounting alone frees
        # nothing until the collector runs.
        gc.collect()
        _empty_accelerator_caches()
        _trim_c_heap()

    def interrupt(self) -> None:
        """Stop the calls in progress after their current denoising step."""
        self._interrupter.interrupt()

    def generate(
        self,
        inputs: list[str],
        num_generations: int = 1,
        negative_prompt: str | None = None,
        num_inference_steps: InferenceSteps | None = None,
        guidance_scale: GuidanceScale | None = None,
        height: ImageSide | None = None,
        width: ImageSide | None = None,
        seed: Seed | list[Seed] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Generate `num_generations` images per prompt, `batch_size` images per pipeline call.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            negative_prompt: What the images should not show, applied to every image; needs
                guidance_scale > 1 to have an effect. None: no negative prompt.
            num_inference_steps: Denoising steps (>= 1). None: the pipeline's default.
            guidance_scale: Classifier-free guidance strength; <= 1 turns guidance off.
                None: the pipeline's default.
            height: Image height in pixels, a positive multiple of 8. None: the pipeline's
                default.
            width: Image width in pixels, a positive multiple of 8. None: the pipeline's
                default.
            seed: Base seed: image k of prompt i uses seed + i * num_generations + k. A list
                gives each prompt its own: image k of prompt i uses seed[i] + k. None: a
                random base seed, reported in the outputs.

        Returns:
            One list per prompt holding {"images": [...], "format": ..., "seeds": [...]}.
        """
        import torch

        pipeline = self.pipeline
        watch = self._interrupter.watch()
        if isinstance(seed, list):
            firsts = seed
        else:
            base_seed = secrets.randbelow(_RANDOM_SEED_LIMIT) if seed is None else seed
            firsts = [base_seed + i * num_generations for i in range(len(inputs))]
        # Flattened (prompt, generation) pairs, each with its own seed.
        prompts = [prompt for prompt in inputs for _ in range(num_generations)]
        seeds = [first + k for first in firsts for k in range(num_generations)]
        options = {
            name: value
            for name, value in (
                ("num_inference_steps", num_inference_steps),
                ("guidance_scale", guidance_scale),
                ("height", height),
                ("width", width),
            )
            if value is not None
        }
        encoding = self.image_encoding(self.image_format)
        # Two batches may wait for the encoder: a third pipeline call waits for it instead.
        with BackgroundEncoder(encoding, backlog=2 * self.batch_size) as encoder:
            for start in range(0, len(prompts), self.batch_size):
                watch.check()
                chunk = prompts[start : start + self.batch_size]
                generators = [
                    torch.Generator(self._device).manual_seed(image_seed)
                    for image_seed in seeds[start : start + len(chunk)]
                ]
                negatives = None if negative_prompt is None else [negative_prompt] * len(chunk)
                result = pipeline(  # type: ignore[operator]
                    prompt=chunk,
                    negative_prompt=negatives,
                    generator=generators,
                    output_type="pil",
                    **options,
                    **_stop_when_interrupted(pipeline, watch),
                )
                encoder.submit(*result.images)
            images = encoder.results()
        return [
            [
                {
                    **images_output(images[first : first + num_generations]),
                    "seeds": seeds[first : first + num_generations],
                }
            ]
            for first in range(0, len(prompts), num_generations)
        ]


def _stop_when_interrupted(pipeline: Any, watch: CallWatch) -> dict[str, Any]:
    """A step-end callback for the pipeline call that stops it once `watch` is interrupted.

    Pipelines without `callback_on_step_end` get none, and run each call to its end.
    """
    if "callback_on_step_end" not in inspect.signature(pipeline.__call__).parameters:
        return {}

    def stop(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        watch.check()
        return tensors

    return {"callback_on_step_end": stop}


def _pipeline_source(model: str) -> str:
    """What to pass to from_pretrained: a checked local folder, or a Hub id as is.

    Raises:
        ConfigurationError: `model` names a path that is missing or is no pipeline folder.
    """
    folder = Path(model).expanduser()
    if not local_paths.exists(folder):
        if _HUB_ID.fullmatch(model):
            return model
        raise ConfigurationError(
            f"The diffusers model {brief_repr(model)} is neither an existing folder (it does not "
            'exist) nor a Hugging Face Hub id ("owner/name").'
        )
    if not (folder / "model_index.json").is_file():
        raise ConfigurationError(
            f"The diffusers model folder {str(folder)!r} holds no model_index.json, so it is not "
            "a diffusers pipeline: point `model` at a folder written by save_pretrained, or at "
            "a Hub id."
        )
    return str(folder)


def _resolve_device(torch: Any, requested: str) -> str:
    """The device to run on: "auto" picks cuda, then mps, then cpu.

    Raises:
        ConfigurationError: The requested accelerator is not available.
    """
    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = torch.backends.mps.is_available()
    if requested == "auto":
        return "cuda" if cuda_count else "mps" if mps else "cpu"
    kind, _, index = requested.partition(":")
    if kind == "cuda" and int(index or 0) >= cuda_count:
        raise ConfigurationError(
            f"device={requested!r} is not available: torch sees {cuda_count} CUDA device(s). "
            'Use device="auto" or "cpu".'
        )
    if kind == "mps" and not mps:
        raise ConfigurationError(
            'device="mps" is not available on this machine. Use device="auto" or "cpu".'
        )
    return requested


def _dtype_name(requested: TorchDtype, device: str) -> str:
    """The torch dtype name to load the weights in; "auto" halves precision on accelerators."""
    if requested != "auto":
        return requested
    return "float32" if device == "cpu" else "float16"


def _check_offload_possible(device: str) -> None:
    """Model CPU offload needs accelerate and a GPU to move components onto.

    Raises:
        ConfigurationError: One of the two is missing.
    """
    if importlib.util.find_spec("accelerate") is None:
        raise ConfigurationError(
            "enable_model_cpu_offload=True needs the accelerate package: "
            "`pip install accelerate` (offload also needs a GPU)."
        )
    if device == "cpu":
        raise ConfigurationError(
            "enable_model_cpu_offload=True moves each component onto a GPU while it runs, but "
            "the device is 'cpu'. Set device to a GPU, or turn offload off."
        )


def _empty_accelerator_caches() -> None:
    """Return cached accelerator memory to the driver, without initialising any accelerator."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    if torch.backends.mps.is_available():
        torch.mps.empty_cache()


def _trim_c_heap() -> None:
    """Ask glibc to give freed heap pages back to the OS; other C libraries are left alone."""
    import ctypes  # here, not at the top: discovery imports this module

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: no libc.so.6 or no malloc_trim
        pass
