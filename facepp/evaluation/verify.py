"""Verification evaluation of a checkpoint on a dataset folder, and threshold calibration.

Scores are cosine similarities of L2-normalised embeddings, S-normalised when the model
carries a cohort (:mod:`facepp.model.cohort`). The report holds the
10-fold accuracy (threshold chosen on nine folds, tested on the tenth), ROC AUC, EER
and TAR at FAR 1e-2 / 1e-3. Calibration writes thresholds into the checkpoint metadata.

A pairs file's impostor pairs are few (500 in LFW's ``pairsDevTest.txt``), so FAR 1e-3
there means "no impostor accepted". With ``cross_impostors`` the report also scores the
same genuine pairs against every pair of images of different people among the scored
images (for ``pairsDevTest.txt``, 1.2 million), as the BLUFR protocol does for LFW
(Liao et al., IJCB 2014), and resolves TAR down to FAR 1e-4.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facepp.data.datasets import FaceDataset, load_dataset
from facepp.data.protocol import Pair, build_pairs, read_pairs
from facepp.errors import ConfigError
from facepp.evaluation import metrics
from facepp.model.checkpoint import load_checkpoint, update_metadata
from facepp.model.cohort import Cohort, s_norm
from facepp.model.embedder import Embedder
from facepp.vision.align import PHOTO_MODES, PreprocessConfig

logger = logging.getLogger(__name__)

REPORT_FARS: tuple[float, ...] = (1e-2, 1e-3)
MAX_CROSS_IMAGES = 10_000  # up to 50 million pairs
CROSS_IMPOSTOR_FARS: tuple[float, ...] = (1e-3, 1e-4)


def far_key(far: float) -> str:
    """How a FAR appears in summary keys: 1e-3 -> ``"1e-3"``."""
    return f"{far:.0e}".replace("e-0", "e-")


@dataclass
class VerificationReport:
    """Scores of every pair and the metrics derived from them."""

    scores: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    fold_accuracies: np.ndarray
    fold_thresholds: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    cross_impostors: np.ndarray | None = None  # scores of every cross-identity image pair

    @classmethod
    def from_scores(cls, scores: np.ndarray, labels: np.ndarray, folds: np.ndarray, *,
                    cross_impostors: np.ndarray | None = None, **info: Any) -> VerificationReport:
        """Compute the k-fold accuracies of given scores."""
        accs, thrs = metrics.kfold_accuracy(scores, labels, folds)
        return cls(np.asarray(scores, np.float64), np.asarray(labels, bool), np.asarray(folds), accs, thrs, dict(info),
                   cross_impostors)

    def summary(self) -> dict[str, Any]:
        """JSON-ready metrics: ``accuracy``, ``accuracy_std``, ``auc``, ``eer``, ``tar_at_far_1e-2``,
        ``tar_at_far_1e-3``, ``threshold`` (best-accuracy threshold on all pairs), ``pairs`` and details;
        with cross-identity impostors also ``cross_impostor_pairs`` and ``cross_tar_at_far_1e-3`` / ``1e-4``."""
        eer, eer_threshold = metrics.equal_error_rate(self.scores, self.labels)
        threshold, acc_all = metrics.best_threshold(self.scores, self.labels)
        out: dict[str, Any] = {
            "accuracy": float(self.fold_accuracies.mean()),
            "accuracy_std": float(self.fold_accuracies.std()),
            "auc": metrics.roc_auc(self.scores, self.labels),
            "eer": eer,
        }
        for far in REPORT_FARS:
            tar, t = metrics.tar_at_far(self.scores, self.labels, far)
            out[f"tar_at_far_{far_key(far)}"] = tar
            out[f"threshold_at_far_{far_key(far)}"] = t
        out.update(
            threshold=threshold,
            pairs=int(len(self.scores)),
            genuine_pairs=int(self.labels.sum()),
            impostor_pairs=int((~self.labels).sum()),
            folds=int(len(self.fold_accuracies)),
            fold_accuracies=[float(a) for a in self.fold_accuracies],
            eer_threshold=eer_threshold,
            accuracy_at_threshold_all_pairs=acc_all,
        )
        if self.cross_impostors is not None:
            genuine = self.scores[self.labels]
            out["cross_impostor_pairs"] = int(self.cross_impostors.size)
            for far in CROSS_IMPOSTOR_FARS:
                t = metrics.threshold_at_far(self.cross_impostors, far)
                out[f"cross_tar_at_far_{far_key(far)}"] = float(np.mean(genuine >= t))
                out[f"cross_threshold_at_far_{far_key(far)}"] = t
        out.update(self.info)
        return out


def cross_identity_scores(vectors: np.ndarray, identities: Sequence[str], *, stats: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of every pair of images of different identities.

    Args:
        vectors: (N, D) unit-norm embeddings.
        identities: The identity of each row.
        stats: (N, 2) cohort stats of each row (:meth:`Cohort.stats`): S-normalise the scores.

    Raises:
        ConfigError: lengths differ, more than ``MAX_CROSS_IMAGES`` images, or all of one person.
    """
    names = np.asarray(identities)
    if len(names) != len(vectors):
        raise ConfigError(f"{len(vectors)} embeddings but {len(names)} identities")
    if len(names) > MAX_CROSS_IMAGES:
        raise ConfigError(f"cross-identity impostors of {len(names)} images: at most {MAX_CROSS_IMAGES} are supported")
    if len(set(names.tolist())) < 2:
        raise ConfigError("cross-identity impostors need images of at least two people")
    rows = []
    for r in range(len(names) - 1):
        others = np.flatnonzero(names[r + 1:] != names[r]) + r + 1
        scores = vectors[others] @ vectors[r]
        rows.append(scores if stats is None else s_norm(scores, stats[r], stats[others]))
    return np.concatenate(rows).astype(np.float64)


