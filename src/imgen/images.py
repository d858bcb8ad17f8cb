"""Conversions between base64 strings, bytes and PIL images, format detection and saving.

Pillow is imported inside the functions that need it, so `import imgen` stays light.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from imgen.errors import InvalidInputError, brief_repr

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "decode_bytes",
    "decode_image",
    "detect_format",
    "encode_bytes",
    "encode_image",
    "write_atomically",
    "write_image",
]

# Extension written for each detected format.
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp", "gif": "gif"}


def detect_format(data: bytes) -> str | None:
    """Return "png", "jpeg", "webp" or "gif" from the file signature, or None if unknown."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def encode_bytes(data: bytes) -> str:
    """Encode raw image bytes as a base64 string."""
    return base64.b64encode(data).decode("ascii")


def decode_bytes(b64: str) -> bytes:
    """Decode a base64 image string (a `data:` URL prefix is accepted) into bytes.

    Raises:
        InvalidInputError: `b64` is not a base64 string.
    """
    if not isinstance(b64, str):
        raise InvalidInputError(
            f"Not a base64 image string but {type(b64).__name__}: {brief_repr(b64, 60)}"
        )
    if b64.startswith("data:"):
        b64 = b64.partition(",")[2]
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(f"Not a base64 image string: {b64[:40]!r}...") from exc


def encode_image(img: Image, format: str = "PNG") -> str:
    """Encode a PIL image as a base64 string in `format` (PNG, JPEG, WEBP, GIF...).

    Raises:
        InvalidInputError: `img` is not a PIL image, or Pillow cannot write `format`.
    """
    from PIL import Image as PILImage

    if not isinstance(img, PILImage.Image):
        raise InvalidInputError(f"Not a PIL image but {type(img).__name__}: {brief_repr(img, 60)}")
    name = "JPEG" if str(format).upper() == "JPG" else str(format).upper()
    PILImage.preinit()  # the common formats; save() would load them anyway
    if name not in PILImage.SAVE:
        PILImage.init()  # every other format Pillow knows
    if name not in PILImage.SAVE:
        raise InvalidInputError(
            f"Pillow cannot write the image format {brief_repr(format, 40)}; use PNG, JPEG, "
            "WEBP or GIF."
        )
    buffer = io.BytesIO()
    if name == "JPEG" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")  # JPEG has no alpha channel
    img.save(buffer, format=name)
    return encode_bytes(buffer.getvalue())


def decode_image(b64: str) -> Image:
    """Decode a base64 image string into a loaded PIL image.

    Raises:
        InvalidInputError: `b64` is not base64, or its bytes are no image Pillow can read.
    """
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    data = decode_bytes(b64)
    try:
        img = PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError:
        problem = f"The bytes are no image Pillow can read (they start {data[:16]!r})."
    else:
        img.load()
        return img
    raise InvalidInputError(problem)


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` in one step: after a crash it holds the old bytes or the new.

    The bytes go to a temporary file beside it (`.<name>.<random>.tmp`), which is renamed into
    place.

    Args:
        path: The file to write.
        data: Its new content.
        durable: fsync the bytes before the rename. Pass False when the caller makes many
            files durable at once (`imgen.batch` does, once per group of images).
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    # O_EXCL claims a fresh name; mode 0o666 lets the umask decide, as for any new file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_image(b64: str, path: str | os.PathLike[str], *, durable: bool = True) -> Path:
    """Write a base64 image atomically to `path`; without a suffix, one is taken from the bytes.

    See `write_atomically`: a crash never leaves a torn image behind.

    Args:
        b64: The image, base64-encoded.
        path: Where to write it.
        durable: fsync the bytes before the rename (see `write_atomically`).

    Returns:
        The path written.
    """
    data = decode_bytes(b64)
    target = Path(path)
    if not target.suffix:
        target = target.with_suffix("." + EXTENSIONS.get(detect_format(data) or "", "bin"))
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, data, durable=durable)
    return target
