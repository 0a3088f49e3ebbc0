"""The leak audit finds every representation of a contribution, wherever it sits, in one pass."""

from __future__ import annotations

import numpy as np

from facepp.crypto.paillier.packing import PackingPlan
from training.simulation.audit import find_leaks, representations


def test_each_planted_representation_is_found_and_named() -> None:
    plan = PackingPlan()
    rng = np.random.default_rng(0)
    vectors = {"alice": rng.normal(0, 0.1, 5000), "bob": rng.normal(0, 0.1, 5000)}
    noise = rng.bytes(2_000_000)
    assert find_leaks(noise, vectors, plan) == []
    for kind, (raw, _) in representations(vectors["bob"], plan).items():
        # a slice of the representation, not the whole of it, planted mid-haystack
        planted = noise[:700_001] + raw[len(raw) // 3 : 2 * len(raw) // 3] + noise[700_001:]
        assert find_leaks(planted, vectors, plan) == [f"bob: {kind}"], kind


def test_zero_bytes_are_no_leak_of_an_all_zero_update() -> None:
    """Its float windows are all zero bytes, which any file holds: they are not probes."""
    assert find_leaks(bytes(100_000), {"zero": np.zeros(1000)}, PackingPlan()) == []
