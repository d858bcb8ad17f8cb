"""Image bytes and pixels: the one way every backend puts images into its outputs.

An image reaches a backend in one of two forms, and `keep_or_encode` has one rule for both:

- **bytes as received** (an API's base64, a downloaded file, an HTTP reply): an
  `EncodedImage`, kept exactly as it came, in its real format. It is decoded and encoded again
  only when the user asks for another format.
- **pixels to encode** (a PIL image a local pipeline made): encoded once, with the
  `ImageEncoding` the user chose. `BackgroundEncoder` does it on worker threads, so a
  generation loop makes the next images meanwhile.

`images_output` turns the results into the `{"images": [...], "format": ...}` of an output.
There are also base64 conversions, format detection and atomic writes. Pillow is imported
inside the functions that need it, so `import imgen` stays light.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import uuid
import zlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, Field

from imgen.errors import InvalidInputError, brief_repr

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "DEFAULT_QUALITY",
    "BackgroundEncoder",
    "EncodedImage",
    "ImageEncoding",
    "ImageEncodingFields",
    "ImageFormat",
    "decode_bytes",
    "decode_image",
    "detect_format",
    "encode_bytes",
    "encode_image",
    "images_output",
    "keep_or_encode",
    "keep_or_encode_async",
    "write_atomically",
    "write_image",
]

ImageFormat = Literal["png", "jpeg", "webp"]
"""The formats a backend offers to encode its images in."""

DEFAULT_QUALITY = 90
"""JPEG and WebP quality unless set: little visible loss, at about 60% of quality 95's size."""

