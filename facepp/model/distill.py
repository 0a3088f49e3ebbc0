"""Embedding distillation: a facepp student learns the dlib teacher's embeddings.

The student keeps its margin head on the labelled identities and adds
``distill_weight * (1 - cos(student, teacher))`` per sample (see
:func:`facepp.model.train.train_one_epoch`). The teacher's targets are centred first:
dlib's unit-norm embeddings all lie in one narrow cone (their mean has norm ~0.9, two
random faces have cosine ~0.8), so a cosine loss against the raw vectors is nearly
satisfied by predicting their mean. Subtracting the training mean and renormalising
spreads them over the sphere, where agreeing with the teacher means telling faces apart.

The student stays a plain facepp checkpoint (same backbone registry, same metadata);
the distillation record in its metadata (teacher identity, images, mean norm) is
informational only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facepp.model.teacher import EMBEDDING_DIM, VIEWS, DlibTeacher, TeacherCache


def centre(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre unit vectors on their mean and renormalise.

    Args:
        vectors: (..., D) float teacher embeddings.

    Returns:
        (centred unit vectors of the same shape as float32, the (D,) mean).
    """
    mean = vectors.reshape(-1, vectors.shape[-1]).mean(0)
    centred = vectors - mean
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    return (centred / np.maximum(norms, 1e-12)).astype(np.float32), mean.astype(np.float32)


def teacher_targets(
    paths: Sequence[Path], teacher: DlibTeacher, *, cache_dir: Path | None, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Centred teacher targets for every view of every image.

    Returns:
        ``(targets, ok, summary)``: (N, len(VIEWS), 128) float32 centred unit vectors, an
        (N,) mask (False: the teacher found no face), and a JSON-ready record for the
        checkpoint metadata.
    """
    cache = TeacherCache(teacher, cache_dir)
    vectors, ok = cache.embeddings(paths, progress=progress)
    targets = np.zeros_like(vectors)
    mean = np.zeros(EMBEDDING_DIM, np.float32)
    if ok.any():
        targets[ok], mean = centre(vectors[ok])
    summary = {
        "teacher": "dlib_face_recognition_resnet_model_v1",
        "teacher_identity": teacher.identity,
        "views": list(VIEWS),
        "images": int(ok.sum()),
        "teacher_missed": int((~ok).sum()),
        "teacher_mean_norm": round(float(np.linalg.norm(mean)), 4),
        "cache_hits": cache.hits,
    }
    return targets, ok, summary
