"""Landmark detection and ``landmarks``-mode alignment on real faces (dlib HOG + 5 points)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facepp.errors import NoFaceError
from facepp.vision import (
    FacePreprocessor,
    LandmarkDetector,
    PreprocessConfig,
    preset_for,
)
from facepp.vision.align import LANDMARK_TEMPLATE, similarity_transform


@pytest.mark.parametrize("fixture", ["orl_face", "lfw_face"])
def test_five_landmarks_inside_the_face(fixture: str, request: pytest.FixtureRequest) -> None:
    image = request.getfixturevalue(fixture)
    faces = LandmarkDetector().detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.points.shape == (5, 2)
    box = face.box
    inside = (face.points[:, 0] > box.x - 0.1 * box.w) & (face.points[:, 0] < box.x + 1.1 * box.w)
    inside &= (face.points[:, 1] > box.y - 0.1 * box.h) & (face.points[:, 1] < box.y + 1.1 * box.h)
    assert inside.all()
    # Eyes above the nose, the two eyes on either side of it.
    eyes, nose = face.points[:4], face.points[4]
    assert (eyes[:, 1] < nose[1]).all()
    assert eyes[:2, 0].min() > nose[0] > eyes[2:, 0].max()


def test_non_faces_have_no_landmarks_and_raise_in_landmarks_mode(noise_image: np.ndarray) -> None:
    pre = FacePreprocessor(PreprocessConfig(mode="landmarks"))
    for image in (np.full((200, 200, 3), 127, np.uint8), np.zeros((64, 64, 3), np.uint8), noise_image):
        assert LandmarkDetector().detect(image) == []
        with pytest.raises(NoFaceError):
            pre.align(image)
    fallback = FacePreprocessor(PreprocessConfig(mode="landmarks", fallback_center=True)).align(noise_image)
    assert fallback.faces_found == 0 and fallback.notes == ("no face: centre crop",)


@pytest.mark.parametrize("angle", [0.0, 20.0, -25.0])
def test_alignment_puts_the_landmarks_on_the_template(angle: float, lfw_face: np.ndarray) -> None:
    """A rotated photo gives (nearly) the same crop: the landmarks land on the template."""
    h, w = lfw_face.shape[:2]
    rotated = cv2.warpAffine(lfw_face, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), (w, h), borderMode=cv2.BORDER_REPLICATE)
    config = PreprocessConfig(mode="landmarks", input_size=64)
    pre = FacePreprocessor(config)
    aligned = pre.align(rotated)
    assert aligned.eyes_aligned and aligned.faces_found == 1
    assert aligned.angle_deg == pytest.approx(angle, abs=6.0)
    # Detected again in the crop (enlarged for the detector), the landmarks sit on the template.
    big = cv2.resize(aligned.pixels, (256, 256), interpolation=cv2.INTER_CUBIC)
    again = LandmarkDetector().detect(big)
    assert again, "the aligned crop still shows a face"
    error = np.linalg.norm(again[0].points / 4 - pre.landmark_targets(1.0), axis=1)
    assert error.mean() < 0.06 * 64


def test_similarity_transform_recovers_a_known_map() -> None:
    source = np.array([[10.0, 20.0], [40.0, 22.0], [25.0, 50.0], [12.0, 60.0], [35.0, 61.0]])
    theta, scale, shift = np.radians(17.0), 1.7, np.array([5.0, -3.0])
    rotation = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    matrix = similarity_transform(source, source @ rotation.T + shift)
    np.testing.assert_allclose(matrix, np.hstack([rotation, shift[:, None]]), atol=1e-9)


def test_template_is_mirror_symmetric() -> None:
    """A mirrored crop is the crop of the mirrored photo: the template maps onto itself
    when x is negated and the two eyes swap."""
    mirrored = LANDMARK_TEMPLATE * [-1.0, 1.0]
    np.testing.assert_allclose(mirrored[[2, 3, 0, 1, 4]], LANDMARK_TEMPLATE)


def _two_faces(lfw_face: np.ndarray) -> np.ndarray:
    """A large face on the left edge and a smaller one in the middle of the canvas."""
    canvas = np.full((300, 600, 3), 110, np.uint8)
    canvas[25:275, 0:250] = lfw_face
    canvas[60:240, 300:480] = cv2.resize(lfw_face, (180, 180))
    return canvas


@pytest.mark.parametrize(("pick", "expect_left"), [("largest", True), ("central", False)])
def test_pick_largest_or_central_face(pick: str, expect_left: bool, lfw_face: np.ndarray) -> None:
    aligned = FacePreprocessor(PreprocessConfig(mode="landmarks", pick=pick), LandmarkDetector(work_max=600)).align(
        _two_faces(lfw_face)
    )
    assert aligned.faces_found == 2 and aligned.box is not None
    assert (aligned.box.center[0] < 250) == expect_left
    assert pick in aligned.notes[0]


def test_landmark_views_match_single_view_configs(lfw_face: np.ndarray) -> None:
    config = PreprocessConfig.from_dict({**preset_for("lfw", input_size=48, mode="landmarks").to_dict(), "tta_scales": [0.875, 1.0, 1.125]})
    aligned = FacePreprocessor(config).align(lfw_face)
    np.testing.assert_array_equal(aligned.views[1], aligned.pixels)
    for view, single in zip(aligned.views, config.views(), strict=True):
        np.testing.assert_array_equal(view, FacePreprocessor(single).align(lfw_face).pixels)


def test_landmark_crop_frames_the_face_like_the_lfw_centre_crop(lfw_face: np.ndarray) -> None:
    """The template was measured in the LFW centre crop: on a deep-funneled image both
    crops show nearly the same pixels."""
    centre = FacePreprocessor(preset_for("lfw")).align(lfw_face).pixels.astype(float)
    landmarks = FacePreprocessor(preset_for("lfw", mode="landmarks")).align(lfw_face).pixels.astype(float)
    wider = FacePreprocessor(preset_for("lfw", mode="landmarks").at_scale(1.3)).align(lfw_face).pixels.astype(float)
    assert np.abs(centre - landmarks).mean() < 0.5 * np.abs(centre - wider).mean()
