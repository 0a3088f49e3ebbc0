"""Face and eye detection with the Haar cascades shipped inside OpenCV (no download).

Used by the terminal and by dataset preprocessing. Images are (H, W, 3) uint8 RGB.
Tight crops (a face filling the frame, as in ORL) defeat a cascade that needs some
context around the face, so the grey image is padded (edge-replicated) and upscaled
to a working size before detection; boxes are mapped back to input coordinates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from facepp.errors import ConfigError, ImageError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Box:
    """An axis-aligned face box in input pixel coordinates (may extend past the border)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def area(self) -> float:
        return self.w * self.h

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)


@lru_cache(maxsize=8)
def _cascade(name: str) -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / name  # type: ignore[attr-defined]
    classifier = cv2.CascadeClassifier(str(path))
    if classifier.empty():
        raise ConfigError(f"OpenCV Haar cascade {name} not found under {path.parent} (needs opencv-python-headless<5)")
    return classifier


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB (or (H, W) grey) -> (H, W) uint8 grey.

    Raises:
        ImageError: wrong dtype or shape.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ImageError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


@dataclass(frozen=True)
class HaarFaceDetector:
    """Frontal-face Haar cascade with padding and rescaling.

    Attributes:
        pad: Border added on each side before detection, as a fraction of the longer side.
        work_side: The padded image is resized so its longer side is this many pixels.
        min_face: Smallest face side accepted, as a fraction of the shorter input side.
        scale_factor: Cascade pyramid step.
        min_neighbors: Cascade votes needed (higher rejects more false positives).
    """

    pad: float = 0.25
    work_side: int = 200
    min_face: float = 0.3
    scale_factor: float = 1.1
    min_neighbors: int = 5

    def detect(self, image: np.ndarray) -> list[Box]:
        """Detect frontal faces.

        Args:
            image: (H, W, 3) uint8 RGB or (H, W) uint8 grey.

        Returns:
            Boxes in input coordinates, largest first (empty when there is no face).
        """
        gray = to_gray(image)
        h, w = gray.shape
        p = int(round(self.pad * max(h, w)))
        padded = cv2.copyMakeBorder(gray, p, p, p, p, cv2.BORDER_REPLICATE)
        factor = self.work_side / max(padded.shape)
        work = cv2.resize(padded, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        work = cv2.equalizeHist(work)
        min_side = max(20, int(self.min_face * min(h, w) * factor))
        found = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
            work, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        boxes = [Box(x / factor - p, y / factor - p, bw / factor, bh / factor) for x, y, bw, bh in np.reshape(found, (-1, 4))]
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def find_eyes(self, image: np.ndarray, box: Box) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """Locate the two eyes inside a face box (upper half, one per side).

        Returns:
            ((x, y) of the eye on the image's left, (x, y) on its right) in input coordinates,
            or None when two plausible eyes are not found.
        """
        gray = to_gray(image)
        x0, y0 = int(max(0, box.x)), int(max(0, box.y + 0.15 * box.h))
        x1, y1 = int(min(gray.shape[1], box.x + box.w)), int(min(gray.shape[0], box.y + 0.6 * box.h))
        if x1 - x0 < 20 or y1 - y0 < 10:
            return None
        roi = gray[y0:y1, x0:x1]
        factor = 120.0 / roi.shape[1]
        roi = cv2.equalizeHist(cv2.resize(roi, None, fx=factor, fy=factor))
        eyes = _cascade("haarcascade_eye.xml").detectMultiScale(roi, scaleFactor=1.1, minNeighbors=4, minSize=(12, 12), maxSize=(50, 50))
        centers = [((ex + ew / 2) / factor + x0, (ey + eh / 2) / factor + y0) for ex, ey, ew, eh in np.reshape(eyes, (-1, 4))]
        mid = box.x + box.w / 2
        left = [c for c in centers if c[0] < mid - 0.05 * box.w]
        right = [c for c in centers if c[0] > mid + 0.05 * box.w]
        if not left or not right:
            return None
        # The pair closest to level and to the expected eye distance (~0.4 of the box width).
        best = min(
            ((a, b) for a in left for b in right),
            key=lambda ab: abs(ab[0][1] - ab[1][1]) + abs((ab[1][0] - ab[0][0]) - 0.4 * box.w),
        )
        distance = best[1][0] - best[0][0]
        if not 0.2 * box.w < distance < 0.65 * box.w:
            return None
        return best