def pair_images(pairs: Sequence[Pair]) -> list[Path]:
    """The distinct images of ``pairs``, sorted."""
    return sorted({p for pair in pairs for p in (pair.path_a, pair.path_b)})


def pair_scores(vectors: np.ndarray, paths: Sequence[Path], pairs: Sequence[Pair], *,
                stats: np.ndarray | None = None) -> np.ndarray:
    """(N,) float64 cosine similarity of every pair, from the unit embeddings of ``paths``
    (S-normalised with each image's cohort ``stats`` when given)."""
    index = {p: i for i, p in enumerate(paths)}
    a = np.array([index[p.path_a] for p in pairs], dtype=int)
    b = np.array([index[p.path_b] for p in pairs], dtype=int)
    scores = np.sum(vectors[a] * vectors[b], axis=1).astype(np.float64)
    return scores if stats is None else s_norm(scores, stats[a], stats[b])


def _report(vectors: np.ndarray, paths: Sequence[Path], pairs: Sequence[Pair], *, cross_impostors: bool,
            cohort: Cohort | None = None, **info: Any) -> VerificationReport:
    stats = cohort.stats(vectors) if cohort is not None else None
    cross = cross_identity_scores(vectors, [p.parent.name for p in paths], stats=stats) if cross_impostors else None
    return VerificationReport.from_scores(
        pair_scores(vectors, paths, pairs, stats=stats), np.array([p.same for p in pairs]),
        np.array([p.fold for p in pairs]), cross_impostors=cross, **info,
        scoring="cosine" if cohort is None else f"adaptive S-norm (cohort of {len(cohort.vectors)}, top {cohort.top_k})",
    )


def evaluation_pairs(
    dataset: FaceDataset,
    *,
    pairs_file: str | Path | None = None,
    identities: Sequence[str] | None = None,
    max_genuine: int | None = None,
    seed: int = 0,
) -> tuple[list[Pair], str]:
    """The pairs to score (from a pairs file, or built from the folder) and a description of them."""
    if pairs_file is not None:
        return list(read_pairs(pairs_file, dataset.root)), Path(pairs_file).name
    subset = dataset.subset(list(identities)) if identities else dataset
    pairs = build_pairs(subset, rng=np.random.default_rng(seed), max_genuine=max_genuine)
    return list(pairs), f"all genuine + {len(pairs) // 2} seeded impostor pairs (seed {seed})"


