"""imgen-diffusers: run Hugging Face diffusers text-to-image pipelines locally through imgen.

    import imgen
    with imgen.get_model("diffusers:stabilityai/sd-turbo") as model:
        outputs = model.generate_outputs(["a red fox"], num_inference_steps=1, guidance_scale=0.0)

Importing this package is cheap: torch and diffusers are imported when a model loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgen_diffusers.model import DiffusersImageGeneration

__all__ = ["DiffusersImageGeneration"]


def __getattr__(name: str) -> Any:
    # model.py is light too, but resolving the class on first use keeps `import imgen_diffusers`
    # from paying for pydantic model construction it may never need.
    if name == "DiffusersImageGeneration":
        from imgen_diffusers.model import DiffusersImageGeneration

        return DiffusersImageGeneration
    raise AttributeError(f"module 'imgen_diffusers' has no attribute {name!r}")
