"""Preprocessed-crop caches: decode + align a list of images once, reuse every epoch.

A cache is an ``.npz`` of (N, S, S, 3) uint8 crops keyed by a hash of the file list
(relative paths, sizes, mtimes), the preprocessing config and the detector settings,
so a stale cache is never reused. Caches hold no pickled objects (``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facepp.data.images import read_image
from facepp.errors import FaceppError
from facepp.vision.align import FacePreprocessor

logger = logging.getLogger(__name__)


def cache_key(paths: Sequence[Path], preprocessor: FacePreprocessor) -> str:
    """A short hash of the files (path, size, mtime), the preprocessing config and, in
    ``detect`` and ``landmarks`` mode, the detector's settings.

    The cache holds training-view crops, so the test-time scales are not part of the key.
    """
    config: dict[str, object] = {k: v for k, v in preprocessor.config.to_dict().items() if k != "tta_scales"}
    if preprocessor.config.mode == "detect":
        config["detector"] = asdict(preprocessor.detector)
    elif preprocessor.config.mode == "landmarks":
        config["landmarker"] = asdict(preprocessor.landmarker)
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def preprocess_paths(
    paths: Sequence[Path],
    preprocessor: FacePreprocessor,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops for every path, from the cache when present.

    Args:
        paths: Image files.
        preprocessor: How to crop them.
        cache_dir: Where to keep the ``.npz`` cache (None: no cache).
        progress: Show a tqdm bar.

    Returns:
        ``(crops, ok)``: (N, S, S, 3) uint8 crops and an (N,) bool mask; a file that failed
        (unreadable image, no face without fallback) has ``ok=False`` and a black crop,
        and is logged.
    """
    paths = [Path(p) for p in paths]
    target: Path | None = None
    if cache_dir is not None:
        target = Path(cache_dir) / f"crops-{cache_key(paths, preprocessor)}.npz"
        if target.is_file():
            with np.load(target, allow_pickle=False) as data:
                logger.info("using cached crops %s", target)
                return data["crops"], data["ok"]
    size = preprocessor.config.input_size
    crops = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    ok = np.ones(len(paths), dtype=bool)
    failures = 0
    for i, path in enumerate(tqdm(paths, desc="preprocess", unit="img", disable=not progress)):
        try:
            crops[i] = preprocessor.align(read_image(path)).pixels
        except FaceppError as exc:
            ok[i] = False
            failures += 1
            logger.warning("skipping %s: %s", path.name, exc)
    if failures:
        logger.warning("%d of %d images could not be preprocessed", failures, len(paths))
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, crops=crops, ok=ok)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    return crops, ok


def dataset_crops(
    samples: Sequence[tuple[Path, int]],
    preprocessor: FacePreprocessor,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Crops and labels for ``(path, label)`` samples, dropping images that failed.

    Returns:
        ((M, S, S, 3) uint8 crops, (M,) int64 labels), M <= len(samples).
    """
    crops, ok = preprocess_paths([p for p, _ in samples], preprocessor, cache_dir=cache_dir, progress=progress)
    labels = np.array([label for _, label in samples], dtype=np.int64)
    return crops[ok], labels[ok]