def evaluate_teacher(
    data: str | Path,
    *,
    pairs_file: str | Path | None = None,
    identities: Sequence[str] | None = None,
    max_genuine: int | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    cross_impostors: bool = False,
) -> VerificationReport:
    """Evaluate the dlib teacher (:mod:`facepp.model.teacher`) on the same pairs as
    :func:`evaluate_folder`, with its own detection and alignment and one view per image,
    as the ``face_recognition`` library embeds a face. The face nearest the image centre
    is used (as facepp's dataset presets pick), and an image without a detected face is
    aligned on its central square, so every pair is scored."""
    from facepp.model.teacher import DlibTeacher, TeacherCache

    dataset = load_dataset(data)
    pairs, source = evaluation_pairs(dataset, pairs_file=pairs_file, identities=identities, max_genuine=max_genuine, seed=seed)
    paths = pair_images(pairs)
    teacher = DlibTeacher(pick="central", fallback_center=True)
    vectors, ok = TeacherCache(teacher, cache_dir).embeddings(paths, progress=False)
    return _report(
        vectors[:, 0], paths, pairs, cross_impostors=cross_impostors, dataset=Path(data).name, pairs_source=source,
        preprocessing_mode="dlib (HOG, 5 landmarks, 150 px chip)", flip_tta=False, tta_scales=[1.0],
        preprocess_failures=int((~ok).sum()), model="dlib_face_recognition_resnet_model_v1",
    )


def evaluate_folder(
    model_path: str | Path,
    data: str | Path,
    *,
    pairs_file: str | Path | None = None,
    identities: Sequence[str] | None = None,
    max_genuine: int | None = None,
    mode: str | None = None,
    flip_tta: bool = True,
    tta_scales: Sequence[float] | None = None,
    seed: int = 0,
    num_threads: int | None = 2,
    cache_dir: Path | None = None,
    cross_impostors: bool = False,
    score_norm: bool = True,
) -> VerificationReport:
    """Evaluate a checkpoint on a pairs file, or on all pairs built from a folder.

    Args:
        model_path: Checkpoint.
        data: Dataset folder.
        pairs_file: LFW-format pairs; None builds all genuine pairs + as many seeded impostors.
        identities: Restrict the folder to these identities (built pairs only).
        max_genuine: Subsample the built genuine pairs.
        mode: ``landmarks`` / ``detect`` / ``center`` (None: how the model's training crops
            were made, with the layout preset's geometry, e.g. the LFW or ORL centre crop).
        flip_tta: Mirror test-time augmentation.
        tta_scales: Test-time crop scales (None: the checkpoint's inference scales).
        seed: Seed for built pairs.
        num_threads: torch CPU threads.
        cache_dir: Crop cache folder.
        cross_impostors: Also score every cross-identity pair of the scored images (see
            the module docstring).
        score_norm: S-normalise the scores with the model's cohort, when it has one
            (False: raw cosines, e.g. to compare).

    Raises:
        DatasetError, CheckpointError: bad inputs.
    """
    dataset = load_dataset(data)
    embedder = Embedder.from_checkpoint(model_path, flip_tta=flip_tta, num_threads=num_threads).for_dataset(
        dataset.layout, mode=mode, tta_scales=tta_scales)
    preset = embedder.preprocessor.config
    pairs, source = evaluation_pairs(dataset, pairs_file=pairs_file, identities=identities, max_genuine=max_genuine, seed=seed)
    paths = pair_images(pairs)
    crops, ok = embedder.crops_of(paths, cache_dir=cache_dir)
    failures = int((~ok).sum())  # a black crop, reported, never silently dropped
    return _report(
        embedder.embed_crops(crops), paths, pairs, cross_impostors=cross_impostors,
        cohort=embedder.cohort if score_norm else None, dataset=Path(data).name,
        pairs_source=source, preprocessing_mode=preset.mode, flip_tta=flip_tta, tta_scales=list(preset.tta_scales),
        preprocess_failures=failures, model=Path(model_path).name,
    )


