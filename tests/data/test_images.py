"""Safe image decoding: formats accepted, bad files refused with ImageError."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facepp.data.images import decode_image_bytes, read_image
from facepp.errors import ImageError


def _encode(fmt: str, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((30, 20, 3), 120, np.uint8)).convert(mode).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "mode"), [("JPEG", "RGB"), ("PNG", "RGB"), ("PPM", "L"), ("GIF", "P"), ("BMP", "RGB"), ("PNG", "RGBA")])
def test_common_formats_decode_to_rgb(fmt: str, mode: str) -> None:
    pixels = decode_image_bytes(_encode(fmt, mode))
    assert pixels.shape == (30, 20, 3) and pixels.dtype == np.uint8


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = zlib.compress(b"\x00" * 64)
    data = struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    return b"\x89PNG\r\n\x1a\n" + chunk + data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a readable image"),
        (b"%PDF-1.4\n" + b"0" * 100, "not a readable image"),
        (_png_header_only(100_000, 100_000), "refused before decoding"),
        (_png_header_only(20_000, 20), "refused before decoding"),
        (_png_header_only(7000, 7000), "refused before decoding"),
    ],
    ids=["zero-byte", "text", "pdf", "bomb", "too-wide", "too-many-pixels"],
)
def test_bad_bytes_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image_bytes(data)


def test_truncated_jpeg_is_refused(rng: np.random.Generator) -> None:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(buf, format="JPEG")
    data = buf.getvalue()
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image_bytes(data[: len(data) // 2])


def test_read_image_missing_and_real_files(tmp_path: Path, data_root: Path) -> None:
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image(tmp_path / "zero.jpg")
    orl = read_image(data_root / "orl" / "s3" / "1.pgm")  # newline-separated PGM header
    assert orl.shape == (112, 92, 3)
    lfw = read_image(data_root / "lfw" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")
    assert lfw.shape == (250, 250, 3)
