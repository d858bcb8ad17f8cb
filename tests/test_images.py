"""images.py: base64 and PIL conversions, format detection, atomic writes."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from imgen.errors import InvalidInputError
from imgen.images import decode_bytes, decode_image, detect_format, encode_image, write_image


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
    from imgen.images import encode_bytes

    written = write_image(encode_bytes(buffer.getvalue()), tmp_path / "out" / "picture")
    assert written == tmp_path / "out" / "picture.jpg"
    assert written.read_bytes() == buffer.getvalue()
    assert sorted(p.name for p in written.parent.iterdir()) == ["picture.jpg"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert written.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