def write_report(report: VerificationReport, *, json_path: Path | None = None, roc_path: Path | None = None) -> None:
    """Write the summary JSON (atomically) and/or the ROC plot."""
    if json_path is not None:
        write_json(json_path, report.summary())
    if roc_path is not None:
        from facepp.evaluation.plot import plot_roc

        plot_roc(report.scores, report.labels, roc_path, title=str(report.info.get("dataset", "")),
                 cross_impostors=report.cross_impostors)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (tmp + fsync + replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json.tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def calibration(report: VerificationReport, *, far: float) -> dict[str, Any]:
    """Thresholds to store in a checkpoint: at ``far``, at the reported FARs and at best accuracy.

    The FAR thresholds come from the cross-identity impostors when the report has them
    (many more pairs, so low FARs are resolved), else from the impostor pairs."""
    cross = report.cross_impostors
    impostor = cross if cross is not None else report.scores[~report.labels]
    thresholds = {f"far_{f:g}": metrics.threshold_at_far(impostor, f) for f in sorted({far, *REPORT_FARS})}
    thresholds["best_accuracy"], _ = metrics.best_threshold(report.scores, report.labels)
    return {
        "thresholds": thresholds,
        "threshold": thresholds[f"far_{far:g}"],
        "calibration": {
            "far": far,
            "impostor_pairs": int(impostor.size),
            "impostors": "every cross-identity pair of the scored images" if cross is not None else "the impostor pairs",
            "scoring": report.info.get("scoring"),
            "dataset": report.info.get("dataset"),
            "pairs_source": report.info.get("pairs_source"),
            "flip_tta": report.info.get("flip_tta"),
            "tta_scales": report.info.get("tta_scales"),
            "preprocessing_mode": report.info.get("preprocessing_mode"),
            "note": "FAR below 1 / impostor_pairs is not resolved by this data",
        },
    }


def _check_cohort_scores(name: str, meta: dict[str, Any], report: VerificationReport) -> None:
    """Refuse to calibrate a model with a cohort on scores its terminal would not compute:
    raw cosines, or embeddings from other test-time views than the cohort's."""
    if report.info.get("scoring") == "cosine":
        raise ConfigError(f"{name} carries a cohort, so its thresholds apply to S-normalised scores: "
                          "calibrate without --no-score-norm")
    scales = (meta.get("inference_preprocessing") or meta["preprocessing"]).get("tta_scales")
    if report.info.get("tta_scales") != scales or report.info.get("flip_tta") is not True:
        raise ConfigError(f"{name}'s cohort was embedded with the model's own views (crop scales {scales}, mirrored): "
                          "calibrate without --tta-scales and --no-flip, or attach a new cohort to a model with other views")


def store_calibration(model_path: str | Path, report: VerificationReport, *, far: float) -> dict[str, Any]:
    """Write :func:`calibration` into the checkpoint metadata (atomic rewrite). Returns it.

    The thresholds only hold for the crops they were measured with, so the test-time
    scales, and the alignment mode when it is one the terminal can run on photos
    (``landmarks`` or ``detect``, not the fixed ``center`` crop), become the checkpoint's.
    """
    payload = load_checkpoint(model_path)
    if payload.get("cohort") is not None:
        _check_cohort_scores(Path(model_path).name, payload["metadata"], report)
    values = calibration(report, far=far)
    changes: dict[str, Any] = {}
    if report.info.get("tta_scales"):
        changes["tta_scales"] = report.info["tta_scales"]
    if report.info.get("preprocessing_mode") in PHOTO_MODES:
        changes["mode"] = report.info["preprocessing_mode"]
    if changes:
        meta = payload["metadata"]
        inference = meta.get("inference_preprocessing") or meta["preprocessing"]
        values["inference_preprocessing"] = PreprocessConfig.from_dict({**inference, **changes}).to_dict()
    update_metadata(model_path, values)
    logger.info("stored threshold %.4f (FAR %g) into %s", values["threshold"], far, model_path)
    return values