# Extension written for each detected format.
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp", "gif": "gif"}
_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
# A base64 prefix long enough for every signature detect_format reads (12 bytes).
_SIGNATURE_CHARS = 16


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
    try:
        return base64.b64decode(_without_data_prefix(b64), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(f"Not a base64 image string: {b64[:40]!r}...") from exc


def _without_data_prefix(b64: str) -> str:
    return b64.partition(",")[2] if b64.startswith("data:") else b64


def encode_image(img: Image, format: str = "PNG") -> str:
    """Encode a PIL image as a base64 string in `format` (PNG, JPEG, WEBP, GIF...).

    The compression is `ImageEncoding`'s default for that format.

    Raises:
        InvalidInputError: `img` is not a PIL image, or Pillow cannot write `format`.
    """
    from PIL import Image as PILImage

    if not isinstance(img, PILImage.Image):
        raise InvalidInputError(f"Not a PIL image but {type(img).__name__}: {brief_repr(img, 60)}")
    encoding = ImageEncoding(str(format))
    name = encoding.format.upper()
    PILImage.preinit()  # the common formats; save() would load them anyway
    if name not in PILImage.SAVE:
        PILImage.init()  # every other format Pillow knows
    if name not in PILImage.SAVE:
        raise InvalidInputError(
            f"Pillow cannot write the image format {brief_repr(format, 40)}; use PNG, JPEG, "
            "WEBP or GIF."
        )
    return encoding.encode(img).b64


def decode_image(b64: str) -> Image:
    """Decode a base64 image string into a loaded PIL image.

    Raises:
        InvalidInputError: `b64` is not base64, or its bytes are no image Pillow can read.
    """
    return EncodedImage.received(b64).decode()


class EncodedImage:
    """One image as encoded bytes and their format.

    Bytes a provider sent become one with `received`, and stay exactly as they came; pixels
    become one with `ImageEncoding.encode`. The bytes and their base64 are each computed once,
    on first use, so base64 received is handed on without ever being decoded.

    Attributes:
        format: "png", "jpeg", "webp", "gif" (any format Pillow writes, for encoded pixels),
            or None when the bytes are of no known format.
    """

    __slots__ = ("_b64", "_data", "format")

    def __init__(
        self, *, data: bytes | None = None, b64: str | None = None, format: str | None
    ) -> None:
        """Wrap `data` or its base64 `b64` (one of them), of the given `format`."""
        if (data is None) == (b64 is None):
            raise TypeError("EncodedImage takes exactly one of data and b64")
        self._data = data
        self._b64 = b64
        self.format = format

    @classmethod
    def received(cls, content: bytes | str, format: str | None = None) -> EncodedImage:
        """Bytes as a provider sent them, or their base64 as it sent it.

        Args:
            content: The bytes, or their base64 (a `data:` URL prefix is dropped).
            format: The format the sender declared. The bytes' own signature wins; the
                declared format counts only where the signature is unknown (e.g. SVG).
        """
        if isinstance(content, bytes):
            return cls(data=content, format=detect_format(content) or format)
        if not isinstance(content, str):
            raise InvalidInputError(
                f"Not image bytes or base64 but {type(content).__name__}: {brief_repr(content, 60)}"
            )
        b64 = _without_data_prefix(content)
        try:
            detected = detect_format(decode_bytes(b64[:_SIGNATURE_CHARS]))
        except InvalidInputError:
            detected = None
        return cls(b64=b64, format=detected or format)

    @classmethod
    def opened_from(cls, image: Image) -> EncodedImage | None:
        """The bytes a PIL image was opened from, when it still holds them; else None.

        `PIL.Image.open(BytesIO(data))` reads only the header: until its pixels are loaded
        (which any change to them needs) the image holds `data`, and `data` is exactly its
        pixels. SDKs that hand out such images (huggingface_hub's `text_to_image` does) thus
        give the bytes as received, with nothing decoded.
        """
        source = getattr(image, "fp", None)
        if not isinstance(source, io.BytesIO):
            return None
        declared = (image.format or "").lower() or None
        return cls.received(source.getvalue(), _FORMAT_ALIASES.get(declared or "", declared))

    @property
    def data(self) -> bytes:
        """The encoded bytes."""
        if self._data is None:
            assert self._b64 is not None
            self._data = decode_bytes(self._b64)
        return self._data

    @property
    def b64(self) -> str:
        """The encoded bytes as base64, as the output contract carries them."""
        if self._b64 is None:
            assert self._data is not None
            self._b64 = encode_bytes(self._data)
        return self._b64

    def decode(self) -> Image:
        """The pixels, as a loaded PIL image.

        Raises:
            InvalidInputError: The bytes are no image Pillow can read.
        """
        from PIL import Image as PILImage
        from PIL import UnidentifiedImageError

        try:
            image = PILImage.open(io.BytesIO(self.data))
        except UnidentifiedImageError:
            problem = f"The bytes are no image Pillow can read (they start {self.data[:16]!r})."
        else:
            image.load()
            return image
        raise InvalidInputError(problem)

    def __repr__(self) -> str:
        size = len(self._data) if self._data is not None else f"~{len(self.b64) * 3 // 4}"
        return f"EncodedImage(format={self.format!r}, {size} bytes)"


@dataclass(frozen=True)
class ImageEncoding:
    """How pixels become bytes: the format and its compression.

    The PNG default comes from measuring speed against size on a photo-like 1024x1024 image
    (`python -m bench images`, quoted on the docs' output contract page): zlib's run-length
    strategy encodes it as fast as level 1 and smaller than level 6, which takes nearly six
    times as long.

    Attributes:
        format: "png", "jpeg" or "webp"; any other format Pillow writes ("gif", "bmp"...)
            works without compression settings. "jpg" is taken for "jpeg".
        compression_level: PNG only: zlib level 0 (no compression, fastest) to 9 (smallest,
            slowest). None: zlib's run-length strategy.
        quality: JPEG and WebP only: 1 (smallest) to 100 (best).
    """

    format: str = "png"
    compression_level: int | None = None
    quality: int = DEFAULT_QUALITY

    def __post_init__(self) -> None:
        name = self.format.lower()
        object.__setattr__(self, "format", _FORMAT_ALIASES.get(name, name))
        level = self.compression_level
        if level is not None and not (isinstance(level, int) and 0 <= level <= 9):
            raise InvalidInputError(
                f"compression_level={level!r} is not a zlib level: use 0 (none) to 9 "
                "(smallest), or None for the fast default."
            )
        if not (isinstance(self.quality, int) and 1 <= self.quality <= 100):
            raise InvalidInputError(f"quality={self.quality!r} is out of range: use 1 to 100.")

    def encode(self, image: Image) -> EncodedImage:
        """Encode the pixels of `image` (JPEG drops an alpha channel, which it cannot hold)."""
        options: dict[str, Any] = {}
        if self.format == "png":
            options = (
                {"compress_type": zlib.Z_RLE}
                if self.compression_level is None
                else {"compress_level": self.compression_level}
            )
        elif self.format in ("jpeg", "webp"):
            options = {"quality": self.quality}
            if self.format == "jpeg" and image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format=self.format.upper(), **options)
        return EncodedImage(data=buffer.getvalue(), format=self.format)


ImageSource: TypeAlias = "EncodedImage | Image"
"""What a backend has in hand: bytes as received, or pixels (a PIL image)."""


def keep_or_encode(image: ImageSource, encoding: ImageEncoding | None = None) -> EncodedImage:
    """The image as it goes into an output: bytes as received are kept, pixels are encoded.

    Args:
        image: Bytes as received (an `EncodedImage`, or a PIL image still unread over the
            bytes it was opened from: see `EncodedImage.opened_from`), or pixels.
        encoding: What the user asked for. Received bytes are kept as they came unless it
            names another format; only then are they decoded and encoded. Pixels are encoded
            with it (PNG at the defaults when None).
    """
    kept = _keepable(image, encoding)
    if kept is not None:
        return kept
    pixels = image.decode() if isinstance(image, EncodedImage) else image
    return (encoding or ImageEncoding()).encode(pixels)


async def keep_or_encode_async(
    image: ImageSource, encoding: ImageEncoding | None = None
) -> EncodedImage:
    """`keep_or_encode` for async backends: encoding, CPU work, runs in a worker thread.

    Kept bytes are returned at once, without the hop to a thread.
    """
    kept = _keepable(image, encoding)
    if kept is not None:
        return kept
    import asyncio  # kept out of module import: see imgen.base

    return await asyncio.to_thread(keep_or_encode, image, encoding)


