"""The schedule search scores validation folds of the training identities, never the test people."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.schedule_search import Schedule, main, search, validation_folds
from facepp.errors import ConfigError
from facepp.models import SHIPPED_PATH
from training.simulation.simulate import SimulationConfig


def test_quick_search_scores_every_fold_and_keeps_the_test_people_out(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "search.json"
    main(["--quick", "--data", str(data_root / "orl"), "--json", str(out)])
    report = json.loads(out.read_text())
    folds = [set(f) for f in report["folds"]]
    assert set.union(*folds) == {f"s{i}" for i in range(1, 31)} and sum(map(len, folds)) == 30  # s31-s40 untouched
    as_is, tuned = report["rows"]
    assert as_is["schedule"] == "as is" and tuned["schedule"] == report["chosen"] == "1x1@0.001"
    for row in report["rows"]:
        assert [f["pairs"] for f in row["folds"]] == [1350, 1350]  # every pair of 15 people x 10 images
        assert row["mean_accuracy"] == pytest.approx(np.mean([f["accuracy"] for f in row["folds"]]))
    assert [f["auc"] for f in tuned["folds"]] != [f["auc"] for f in as_is["folds"]]  # the fold models were trained


def test_bad_schedules_and_fold_counts_are_refused(data_root: Path) -> None:
    assert Schedule.parse(" 3x4@3e-4") == Schedule(3, 4, 3e-4) and str(Schedule(3, 4, 3e-4)) == "3x4@0.0003"
    for text in ("2x4", "2x4@", "0x4@1e-3", "2x4@-1", "2x4@nan", "ax4@1e-3"):
        with pytest.raises(ConfigError, match="schedule"):
            Schedule.parse(text)
    config = SimulationConfig(data=data_root / "orl", participants=3, init=SHIPPED_PATH)
    for folds in (1, 16):
        with pytest.raises(ConfigError, match="folds"):
            validation_folds(config, folds)
    assert [len(f) for f in validation_folds(config, 4)] == [8, 8, 7, 7]
    with pytest.raises(ConfigError, match="at least one schedule"):
        search(config, [], folds=2)
