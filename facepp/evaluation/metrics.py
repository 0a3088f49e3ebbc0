"""Verification metrics as pure numpy functions (any role may import this).

Conventions: ``scores`` are similarities (higher = more alike), ``labels`` are 1 for
genuine (same person) and 0 for impostor pairs, and a pair is *accepted* when
``score >= threshold``. FAR = accepted impostors / impostors, TAR = accepted
genuine / genuine, FRR = 1 - TAR.
"""

from __future__ import annotations

import numpy as np

from facepp.errors import ConfigError


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if s.shape != y.shape:
        raise ConfigError(f"scores and labels differ in length: {s.shape} vs {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ConfigError("scores must be finite")
    if y.all() or not y.any():
        raise ConfigError("need both genuine (1) and impostor (0) pairs")
    return s, y


def candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    """Every distinct decision: midpoints between sorted distinct scores plus one below and one above all."""
    u = np.unique(np.asarray(scores, dtype=np.float64))
    mids = (u[:-1] + u[1:]) / 2
    return np.concatenate([[u[0] - 1.0], mids, [u[-1] + 1.0]])


def rates_at(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, TAR) at each threshold, arrays shaped like ``thresholds``."""
    s, y = _check(scores, labels)
    t = np.asarray(thresholds, dtype=np.float64)
    gen, imp = np.sort(s[y]), np.sort(s[~y])
    tar = 1.0 - np.searchsorted(gen, t, side="left") / len(gen)
    far = 1.0 - np.searchsorted(imp, t, side="left") / len(imp)
    return far, tar


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points from (0, 0) to (1, 1).

    Returns:
        (fpr, tpr, thresholds), thresholds decreasing.
    """
    thresholds = candidate_thresholds(np.asarray(scores))[::-1]
    far, tar = rates_at(scores, labels, thresholds)
    return far, tar, thresholds


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(genuine score > impostor score) + 0.5 P(tie) (Mann-Whitney)."""
    s, y = _check(scores, labels)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def equal_error_rate(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Equal error rate, where FAR = FRR, linearly interpolated between thresholds.

    Returns:
        (eer, threshold at the crossing).
    """
    thresholds = candidate_thresholds(np.asarray(scores))
    far, tar = rates_at(scores, labels, thresholds)
    frr = 1.0 - tar  # increasing with threshold; far decreasing
    diff = frr - far
    i = int(np.argmax(diff >= 0))
    if i == 0 or diff[i] == 0:
        return float((far[i] + frr[i]) / 2), float(thresholds[i])
    d0, d1 = diff[i - 1], diff[i]
    w = d0 / (d0 - d1)  # fraction of the way from i-1 to i where the curves cross
    eer = far[i - 1] + w * (far[i] - far[i - 1])
    return float(eer), float(thresholds[i - 1] + w * (thresholds[i] - thresholds[i - 1]))


def threshold_at_far(impostor_scores: np.ndarray, far: float) -> float:
    """The smallest threshold whose false-accept rate on ``impostor_scores`` is <= ``far``.

    With n impostors at most ``floor(far * n)`` of them are accepted; when that is 0 the
    threshold sits just above the highest impostor score.

    Raises:
        ConfigError: ``far`` outside [0, 1] or no impostor scores.
    """
    if not 0.0 <= far <= 1.0:
        raise ConfigError(f"far must be in [0, 1], got {far}")
    imp = np.sort(np.asarray(impostor_scores, dtype=np.float64))[::-1]
    if imp.size == 0:
        raise ConfigError("need impostor scores to calibrate a threshold")
    k = int(np.floor(far * imp.size + 1e-9))
    if k >= imp.size:
        return float(imp[-1])
    return float(np.nextafter(imp[k], np.inf))


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> tuple[float, float]:
    """True-accept rate at the threshold :func:`threshold_at_far` gives.

    Returns:
        (tar, threshold).
    """
    s, y = _check(scores, labels)
    t = threshold_at_far(s[~y], far)
    return float(np.mean(s[y] >= t)), t


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold maximising accuracy (ties: the lowest such threshold).

    Returns:
        (threshold, accuracy).
    """
    s, y = _check(scores, labels)
    thresholds = candidate_thresholds(s)
    far, tar = rates_at(s, y, thresholds)
    n_pos, n_neg = y.sum(), (~y).sum()
    acc = (tar * n_pos + (1.0 - far) * n_neg) / len(s)
    i = int(np.argmax(acc))
    return float(thresholds[i]), float(acc[i])


def accuracy_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Fraction of pairs decided correctly at ``threshold``."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    return float(np.mean((s >= threshold) == y))


def kfold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated accuracy: for each fold, the threshold is chosen on all other folds.

    Args:
        scores: (N,) similarities.
        labels: (N,) 1 genuine / 0 impostor.
        folds: (N,) fold index per pair (at least two distinct folds).

    Returns:
        (accuracy per fold, threshold per fold), both (K,), folds in sorted order.
    """
    s, y = _check(scores, labels)
    f = np.asarray(folds).ravel()
    ids = np.unique(f)
    if len(ids) < 2 or f.shape != s.shape:
        raise ConfigError("need a fold index per pair and at least two folds")
    accs, thrs = [], []
    for k in ids:
        test = f == k
        t, _ = best_threshold(s[~test], y[~test])
        accs.append(accuracy_at(s[test], y[test], t))
        thrs.append(t)
    return np.array(accs), np.array(thrs)