def _keepable(image: ImageSource, encoding: ImageEncoding | None) -> EncodedImage | None:
    """The received bytes of `image` when they can go into the output as they are."""
    received = image if isinstance(image, EncodedImage) else EncodedImage.opened_from(image)
    if received is not None and (encoding is None or received.format == encoding.format):
        return received
    return None


class BackgroundEncoder:
    """Encodes images on worker threads while the caller makes the next ones.

    zlib, libjpeg and libwebp release the GIL while they compress, and so does torch while it
    computes, so a pipeline's next batch is denoised while the previous one is encoded.
    `results()` keeps the order in which the images were submitted.

    Example:
        A sync generation loop::

            with BackgroundEncoder(encoding, backlog=2 * batch_size) as encoder:
                for batch in batches:
                    encoder.submit(*pipeline(batch).images)
                images = encoder.results()
    """

    def __init__(
        self,
        encoding: ImageEncoding | None = None,
        *,
        workers: int | None = None,
        backlog: int = 16,
    ) -> None:
        """Start no thread yet: each starts with the first image it is needed for.

        Args:
            encoding: Passed to `keep_or_encode` for each image.
            workers: Encoding threads; None: as many as CPUs, at most 4.
            backlog: `submit` waits while more images than this are not encoded yet, so a
                caller faster than the encoder holds a bounded number of images in memory.
        """
        self._encoding = encoding
        self._backlog = max(1, backlog)
        self._pool = ThreadPoolExecutor(
            max_workers=workers or min(4, os.cpu_count() or 1), thread_name_prefix="imgen-encode"
        )
        self._futures: list[Future[EncodedImage]] = []
        self._settled = 0  # the futures before this index are known to be done

    def submit(self, *images: ImageSource) -> None:
        """Queue images for encoding; waits first while the backlog is full.

        Raises:
            Exception: An earlier image failed to encode: its error, raised here so the
                caller stops making images that cannot be delivered.
        """
        for image in images:
            self._futures.append(self._pool.submit(keep_or_encode, image, self._encoding))
        while len(self._futures) - self._settled > self._backlog:
            self._futures[self._settled].result()
            self._settled += 1

    def results(self) -> list[EncodedImage]:
        """Every image submitted so far, encoded, in submission order (waits for them).

        Raises:
            Exception: The error of the first image that failed to encode.
        """
        return [future.result() for future in self._futures]

    def __enter__(self) -> BackgroundEncoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # After a failure nobody will read the results: drop what has not started.
        self._pool.shutdown(wait=True, cancel_futures=exc_type is not None)


def images_output(images: Sequence[EncodedImage]) -> dict[str, Any]:
    """The output dict for `images`: `{"images": [base64...], "format": ...}`.

    "format" is one string when every image has the same known format, a list aligned with
    the images when they differ (as the engine's merge of single-image calls does), and left
    out when no format is known.
    """
    output: dict[str, Any] = {"images": [image.b64 for image in images]}
    formats = [image.format for image in images]
    if formats and all(f == formats[0] for f in formats):
        if formats[0] is not None:
            output["format"] = formats[0]
    elif formats:
        output["format"] = formats
    return output


PngCompressionLevel = Annotated[int, Field(ge=0, le=9)]
Quality = Annotated[int, Field(ge=1, le=100)]


class ImageEncodingFields(BaseModel):
    """The compression fields of a backend that encodes pixels; mix it into the backend class.

    The backend declares its own `image_format` field (its default, and whether None means
    "as the provider sent them", are its own) and passes it to `image_encoding`.
    """

    compression_level: PngCompressionLevel | None = Field(
        None,
        description="PNG compression: a zlib level, 0 (none, fastest) to 9 (smallest, "
        "slowest). None: zlib's run-length strategy, about as fast as level 1 and as small "
        "as level 6 on photo-like images.",
    )
    image_quality: Quality = Field(
        DEFAULT_QUALITY, description="JPEG and WebP quality, 1 (smallest) to 100 (best)."
    )

    def image_encoding(self, image_format: str | None) -> ImageEncoding | None:
        """The `ImageEncoding` for `image_format` with these settings; None for None."""
        if image_format is None:
            return None
        return ImageEncoding(image_format, self.compression_level, self.image_quality)


def write_atomically(path: Path, data: bytes, *, durable: bool = True, mode: int = 0o666) -> None:
    """Replace `path` with `data` in one step: after a crash it holds the old bytes or the new.

    The bytes go to a temporary file beside it (`.<name>.<random>.tmp`), which is renamed into
    place.

    Args:
        path: The file to write.
        data: Its new content.
        durable: fsync the bytes before the rename. Pass False when the caller makes many
            files durable at once (`imgen.batch` does, once per group of images).
        mode: The permissions the file is created with (less the umask): 0o600 keeps a
            secret private from its first byte on.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    # O_EXCL claims a fresh name. The mode (less the umask) is set at creation, never after.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
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
