"""Detection finds real faces, refuses non-faces; alignment gives the configured crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepp.errors import ConfigError, ImageError, NoFaceError
from facepp.vision import FacePreprocessor, HaarFaceDetector, PreprocessConfig, preset_for, to_tensor


@pytest.mark.parametrize("fixture", ["orl_face", "lfw_face"])
def test_detects_one_face_in_real_images(fixture: str, request: pytest.FixtureRequest) -> None:
    image = request.getfixturevalue(fixture)
    boxes = HaarFaceDetector().detect(image)
    assert len(boxes) >= 1
    cx, cy = boxes[0].center
    h, w = image.shape[:2]
    assert abs(cx - w / 2) < 0.25 * w and abs(cy - h / 2) < 0.25 * h
    aligned = FacePreprocessor(PreprocessConfig(input_size=64)).align(image)
    assert aligned.pixels.shape == (64, 64, 3) and aligned.pixels.dtype == np.uint8
    assert aligned.faces_found >= 1 and aligned.box is not None


def test_blank_and_noise_are_not_faces(noise_image: np.ndarray) -> None:
    pre = FacePreprocessor(PreprocessConfig())
    for image in (np.full((200, 200, 3), 127, np.uint8), np.zeros((64, 64, 3), np.uint8), noise_image):
        with pytest.raises(NoFaceError):
            pre.align(image)


def test_fallback_center_and_center_mode(noise_image: np.ndarray, lfw_face: np.ndarray) -> None:
    aligned = FacePreprocessor(PreprocessConfig(fallback_center=True)).align(noise_image)
    assert aligned.faces_found == 0 and aligned.notes
    center = FacePreprocessor(preset_for("lfw", input_size=48)).align(lfw_face)
    assert center.pixels.shape == (48, 48, 3) and center.faces_found == 0


def test_largest_of_several_faces_is_used(orl_face: np.ndarray, lfw_face: np.ndarray) -> None:
    import cv2

    small = cv2.resize(lfw_face, (200, 200))
    canvas = np.full((260, 470, 3), 110, np.uint8)
    canvas[5:255, 0:250] = lfw_face
    canvas[30:230, 262:462] = small
    # A finer working size than the default (200 px) so the smaller face is found too.
    aligned = FacePreprocessor(PreprocessConfig(), HaarFaceDetector(work_side=300)).align(canvas)
    assert aligned.faces_found == 2 and aligned.box is not None
    assert aligned.box.center[0] < 250 and "largest" in aligned.notes[0]


@pytest.mark.parametrize("bad", [np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 4), np.uint8), np.zeros(10, np.uint8)])
def test_wrong_arrays_are_image_errors(bad: np.ndarray) -> None:
    with pytest.raises(ImageError):
        FacePreprocessor(PreprocessConfig()).align(bad)


def test_config_validation_and_round_trip() -> None:
    with pytest.raises(ConfigError, match="expected one of"):
        PreprocessConfig(mode="magic")
    config = preset_for("orl", input_size=80)
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown preprocessing keys"):
        PreprocessConfig.from_dict({"bogus": 1})


def test_to_tensor_range() -> None:
    x = to_tensor(np.stack([np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)]))
    assert x.shape == (2, 3, 8, 8) and float(x.min()) == -1.0 and float(x.max()) == 1.0


@pytest.mark.parametrize("mode", ["detect", "center"])
def test_test_time_views_match_single_view_configs(mode: str, lfw_face: np.ndarray) -> None:
    config = preset_for("lfw", input_size=48, mode=mode)
    config = PreprocessConfig.from_dict({**config.to_dict(), "tta_scales": [0.875, 1.0, 1.125]})
    aligned = FacePreprocessor(config).align(lfw_face)
    assert aligned.views.shape == (3, 48, 48, 3) and aligned.views.dtype == np.uint8
    np.testing.assert_array_equal(aligned.views[1], aligned.pixels)
    for view, single in zip(aligned.views, config.views(), strict=True):
        # The evaluation path (one config per scale, cached apart) sees the terminal's crops.
        np.testing.assert_array_equal(view, FacePreprocessor(single).align(lfw_face).pixels)
    # A tighter crop is a zoom-in: it differs from the wider one.
    assert np.abs(aligned.views[0].astype(int) - aligned.views[2].astype(int)).mean() > 5


@pytest.mark.parametrize("scales", [[], [0.1], [1.0, 3.0]])
def test_bad_tta_scales_are_refused(scales: list[float]) -> None:
    with pytest.raises(ConfigError, match="tta_scales"):
        PreprocessConfig.from_dict({"tta_scales": scales})


def test_crop_cache_key_ignores_test_time_scales(lfw_face: np.ndarray, data_root: Path) -> None:
    from facepp.vision.cache import cache_key

    paths = [data_root / "orl" / "s1" / "1.pgm"]
    single, multi = PreprocessConfig(), PreprocessConfig(tta_scales=(0.9, 1.1))
    assert cache_key(paths, FacePreprocessor(single)) == cache_key(paths, FacePreprocessor(multi))
    assert cache_key(paths, FacePreprocessor(single)) != cache_key(paths, FacePreprocessor(single.at_scale(0.9)))
    # Detect-mode crops depend on the detector too: other settings must not reuse them.
    other = FacePreprocessor(single, HaarFaceDetector(scale_factor=1.3))
    assert cache_key(paths, FacePreprocessor(single)) != cache_key(paths, other)
