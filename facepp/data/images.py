"""Safe image decoding: every role that reads an image file or upload goes through here.

The checks run in order of cost: the byte size, then the header (format and
dimensions, read without decoding any pixel, so a decompression bomb is refused
before it can allocate), then the full decode (which detects truncation).
Any failure raises :class:`~facepp.errors.ImageError` with a message saying what
was expected; pixels are never echoed.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from facepp.errors import ImageError

logger = logging.getLogger(__name__)

#: Suffixes recognised as images when scanning a dataset folder.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pbm", ".pnm", ".gif", ".bmp", ".tif", ".tiff", ".webp"}
)
#: Pillow format names accepted after sniffing the header (the suffix is never trusted).
ACCEPTED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "PPM", "GIF", "BMP", "TIFF", "WEBP", "MPO"})
#: Default limits: 25 MiB of file, 40 megapixels, 12000 px on a side.
MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_SIDE = 12_000


def decode_image_bytes(
    data: bytes,
    *,
    name: str = "image",
    max_pixels: int = MAX_PIXELS,
    max_side: int = MAX_SIDE,
) -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, PGM/PPM, GIF, BMP, TIFF, WebP) to RGB pixels.

    Args:
        data: The encoded file content.
        name: A label for error messages (a file name, never the content).
        max_pixels: Largest accepted width x height, checked on the header before decoding.
        max_side: Largest accepted width or height.

    Returns:
        (H, W, 3) uint8 RGB array. Grey images are replicated to three channels;
        for animated GIFs the first frame is used.

    Raises:
        ImageError: empty, not an image, unsupported format, too large, or truncated/corrupt.
    """
    if len(data) == 0:
        raise ImageError(f"{name}: empty file (0 bytes), expected an encoded image")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{name}: {len(data)} bytes exceeds the {MAX_FILE_BYTES}-byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # lazy: reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: header declares a decompression bomb: refused before decoding") from None
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not a readable image ({type(exc).__name__})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{name}: corrupt image header ({type(exc).__name__})") from None
    with img:
        if img.format not in ACCEPTED_FORMATS:
            raise ImageError(f"{name}: format {img.format!r} not accepted, expected one of {sorted(ACCEPTED_FORMATS)}")
        width, height = img.size
        if width < 1 or height < 1:
            raise ImageError(f"{name}: invalid dimensions {width}x{height}")
        if width > max_side or height > max_side or width * height > max_pixels:
            raise ImageError(
                f"{name}: header declares {width}x{height} pixels, over the limit "
                f"({max_side} px a side, {max_pixels} pixels): refused before decoding"
            )
        try:
            img.load()  # full decode: raises on truncated data
            rgb = img.convert("RGB")
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageError(f"{name}: truncated or corrupt image data ({type(exc).__name__})") from None
    return np.asarray(rgb, dtype=np.uint8).copy()


def read_image(path: str | Path, *, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE) -> np.ndarray:
    """Read and decode an image file safely (see :func:`decode_image_bytes`).

    Args:
        path: The image file.
        max_pixels: Largest accepted width x height.
        max_side: Largest accepted width or height.

    Returns:
        (H, W, 3) uint8 RGB array.

    Raises:
        ImageError: missing, unreadable, empty, oversized, truncated or not an image.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{path.name}: {size} bytes exceeds the {MAX_FILE_BYTES}-byte limit")
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path.name}: cannot read file ({type(exc).__name__})") from None
    return decode_image_bytes(data, name=path.name, max_pixels=max_pixels, max_side=max_side)
