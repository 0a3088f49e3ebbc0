"""Report summary keys, ROC plot and calibration values."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facepp.evaluation.verify import VerificationReport, calibration, write_report

KEYS = {"accuracy", "accuracy_std", "auc", "eer", "tar_at_far_1e-2", "tar_at_far_1e-3", "threshold", "pairs"}


def test_summary_json_and_roc(tmp_path: Path, rng: np.random.Generator) -> None:
    labels = np.repeat([1, 0], 200)
    scores = np.where(labels == 1, rng.normal(0.6, 0.1, 400), rng.normal(0.1, 0.1, 400))
    folds = np.tile(np.arange(10), 40)
    report = VerificationReport.from_scores(scores, labels, folds, dataset="synthetic")
    summary = report.summary()
    assert KEYS <= set(summary) and summary["pairs"] == 400 and summary["dataset"] == "synthetic"
    assert 0.95 < summary["accuracy"] <= 1.0 and 0.95 < summary["auc"] <= 1.0
    write_report(report, json_path=tmp_path / "m.json", roc_path=tmp_path / "roc.png")
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import json

    assert set(json.loads((tmp_path / "m.json").read_text())) >= KEYS
    cal = calibration(report, far=1e-2)
    impostor = scores[labels == 0]
    assert np.mean(impostor >= cal["threshold"]) <= 1e-2
    assert set(cal["thresholds"]) == {"far_0.01", "far_0.001", "best_accuracy"}
