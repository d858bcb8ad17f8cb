"""The `echo` backend: every image is one solid colour, derived from the prompt and the seed."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field

from imgen import AsyncImageGenerationModel
from imgen.images import ImageEncodingFields, ImageFormat, images_output, keep_or_encode_async

if TYPE_CHECKING:
    from PIL.Image import Image

Pixels = Annotated[int, Field(ge=1, le=1024)]


def colour_of(prompt: str, seed: int) -> tuple[int, int, int]:
    """The RGB colour of a prompt's image: the first three bytes of a hash, so reruns agree."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    return digest[0], digest[1], digest[2]


def render(colour: tuple[int, int, int], width: int, height: int) -> Image:
    """The pixels of a `width` x `height` image filled with `colour`."""
    from PIL import Image  # imported on use: the plugin module must stay cheap to import

    return Image.new("RGB", (width, height), colour)


# ImageEncodingFields adds the compression_level (PNG) and image_quality (JPEG, WebP) fields.
class EchoImageGeneration(ImageEncodingFields, AsyncImageGenerationModel):
    """Solid-colour images derived from the prompt: a teaching backend that calls no service."""

    backend_name: ClassVar[str] = "echo"

    model: Literal["solid"] = Field("solid", description='The model id; only "solid" exists.')
    image_format: ImageFormat = Field("png", description="The encoding of the images.")

    @property
    def model_name(self) -> str:
        """The model id."""
        return self.model

    async def agenerate(
        self,
        input: str,
        num_generations: int = 1,
        width: Pixels = 64,
        height: Pixels = 64,
        seed: int = 0,
    ) -> list[dict[str, Any]]:
        """Render `num_generations` solid-colour images for one prompt.

        Args:
            input: The prompt.
            num_generations: Images to render.
            width: Image width in pixels (1..1024).
            height: Image height in pixels (1..1024).
            seed: Image k is coloured from the prompt and `seed + k`.

        Returns:
            A list holding one dict: "images" (base64 strings), "format", "seeds" and
            "colours" (each image's colour as "#rrggbb").
        """
        import asyncio  # imported on use, like Pillow: discovery imports this module

        seeds = [seed + k for k in range(num_generations)]
        colours = [colour_of(input, s) for s in seeds]
        encoding = self.image_encoding(self.image_format)
        # Pixels to encode: keep_or_encode_async encodes them in worker threads, which keeps
        # the event loop free for other prompts.
        images = await asyncio.gather(
            *(keep_or_encode_async(render(c, width, height), encoding) for c in colours)
        )
        return [
            {
                **images_output(images),  # "images" (base64) and "format"
                "seeds": seeds,
                "colours": ["#{:02x}{:02x}{:02x}".format(*colour) for colour in colours],
            }
        ]
