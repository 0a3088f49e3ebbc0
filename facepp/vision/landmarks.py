"""Face detection with five landmarks: dlib's HOG detector and its 5-point shape predictor.

Both models ship inside installed packages (the HOG detector in ``dlib``, the 5-point
predictor, CC0, in ``face_recognition_models``): nothing is downloaded. The predictor
marks the two corners of each eye and the base of the nose; :mod:`facepp.vision.align`
maps them onto a fixed template with a similarity transform.

Images are (H, W, 3) uint8 RGB. Large images are shrunk before detection (the HOG
detector finds faces from ~80 px up and its cost grows with the pixel count); small
ones are enlarged so that a face filling the frame (as in ORL) is still found.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facepp.errors import ConfigError
from facepp.vision.detect import Box, to_gray

#: The predictor file inside the ``face_recognition_models`` package.
PREDICTOR_FILE = "models/shape_predictor_5_face_landmarks.dat"


@dataclass(frozen=True)
class FaceLandmarks:
    """One detected face.

    Attributes:
        box: The detector's box in input coordinates.
        points: (5, 2) float32 (x, y) in input coordinates, in dlib's order: the outer and
            inner corner of the eye on the image's right, the same for the other eye, the
            base of the nose.
        score: The detector's confidence.
    """

    box: Box
    points: np.ndarray
    score: float


def models_file(name: str) -> Path:
    """A file of the installed ``face_recognition_models`` package (located, never imported:
    the package needs ``pkg_resources``).

    Raises:
        ConfigError: the package or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("facepp needs the face_recognition_models package (its dlib model files)")
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file():
        raise ConfigError(f"dlib model file not found at {path}")
    return path


@lru_cache(maxsize=1)
def dlib_models() -> tuple[Any, Any]:
    """(dlib HOG face detector, dlib 5-point shape predictor), loaded once per process."""
    try:
        import dlib
    except ImportError:
        raise ConfigError("landmark alignment needs dlib: pip install dlib-bin face_recognition_models") from None
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(models_file(PREDICTOR_FILE)))


@dataclass(frozen=True)
class LandmarkDetector:
    """dlib HOG face detection plus five landmarks per face.

    Attributes:
        work_min: Images whose shorter side is below this are enlarged to it first.
        work_max: Images whose longer side is above this are shrunk to it first.
        min_score: Detections below this HOG score are dropped.
    """

    work_min: int = 160
    work_max: int = 480
    min_score: float = -0.3

    def detect(self, image: np.ndarray) -> list[FaceLandmarks]:
        """Faces in the image with their landmarks, largest box first (empty: no face).

        Raises:
            ImageError: not an (H, W, 3) uint8 RGB or (H, W) grey image.
            ConfigError: dlib or the predictor is not installed.
        """
        gray = to_gray(image)
        detector, predictor = dlib_models()
        h, w = gray.shape
        factor = 1.0
        if min(h, w) < self.work_min:
            factor = self.work_min / min(h, w)
        elif max(h, w) > self.work_max:
            factor = self.work_max / max(h, w)
        work = gray if factor == 1.0 else cv2.resize(
            gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        )
        rects, scores, _ = detector.run(work, 0, self.min_score)
        faces = []
        for rect, score in zip(rects, scores):
            shape = predictor(work, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32) / factor
            box = Box(rect.left() / factor, rect.top() / factor, rect.width() / factor, rect.height() / factor)
            faces.append(FaceLandmarks(box, points, float(score)))
        return sorted(faces, key=lambda f: f.box.area, reverse=True)
