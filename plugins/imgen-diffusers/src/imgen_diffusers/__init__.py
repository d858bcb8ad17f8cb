"""imgen-diffusers: run Hugging Face diffusers text-to-image pipelines locally through imgen.

    import imgen
    with imgen.get_model("diffusers:stabilityai/sd-turbo") as model:
        outputs = model.generate_outputs(["a red fox"], num_inference_steps=1, guidance_scale=0.0)

Importing this package never imports torch or diffusers: they load when a model loads.
"""

from __future__ import annotations

from imgen_diffusers.model import DiffusersImageGeneration

__all__ = ["DiffusersImageGeneration"]
