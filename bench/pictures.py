"""A photo-like test picture, made on the spot so the benchmarks need no files or network.

Photos owe their compressibility to their spectrum: a lot of smooth, large-scale structure and
ever less detail at finer scales (power falling roughly as 1/f^2). The picture sums random
colour noise at every octave from 4x4 to full size, upscaled with bicubic filtering and
weighted by scale^-0.9, which gives it that shape. As a 1024x1024 image it encodes much like
real photos measured on the same machine: about 1 MB as PNG at PIL's default level, 110 KB as
JPEG at quality 93 (the size of the JPEG replies several inference providers send), and zlib's
run-length strategy beats level 1 in both speed and size on it, as it does on photos.
"""

from __future__ import annotations

import io
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

REPLY_JPEG_QUALITY = 93


def photo_like(size: int = 1024, seed: int = 0) -> Image:
    """A deterministic `size` x `size` RGB picture with a photo's spectrum."""
    from PIL import Image

    rng = random.Random(seed)
    picture: Image.Image | None = None
    total_weight = 0.0
    scale = 4
    while scale <= size:
        noise = Image.frombytes("RGB", (scale, scale), rng.randbytes(scale * scale * 3))
        octave = noise.resize((size, size), Image.Resampling.BICUBIC)
        weight = scale**-0.9
        total_weight += weight
        # A running weighted mean: blend the new octave in at its share of the weight so far.
        picture = octave if picture is None else Image.blend(picture, octave, weight / total_weight)
        scale *= 2
    assert picture is not None
    return picture


def encoded(picture: Image, image_format: str, **options: object) -> bytes:
    """`picture` saved by PIL in `image_format` with `options` (quality, compress_level...)."""
    buffer = io.BytesIO()
    picture.save(buffer, format=image_format.upper(), **options)
    return buffer.getvalue()
