"""Cross-identity impostors: every pair of images of different people, and the TARs they resolve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepp.errors import ConfigError
from facepp.evaluation.verify import VerificationReport, calibration, cross_identity_scores, far_key, write_report


def test_every_cross_identity_pair_once(rng: np.random.Generator) -> None:
    vectors = rng.normal(size=(7, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    names = ["a", "a", "a", "b", "b", "c", "d"]
    scores = cross_identity_scores(vectors, names)
    expected = sorted(float(vectors[i] @ vectors[j]) for i in range(7) for j in range(i + 1, 7) if names[i] != names[j])
    assert len(scores) == 21 - 3 - 1  # all pairs minus a's 3 and b's 1 same-identity pairs
    assert sorted(scores) == pytest.approx(expected)


def test_bad_inputs_are_clear_errors(rng: np.random.Generator) -> None:
    with pytest.raises(ConfigError, match="3 embeddings but 2 identities"):
        cross_identity_scores(rng.normal(size=(3, 4)), ["a", "b"])
    with pytest.raises(ConfigError, match="at least two people"):
        cross_identity_scores(rng.normal(size=(3, 4)), ["a", "a", "a"])


def test_summary_resolves_tar_at_low_far(rng: np.random.Generator, tmp_path: Path) -> None:
    genuine = np.linspace(0.3, 0.9, 100)
    labels = np.repeat([True, False], 100)
    scores = np.concatenate([genuine, rng.uniform(-0.2, 0.2, 100)])
    cross = np.concatenate([rng.uniform(-0.5, 0.5, 99_990), np.full(10, 0.6)])  # 1e-4 of them at 0.6
    report = VerificationReport.from_scores(scores, labels, np.tile(np.arange(10), 20), cross_impostors=cross)
    summary = report.summary()
    assert summary["cross_impostor_pairs"] == 100_000
    for far, accepted in ((1e-4, 10), (1e-3, 100)):
        key = far_key(far)
        t = summary[f"cross_threshold_at_far_{key}"]
        assert np.sum(cross >= t) == accepted  # FAR 1e-4 is resolved by 100,000 impostors
        assert summary[f"cross_tar_at_far_{key}"] == pytest.approx(np.mean(genuine >= t))
    # the 10 impostors at 0.6 are the ones accepted at 1e-4: the threshold lies above every other
    assert cross[cross < 0.6].max() < summary["cross_threshold_at_far_1e-4"] <= 0.6
    assert summary["cross_tar_at_far_1e-4"] <= summary["cross_tar_at_far_1e-3"]
    assert "cross_impostor_pairs" not in VerificationReport.from_scores(scores, labels, np.tile(np.arange(10), 20)).summary()
    write_report(report, roc_path=tmp_path / "roc.png")  # the log panel adds the cross-identity curve
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibration_uses_the_cross_identity_impostors(rng: np.random.Generator) -> None:
    labels = np.repeat([True, False], 100)
    scores = np.concatenate([rng.uniform(0.5, 1.0, 100), rng.uniform(-0.2, 0.2, 100)])
    cross = rng.uniform(-0.5, 0.5, 50_000)
    folds = np.tile(np.arange(10), 20)
    with_cross = calibration(VerificationReport.from_scores(scores, labels, folds, cross_impostors=cross), far=1e-3)
    assert with_cross["calibration"]["impostor_pairs"] == 50_000
    assert np.sum(cross >= with_cross["threshold"]) == 50  # FAR 1e-3 of 50,000 cross-identity pairs
    pairs_only = calibration(VerificationReport.from_scores(scores, labels, folds), far=1e-3)
    assert pairs_only["calibration"]["impostor_pairs"] == 100
    assert pairs_only["threshold"] > scores[~labels].max()  # 100 impostors: FAR 1e-3 accepts none
