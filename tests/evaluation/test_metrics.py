"""Metrics on hand-made score lists whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from facepp.errors import ConfigError
from facepp.evaluation import metrics


def test_perfectly_separable(separable: tuple[np.ndarray, np.ndarray]) -> None:
    s, y = separable
    assert metrics.roc_auc(s, y) == 1.0
    eer, t = metrics.equal_error_rate(s, y)
    assert eer == 0.0 and 0.4 < t < 0.6
    threshold, acc = metrics.best_threshold(s, y)
    assert acc == 1.0 and 0.4 < threshold < 0.6
    assert metrics.tar_at_far(s, y, 1e-3) == (1.0, pytest.approx(np.nextafter(0.4, 1)))
    fpr, tpr, _ = metrics.roc_curve(s, y)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)


def test_overlapping_known_values(overlapping: tuple[np.ndarray, np.ndarray]) -> None:
    s, y = overlapping
    # 16 genuine/impostor comparisons, 2 inverted (0.75 > 0.7 and 0.75 > 0.5).
    assert metrics.roc_auc(s, y) == pytest.approx(14 / 16)
    assert metrics.accuracy_at(s, y, 0.6) == pytest.approx(6 / 8)
    assert metrics.accuracy_at(s, y, 0.45) == pytest.approx(7 / 8)  # only the 0.75 impostor is wrong
    threshold, acc = metrics.best_threshold(s, y)
    assert acc == pytest.approx(7 / 8) and 0.4 < threshold < 0.5
    # FAR 0.25 allows the one impostor: threshold just above 0.4, TAR 1.
    tar, t = metrics.tar_at_far(s, y, 0.25)
    assert tar == 1.0 and 0.4 < t < 0.5
    # FAR 0 must reject 0.75: only 0.9 and 0.8 accepted.
    assert metrics.tar_at_far(s, y, 0.0)[0] == 0.5
    eer, _ = metrics.equal_error_rate(s, y)
    assert eer == pytest.approx(0.25)


def test_auc_counts_ties_as_half() -> None:
    assert metrics.roc_auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5


def test_kfold_threshold_comes_from_other_folds() -> None:
    # Fold 0 has a genuine at 0.55; folds 1-2 put the best threshold between 0.6 and 0.9,
    # so fold 0's genuine 0.55 is rejected when tested.
    s = np.array([0.55, 0.1, 0.9, 0.2, 0.95, 0.6])
    y = np.array([1, 0, 1, 0, 1, 0])
    f = np.array([0, 0, 1, 1, 2, 2])
    accs, thrs = metrics.kfold_accuracy(s, y, f)
    assert accs[0] == 0.5 and 0.6 < thrs[0] < 0.9
    assert thrs.shape == (3,)


def test_threshold_at_far_counts() -> None:
    imp = np.arange(1000) / 1000.0
    t = metrics.threshold_at_far(imp, 1e-2)
    assert np.mean(imp >= t) == pytest.approx(0.01)
    assert np.mean(imp >= metrics.threshold_at_far(imp, 1e-3)) == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("scores", "labels"),
    [([0.1, 0.2], [1, 1]), ([0.1], [1, 0]), ([np.nan, 0.2], [1, 0])],
    ids=["one-class", "length", "nan"],
)
def test_bad_inputs(scores: list[float], labels: list[int]) -> None:
    with pytest.raises(ConfigError):
        metrics.roc_auc(np.array(scores), np.array(labels))


def test_far_out_of_range() -> None:
    with pytest.raises(ConfigError, match="far"):
        metrics.threshold_at_far(np.array([0.1, 0.2]), 1.5)
