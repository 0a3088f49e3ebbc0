"""The round benchmark's seed summary: mean gap and Student-t interval on known numbers."""

from __future__ import annotations

import pytest

from benchmarks.round_bench import gap_summary


def test_gap_summary_known_answer() -> None:
    summary = gap_summary([1.0, 2.0, 3.0])
    assert summary["seeds"] == 3 and summary["mean_gap_points"] == pytest.approx(2.0)
    assert summary["gap_std_points"] == pytest.approx(1.0)
    half = 4.302653 / 3**0.5  # t(0.975, 2 degrees of freedom) * std / sqrt(n)
    assert (summary["gap_ci95_low"], summary["gap_ci95_high"]) == (pytest.approx(2 - half), pytest.approx(2 + half))


def test_gap_summary_single_seed_has_no_interval() -> None:
    assert gap_summary([0.5]) == {"seeds": 1, "mean_gap_points": 0.5, "gap_std_points": None,
                                  "gap_ci95_low": None, "gap_ci95_high": None}
