"""Fuzzing the image decoder every role uses: any bytes give an ImageError or an image, never a crash."""

from __future__ import annotations

from benchmarks.fuzz_targets import assert_robust, image_samples, image_target


def test_image_decoder() -> None:
    assert_robust(image_target(image_samples()), max_examples=300)
