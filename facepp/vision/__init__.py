"""Face detection, alignment and preprocessing (terminal and dataset tooling)."""

from facepp.vision.align import (
    MODES,
    PRESETS,
    AlignedFace,
    FacePreprocessor,
    PreprocessConfig,
    crop_square,
    preset_for,
    to_tensor,
)
from facepp.vision.detect import Box, HaarFaceDetector
from facepp.vision.landmarks import FaceLandmarks, LandmarkDetector

__all__ = [
    "MODES",
    "PRESETS",
    "AlignedFace",
    "Box",
    "FaceLandmarks",
    "FacePreprocessor",
    "HaarFaceDetector",
    "LandmarkDetector",
    "PreprocessConfig",
    "crop_square",
    "preset_for",
    "to_tensor",
]
