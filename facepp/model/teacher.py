"""The distillation teacher: dlib's 128-d face ResNet, run the way the ``face_recognition`` library runs it.

The network file ``dlib_face_recognition_resnet_model_v1.dat`` ships inside the installed
``face_recognition_models`` package (nothing is downloaded); its author released it into
the public domain. It was trained on about 3 million faces of 7,485 identities, none of
them an LFW identity. facepp uses it for two jobs only, never in a deployed role:

* as the teacher whose embeddings a facepp student learns to reproduce (:mod:`facepp.model.distill`);
* as the peer row of the accuracy benchmark, on the same pairs in the same run.

Pipeline (as ``face_recognition.face_encodings``): dlib's HOG detector on the image
upsampled ``upsample`` times, the 5-point shape predictor, a 150 x 150 chip with 25%
padding, the ResNet. Embeddings are L2-normalised float32 (dlib's are already near unit norm).

Teacher embeddings of a dataset are cached by image content (SHA-256 of the file bytes)
and view (:data:`VIEWS`), so a second run, or a run on a renamed copy, reuses them.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from facepp.data.images import read_image
from facepp.errors import ConfigError, FaceppError
from facepp.vision.detect import to_gray
from facepp.vision.landmarks import dlib_models, models_file

#: The ResNet file inside the ``face_recognition_models`` package.
NETWORK_FILE = "models/dlib_face_recognition_resnet_model_v1.dat"
#: The views each training image is embedded in: the aligned chip and its mirror image.
VIEWS: tuple[str, ...] = ("plain", "flip")
EMBEDDING_DIM = 128
CHIP_SIZE = 150
CHIP_PADDING = 0.25


@lru_cache(maxsize=1)
def _network() -> Any:
    dlib_models()  # a ConfigError naming the packages when dlib is missing
    import dlib

    return dlib.face_recognition_model_v1(str(models_file(NETWORK_FILE)))


@dataclass(frozen=True)
class DlibTeacher:
    """dlib's face ResNet behind its own detection and 5-point alignment.

    Attributes:
        upsample: Times the image is doubled before HOG detection (``face_recognition``: 1).
        pick: ``"largest"`` face (photos) or ``"central"`` (curated datasets whose labelled
            person is centred, such as LFW).
        fallback_center: When no face is found, align the central square (half the shorter
            side) instead of giving up: evaluation scores every pair, training never uses it.
    """

    upsample: int = 1
    pick: str = "largest"
    fallback_center: bool = False

    def __post_init__(self) -> None:
        if self.pick not in ("largest", "central"):
            raise ConfigError(f"unknown face pick {self.pick!r}, expected 'largest' or 'central'")
        if not 0 <= self.upsample <= 2:
            raise ConfigError(f"upsample must be 0, 1 or 2, got {self.upsample}")

    @cached_property
    def identity(self) -> str:
        """A short hash of the network file and the pipeline settings (names the cache)."""
        h = hashlib.sha256(models_file(NETWORK_FILE).read_bytes())
        h.update(f"{self.upsample}|{self.pick}|{self.fallback_center}|{CHIP_SIZE}|{CHIP_PADDING}|{VIEWS}".encode())
        return h.hexdigest()[:16]

    def chip(self, image: np.ndarray) -> np.ndarray | None:
        """The 150 x 150 aligned RGB chip of the chosen face, or None when no face is found.

        Raises:
            ImageError: not an (H, W, 3) uint8 RGB or (H, W) grey image.
        """
        import dlib

        to_gray(image)  # validates dtype and shape
        rgb = np.ascontiguousarray(np.dstack([image] * 3) if image.ndim == 2 else image)
        detector, predictor = dlib_models()
        rects = list(detector(rgb, self.upsample))
        h, w = rgb.shape[:2]
        if not rects and self.fallback_center:
            side = min(h, w) // 2
            rects = [dlib.rectangle((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)]
        if not rects:
            return None
        if self.pick == "central":
            rect = min(rects, key=lambda r: math.dist(((r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2), (w / 2, h / 2)))
        else:
            rect = max(rects, key=lambda r: r.width() * r.height())
        shape = predictor(rgb, rect)
        return np.asarray(dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING))

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 128) float32 unit-norm embeddings of aligned 150 x 150 chips."""
        if not len(chips):
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        vectors = np.asarray(_network().compute_face_descriptor([np.ascontiguousarray(c) for c in chips]), dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def embed_views(self, image: np.ndarray) -> np.ndarray | None:
        """(len(VIEWS), 128) embeddings of the face's chip and its mirror, or None (no face)."""
        chip = self.chip(image)
        return None if chip is None else self.embed_chips([chip, chip[:, ::-1]])


def file_digest(path: Path) -> str:
    """SHA-256 hex of a file's bytes (the cache key of its teacher embeddings)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TeacherCache:
    """Teacher embeddings keyed by (image digest, view), one ``.npz`` per teacher identity.

    A face the teacher did not find is cached too (as NaN), so it is never searched again.
    The file holds no pickled objects.
    """

    def __init__(self, teacher: DlibTeacher, cache_dir: Path | None) -> None:
        self.teacher = teacher
        self.path = None if cache_dir is None else Path(cache_dir) / f"teacher-dlib-{teacher.identity}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        if self.path is not None and self.path.is_file():
            with np.load(self.path, allow_pickle=False) as data:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"]))
        self.hits = self.misses = 0

    def embeddings(self, paths: Sequence[Path], *, progress: bool = True, save_every: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """Teacher embeddings of every view of every image, computed only where not cached.

        Returns:
            ``(vectors, ok)``: (N, len(VIEWS), 128) float32 (zeros where ``ok`` is False) and
            an (N,) bool mask, False where the image is unreadable or the teacher found no face.
        """
        out = np.zeros((len(paths), len(VIEWS), EMBEDDING_DIM), dtype=np.float32)
        ok = np.zeros(len(paths), dtype=bool)
        fresh = 0
        for i, path in enumerate(tqdm(paths, desc="teacher", unit="img", disable=not progress, mininterval=2.0)):
            digest = file_digest(Path(path))
            keys = [f"{digest}:{view}" for view in VIEWS]
            if all(k in self.vectors for k in keys):
                self.hits += 1
            else:
                self.misses += 1
                try:
                    views = self.teacher.embed_views(read_image(path))
                except FaceppError as exc:
                    logging.getLogger(__name__).warning("teacher skips %s: %s", Path(path).name, exc)
                    views = None
                for k, vector in zip(keys, np.full((len(VIEWS), EMBEDDING_DIM), np.nan, np.float32) if views is None else views):
                    self.vectors[k] = vector
                fresh += 1
                if fresh % save_every == 0:
                    self.save()
            stacked = np.stack([self.vectors[k] for k in keys])
            if np.isfinite(stacked).all():
                out[i], ok[i] = stacked, True
        if fresh:
            self.save()
        return out, ok

    def save(self) -> None:
        """Write the cache atomically (no-op without a cache folder)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(sorted(self.vectors))
        vectors = np.stack([self.vectors[k] for k in keys]) if len(keys) else np.zeros((0, EMBEDDING_DIM), np.float32)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, keys=keys, vectors=vectors)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
