"""images.py: base64 and PIL conversions, format detection, atomic writes."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from imgen.errors import InvalidInputError
from imgen.images import (
    BackgroundEncoder,
    EncodedImage,
    ImageEncoding,
    decode_bytes,
    decode_image,
    detect_format,
    encode_bytes,
    encode_image,
    images_output,
    keep_or_encode,
    keep_or_encode_async,
    write_image,
)


@pytest.mark.parametrize(
    ("fmt", "detected"), [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp"), ("GIF", "gif")]
)
def test_encode_decode_and_detect(fmt: str, detected: str) -> None:
    image = Image.new("RGBA", (5, 3), (10, 200, 30, 255))
    b64 = encode_image(image, format=fmt)
    assert detect_format(decode_bytes(b64)) == detected
    back = decode_image(b64)
    assert back.size == (5, 3)
    assert back.format == fmt


def test_png_round_trip_is_lossless() -> None:
    image = Image.frombytes("RGB", (4, 4), bytes(range(48)))
    assert decode_image(encode_image(image)).tobytes() == image.tobytes()


def test_unknown_bytes_and_bad_base64() -> None:
    assert detect_format(b"plain text") is None
    with pytest.raises(InvalidInputError, match="Not a base64 image"):
        decode_bytes("not base64!!")
    assert decode_bytes("data:image/png;base64,aGk=") == b"hi"


def test_write_image_picks_the_suffix_and_leaves_no_temp_file(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="JPEG")
    written = write_image(encode_bytes(buffer.getvalue()), tmp_path / "out" / "picture")
    assert written == tmp_path / "out" / "picture.jpg"
    assert written.read_bytes() == buffer.getvalue()
    assert sorted(p.name for p in written.parent.iterdir()) == ["picture.jpg"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert written.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


# --- bytes as received vs pixels to encode ---------------------------------------------------


def _photo_like(size: int = 96) -> Image.Image:
    """Smooth colour gradients with fine noise: compresses like a photo, not like a flat fill."""
    import random

    rng = random.Random(0)
    coarse = Image.frombytes("RGB", (6, 6), rng.randbytes(6 * 6 * 3))
    fine = Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3))
    return Image.blend(coarse.resize((size, size), Image.Resampling.BICUBIC), fine, 0.15)


def _saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_received_bytes_and_base64_keep_their_content_and_read_the_format() -> None:
    jpeg = _saved(_photo_like(), "JPEG", quality=70)
    from_bytes = EncodedImage.received(jpeg)
    assert (from_bytes.format, from_bytes.data) == ("jpeg", jpeg)
    assert from_bytes.b64 == encode_bytes(jpeg)

    b64 = encode_bytes(jpeg)
    from_b64 = EncodedImage.received(b64)
    assert from_b64.b64 is b64  # handed on as it came: not decoded and encoded again
    assert (from_b64.format, from_b64.data) == ("jpeg", jpeg)
    assert EncodedImage.received("data:image/jpeg;base64," + b64).b64 == b64


def test_the_bytes_signature_wins_over_the_declared_format() -> None:
    png = _saved(Image.new("RGB", (2, 2)), "PNG")
    assert EncodedImage.received(png, format="jpeg").format == "png"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    assert EncodedImage.received(svg, format="svg").format == "svg"
    assert EncodedImage.received(encode_bytes(svg)).format is None


def test_an_image_fresh_from_open_gives_back_the_bytes_it_was_opened_from() -> None:
    jpeg = _saved(_photo_like(), "JPEG", quality=70)
    opened = Image.open(io.BytesIO(jpeg))
    received = EncodedImage.opened_from(opened)
    assert received is not None and (received.format, received.data) == ("jpeg", jpeg)

    opened.load()  # its pixels may now be changed: the bytes no longer stand for them
    assert EncodedImage.opened_from(opened) is None
    assert EncodedImage.opened_from(Image.new("RGB", (2, 2))) is None


def test_keep_or_encode_keeps_received_bytes_unless_another_format_is_asked() -> None:
    jpeg = _saved(_photo_like(), "JPEG", quality=70)
    received = EncodedImage.received(jpeg)
    assert keep_or_encode(received) is received
    assert keep_or_encode(received, ImageEncoding("jpeg", quality=20)) is received
    assert keep_or_encode(Image.open(io.BytesIO(jpeg)), ImageEncoding("jpg")).data == jpeg

    as_png = keep_or_encode(received, ImageEncoding("png"))
    assert as_png.format == "png" and detect_format(as_png.data) == "png"
    assert as_png.decode().tobytes() == Image.open(io.BytesIO(jpeg)).tobytes()


def test_keep_or_encode_encodes_pixels_losslessly_in_png_by_default() -> None:
    pixels = _photo_like()
    encoded = keep_or_encode(pixels)
    assert encoded.format == "png"
    assert encoded.decode().tobytes() == pixels.tobytes()


@pytest.mark.asyncio
async def test_keep_or_encode_async_encodes_in_a_worker_thread() -> None:
    import threading

    threads: list[str] = []

    class Recording(ImageEncoding):
        def encode(self, image: Image.Image) -> EncodedImage:
            threads.append(threading.current_thread().name)
            return super().encode(image)

    pixels = _photo_like()
    encoded = await keep_or_encode_async(pixels, Recording("webp"))
    assert encoded.format == "webp" and threads and threads[0] != "MainThread"

    received = EncodedImage.received(_saved(pixels, "WEBP"))
    assert await keep_or_encode_async(received, Recording("webp")) is received
    assert len(threads) == 1  # kept bytes are not encoded again


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_every_png_level_and_quality_keeps_the_size_and_png_keeps_the_pixels(fmt: str) -> None:
    pixels = _photo_like()
    settings = [ImageEncoding(fmt, level, quality) for level in (None, 0, 9) for quality in (5, 95)]
    encoded = [setting.encode(pixels) for setting in settings]
    assert {image.format for image in encoded} == {fmt}
    assert {image.decode().size for image in encoded} == {pixels.size}
    sizes = {
        (s.compression_level, s.quality): len(e.data)
        for s, e in zip(settings, encoded, strict=True)
    }
    if fmt == "png":
        assert all(image.decode().tobytes() == pixels.tobytes() for image in encoded)
        assert sizes[(0, 5)] > sizes[(None, 5)] and sizes[(0, 5)] > sizes[(9, 5)]
    else:
        assert sizes[(None, 5)] < sizes[(None, 95)]


def test_jpeg_drops_an_alpha_channel() -> None:
    encoded = ImageEncoding("jpeg").encode(Image.new("RGBA", (4, 4), (1, 2, 3, 100)))
    assert encoded.decode().mode == "RGB"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"compression_level": 10}, "compression_level=10"),
        ({"compression_level": -1}, "compression_level=-1"),
        ({"quality": 0}, "quality=0"),
        ({"quality": 101}, "quality=101"),
    ],
)
def test_bad_encoding_settings_are_named(settings: dict[str, int], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ImageEncoding("png", **settings)


def test_images_output_names_one_format_a_list_or_none() -> None:
    png = EncodedImage.received(_saved(Image.new("RGB", (2, 2)), "PNG"))
    jpeg = EncodedImage.received(_saved(Image.new("RGB", (2, 2)), "JPEG"))
    unknown = EncodedImage.received(b"not an image")
    assert images_output([png, png]) == {"images": [png.b64, png.b64], "format": "png"}
    assert images_output([png, jpeg])["format"] == ["png", "jpeg"]
    assert "format" not in images_output([unknown])
    assert images_output([]) == {"images": []}


def test_background_encoder_keeps_the_order_and_returns_before_encoding() -> None:
    import threading

    release = threading.Event()

    class Held(ImageEncoding):
        def encode(self, image: Image.Image) -> EncodedImage:
            # The caller must get control back while this image is still being encoded.
            assert release.wait(10), "submit() waited for the encoder"
            return super().encode(image)

    images = [Image.new("RGB", (4, 4), (i, 0, 0)) for i in range(6)]
    with BackgroundEncoder(Held("png"), workers=3, backlog=6) as encoder:
        encoder.submit(*images)
        release.set()  # only reached if submit() returned while the encoding was held
        results = encoder.results()
    assert [image.decode().getpixel((0, 0)) for image in results] == [(i, 0, 0) for i in range(6)]


def test_background_encoder_submit_waits_while_the_backlog_is_full() -> None:
    import threading

    release = threading.Event()

    class Held(ImageEncoding):
        def encode(self, image: Image.Image) -> EncodedImage:
            release.wait(10)
            return super().encode(image)

    pixels = Image.new("RGB", (4, 4))
    with BackgroundEncoder(Held("png"), workers=1, backlog=2) as encoder:
        encoder.submit(pixels, pixels)  # within the backlog: returns at once
        third = threading.Thread(target=encoder.submit, args=(pixels,))
        third.start()
        third.join(0.2)
        assert third.is_alive(), "a third image beyond a backlog of 2 must wait"
        release.set()
        third.join(10)
        assert not third.is_alive()
        assert len(encoder.results()) == 3


def test_background_encoder_raises_the_first_failure() -> None:
    with BackgroundEncoder(ImageEncoding("png")) as encoder:
        encoder.submit(Image.new("RGB", (2, 2)), EncodedImage.received(b"garbage"))
        with pytest.raises(InvalidInputError, match="no image Pillow can read"):
            encoder.results()
