"""Preprocessing: detection, eye-level alignment and a fixed square crop, then a tensor.

One :class:`PreprocessConfig` describes how an image becomes the network input; it is
stored in every checkpoint so inference repeats exactly what training did.

Three modes:

* ``landmarks``: dlib face detection (the largest or the central face, ``pick``) and five landmarks (eye corners,
  nose base), mapped by a least-squares similarity transform onto
  :data:`LANDMARK_TEMPLATE`: rotation, scale and position all come from the face itself;
* ``detect``: Haar face detection (largest face), eyes levelled when both are found,
  square crop of ``crop_scale`` x the face box width around the box centre;
* ``center``: for datasets already aligned (LFW deep-funneled, ORL): a fixed square
  crop at fractional position ``center`` = (cx, cy, side), side relative to the width.

The crops are calibrated to frame a face the same way: on deep-funneled LFW the
Haar box is ~115 px wide at the image centre, so the 120-px centre crop ~ 1.05 boxes, and
the landmark template is the mean landmark position in that centre crop.

Test-time scales (``tta_scales``): inference may cut the crop at several sizes around
the same centre (one detection) and sum the embeddings of these views; training uses
the scale-1 crop only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import cv2
import numpy as np
import torch

from facepp.errors import ConfigError, NoFaceError
from facepp.vision.detect import Box, HaarFaceDetector, to_gray
from facepp.vision.landmarks import LandmarkDetector

MODES: tuple[str, ...] = ("landmarks", "detect", "center")
#: The modes that find a face in an arbitrary photo (the terminal's); ``center`` needs a curated crop.
PHOTO_MODES: tuple[str, ...] = ("landmarks", "detect")
PICKS: tuple[str, ...] = ("largest", "central")

#: Where ``landmarks`` mode puts the five dlib landmarks, in face-box widths from the crop
#: centre (x right, y down), so a crop of ``crop_scale`` = 1.05 frames a face like the
#: LFW centre crop: the mean landmark position in that crop over 1,976 LFW training
#: images, made left-right symmetric (order: outer and inner corner of the eye on the
#: image's right, the same for the other eye, the nose base).
LANDMARK_TEMPLATE: np.ndarray = np.array(
    [[0.2491, -0.1011], [0.1084, -0.1011], [-0.2491, -0.1011], [-0.1084, -0.1011], [0.0, 0.1728]], dtype=np.float64
)

#: Test-time crop scales of new checkpoints: about the ends of the default zoom
#: augmentation (0.9-1.12), +-12.5% around the training crop (docs/face_pipeline.md).
DEFAULT_TTA_SCALES: tuple[float, ...] = (0.875, 1.125)


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes a network input.

    Attributes:
        input_size: Output crop side in pixels.
        mode: ``"landmarks"``, ``"detect"`` or ``"center"`` (see the module docstring).
        center: (cx, cy, side) as fractions of (width, height, width), ``center`` mode.
        crop_scale: Crop side in face-box widths (``detect``: the Haar box; ``landmarks``:
            the template's unit).
        crop_dy: Vertical shift of the crop centre in face-box widths (``detect``, ``landmarks``).
        align_eyes: Rotate so the eyes are level when both eyes are found (``detect``).
        fallback_center: In ``detect`` and ``landmarks`` mode, use the centre crop instead of raising
            NoFaceError when no face is found (for curated datasets only, never for enrolment).
        tta_scales: Inference views: crop side multipliers whose embeddings are summed
            (``(1.0,)``: the training crop alone).
        pick: Which face to crop when there are several (``landmarks`` mode): ``"largest"``
            (photos, the terminal) or ``"central"`` (curated datasets such as LFW, where the
            labelled person is centred and a larger face may be someone else).
    """

    input_size: int = 64
    mode: str = "detect"
    center: tuple[float, float, float] = (0.5, 0.5, 0.48)
    crop_scale: float = 1.05
    crop_dy: float = 0.0
    align_eyes: bool = True
    fallback_center: bool = False
    tta_scales: tuple[float, ...] = (1.0,)
    pick: str = "largest"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown preprocessing mode {self.mode!r}, expected one of {list(MODES)}")
        if self.input_size < 16:
            raise ConfigError(f"input_size must be >= 16, got {self.input_size}")
        if self.pick not in PICKS:
            raise ConfigError(f"unknown face pick {self.pick!r}, expected one of {list(PICKS)}")
        if not self.tta_scales or not all(0.5 <= s <= 2.0 for s in self.tta_scales):
            raise ConfigError(f"tta_scales must be one or more factors in [0.5, 2], got {list(self.tta_scales)}")

    def at_scale(self, scale: float) -> PreprocessConfig:
        """The single view whose crop side is ``scale`` times this one's (same centre)."""
        cx, cy, side = self.center
        return replace(self, center=(cx, cy, side * scale), crop_scale=self.crop_scale * scale, tta_scales=(1.0,))

    def views(self) -> tuple[PreprocessConfig, ...]:
        """One single-view config per test-time scale."""
        return tuple(self.at_scale(s) for s in self.tta_scales)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in checkpoint metadata)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`; unknown keys are rejected.

        Raises:
            ConfigError: unknown keys or bad values.
        """
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown preprocessing keys {sorted(unknown)}")
        values = dict(data)
        for key in ("center", "tta_scales"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)


#: Per-layout presets for curated, already aligned datasets.
PRESETS: dict[str, PreprocessConfig] = {
    "lfw": PreprocessConfig(mode="center", center=(0.5, 0.5, 0.48), pick="central"),
    "orl": PreprocessConfig(mode="center", center=(0.5, 0.555, 1.02), pick="central"),
    "generic": PreprocessConfig(mode="landmarks", fallback_center=True),
}


def preset_for(layout: str, *, input_size: int = 64, mode: str | None = None) -> PreprocessConfig:
    """The preset for a dataset layout, optionally forcing a mode and input size."""
    base = PRESETS.get(layout, PRESETS["generic"])
    values = base.to_dict()
    values["input_size"] = input_size
    if mode is not None:
        values["mode"] = mode
    return PreprocessConfig.from_dict(values)


@dataclass(frozen=True)
class AlignedFace:
    """The result of preprocessing one image.

    Attributes:
        pixels: (S, S, 3) uint8 RGB crop (the training view).
        views: (K, S, S, 3) uint8 RGB crops, one per test-time scale (what inference embeds).
        faces_found: Faces detected (0 in ``center`` mode or on fallback); the largest is used.
        box: The face box used, or None.
        eyes_aligned: Whether the crop was rotated to level detected eyes.
        angle_deg: The rotation applied.
    """

    pixels: np.ndarray
    views: np.ndarray
    faces_found: int
    box: Box | None = None
    eyes_aligned: bool = False
    angle_deg: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)


def crop_square(image: np.ndarray, *, cx: float, cy: float, side: float, angle_deg: float, out: int) -> np.ndarray:
    """Rotate by ``angle_deg`` about (cx, cy) and cut a ``side``-pixel square there, resized to ``out``.

    Pixels outside the image are edge-replicated. Returns (out, out, 3) uint8.
    """
    scale = out / side
    matrix = cv2.getRotationMatrix2D((cx, cy), angle_deg, scale)
    matrix[0, 2] += out / 2 - cx
    matrix[1, 2] += out / 2 - cy
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (out, out), flags=interp, borderMode=cv2.BORDER_REPLICATE)


class FacePreprocessor:
    """Turns RGB images into aligned crops and network tensors.

    Args:
        config: The preprocessing description.
        detector: Face detector for ``detect`` mode.
        landmarker: Face and landmark detector for ``landmarks`` mode.
    """

    def __init__(
        self, config: PreprocessConfig, detector: HaarFaceDetector | None = None, landmarker: LandmarkDetector | None = None
    ) -> None:
        self.config = config
        self.detector = detector or HaarFaceDetector()
        self.landmarker = landmarker or LandmarkDetector()

    def center_crop(self, image: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """The fixed ``center``-mode crop (side times ``scale``), (S, S, 3) uint8."""
        h, w = image.shape[:2]
        cx, cy, side = self.config.center
        return crop_square(image, cx=cx * w, cy=cy * h, side=side * w * scale, angle_deg=0.0, out=self.config.input_size)

    def _crops(self, crop: Callable[[float], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(the scale-1 crop, the stacked test-time views) from a crop-at-scale function."""
        pixels = crop(1.0)
        return pixels, np.stack([pixels if s == 1.0 else crop(s) for s in self.config.tta_scales])

    def align(self, image: np.ndarray) -> AlignedFace:
        """Preprocess one image.

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            The aligned crop and what was found.

        Raises:
            NoFaceError: ``detect`` or ``landmarks`` mode found no face (and ``fallback_center`` is off).
            ImageError: not an (H, W, 3) uint8 array.
        """
        to_gray(image)  # validates dtype and shape
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        if self.config.mode == "center":
            return AlignedFace(*self._crops(lambda s: self.center_crop(image, s)), faces_found=0)
        if self.config.mode == "landmarks":
            return self._align_landmarks(image)
        boxes = self.detector.detect(image)
        if not boxes:
            return self._no_face(image)
        box = boxes[0]
        cx, cy = box.center
        cy += self.config.crop_dy * box.w
        angle = 0.0
        eyes = self.detector.find_eyes(image, box) if self.config.align_eyes else None
        if eyes is not None:
            (lx, ly), (rx, ry) = eyes
            angle = math.degrees(math.atan2(ry - ly, rx - lx))
            if abs(angle) > 30:
                angle, eyes = 0.0, None
        side = self.config.crop_scale * box.w
        pixels, views = self._crops(
            lambda s: crop_square(image, cx=cx, cy=cy, side=side * s, angle_deg=angle, out=self.config.input_size)
        )
        notes = (f"{len(boxes)} faces found: the largest was used",) if len(boxes) > 1 else ()
        return AlignedFace(pixels, views, len(boxes), box, eyes is not None, angle, notes)

    def _no_face(self, image: np.ndarray) -> AlignedFace:
        if self.config.fallback_center:
            crops = self._crops(lambda s: self.center_crop(image, s))
            return AlignedFace(*crops, faces_found=0, notes=("no face: centre crop",))
        raise NoFaceError("no face detected in the image")

    def _align_landmarks(self, image: np.ndarray) -> AlignedFace:
        faces = self.landmarker.detect(image)
        if not faces:
            return self._no_face(image)
        if self.config.pick == "central":
            h, w = image.shape[:2]
            faces.sort(key=lambda f: math.dist(f.box.center, (w / 2, h / 2)))
        face = faces[0]
        pixels, views = self._crops(lambda s: warp(image, similarity_transform(face.points, self.landmark_targets(s)), self.config.input_size))
        matrix = similarity_transform(face.points, self.landmark_targets(1.0))  # every view has the same rotation
        angle = math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))
        notes = (f"{len(faces)} faces found: the {self.config.pick} was used",) if len(faces) > 1 else ()
        return AlignedFace(pixels, views, len(faces), face.box, True, angle, notes)

    def landmark_targets(self, scale: float) -> np.ndarray:
        """(5, 2) output-pixel positions of the template landmarks in a view of ``scale``."""
        side = self.config.crop_scale * scale
        unit = (LANDMARK_TEMPLATE - [0.0, self.config.crop_dy]) / side + 0.5
        return unit * self.config.input_size


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 rotation + uniform scale + translation that maps ``source`` points
    closest to ``target`` points in the least-squares sense (both (K, 2), K >= 2)."""
    x, y = source[:, 0].astype(np.float64), source[:, 1].astype(np.float64)
    one, zero = np.ones_like(x), np.zeros_like(x)
    # u = a x - b y + tx, v = b x + a y + ty: linear in (a, b, tx, ty).
    design = np.concatenate([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, np.concatenate([target[:, 0], target[:, 1]]), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def warp(image: np.ndarray, matrix: np.ndarray, out: int) -> np.ndarray:
    """Apply a 2x3 affine map into an ``out`` x ``out`` crop (edge-replicated border)."""
    return cv2.warpAffine(image, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) float32 in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)
