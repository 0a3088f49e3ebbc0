"""Fuzzing the image decoder every role uses: any bytes give an ImageError or an image, never a crash."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from benchmarks.fuzz_targets import assert_robust, image_target


def encoded_samples() -> list[bytes]:
    """Small valid images in every accepted container, plus a decompression-bomb header."""
    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
    samples = []
    for fmt, mode in (("JPEG", "RGB"), ("PNG", "RGB"), ("PPM", "L"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB"),
                      ("WEBP", "RGB"), ("PNG", "I;16")):
        buffer = io.BytesIO()
        Image.fromarray(pixels).convert(mode).save(buffer, format=fmt)
        samples.append(buffer.getvalue())
    samples.append(b"P5\n60000 60000\n255\n" + bytes(64))  # header of a 3.6-gigapixel PGM
    return samples


def test_image_decoder() -> None:
    assert_robust(image_target(encoded_samples()), max_examples=300)
