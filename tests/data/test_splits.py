"""Identity-disjoint splits and participant partitions."""

from __future__ import annotations

import numpy as np
import pytest

from facepp.data.splits import PARTITION_SCHEMES, partition_identities, split_identities
from facepp.errors import ConfigError

NAMES = [f"person_{k}" for k in range(50)]


def test_split_is_disjoint_complete_and_deterministic() -> None:
    a = split_identities(NAMES, test_fraction=0.2, seed=3)
    b = split_identities(list(reversed(NAMES)), test_fraction=0.2, seed=3)
    assert a == b
    assert not set(a.train) & set(a.test) and set(a.train) | set(a.test) == set(NAMES)
    assert len(a.test) == 10
    assert split_identities(NAMES, seed=4) != a


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5])
def test_split_rejects_bad_fraction(bad: float) -> None:
    with pytest.raises(ConfigError):
        split_identities(NAMES, test_fraction=bad)


@pytest.mark.parametrize("scheme", PARTITION_SCHEMES)
def test_partitions_cover_each_identity_once(scheme: str) -> None:
    counts = {n: 1 + k % 7 for k, n in enumerate(NAMES)}
    parts = partition_identities(NAMES, 5, scheme=scheme, rng=np.random.default_rng(0), alpha=0.3, image_counts=counts)
    flat = [n for part in parts for n in part]
    assert sorted(flat) == sorted(NAMES) and len(flat) == len(set(flat))
    assert len(parts) == 5 and all(parts)
    again = partition_identities(NAMES, 5, scheme=scheme, rng=np.random.default_rng(0), alpha=0.3, image_counts=counts)
    assert parts == again


def test_iid_is_balanced_and_dirichlet_is_skewed() -> None:
    iid = partition_identities(NAMES, 5, scheme="iid", rng=np.random.default_rng(1))
    assert {len(p) for p in iid} == {10}
    skewed = partition_identities(NAMES, 5, scheme="dirichlet", rng=np.random.default_rng(1), alpha=0.1)
    assert max(len(p) for p in skewed) - min(len(p) for p in skewed) > 5


def test_partition_errors_list_choices() -> None:
    with pytest.raises(ConfigError, match="expected one of"):
        partition_identities(NAMES, 2, scheme="bogus", rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="n_parts"):
        partition_identities(NAMES, 51, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="image_counts"):
        partition_identities(NAMES, 2, scheme="size", rng=np.random.default_rng(0))


@pytest.mark.parametrize("scheme", PARTITION_SCHEMES)
def test_every_participant_gets_the_minimum_number_of_identities(scheme: str) -> None:
    counts = {n: 1 + k % 7 for k, n in enumerate(NAMES)}
    for seed in range(20):  # Dirichlet(0.1) alone leaves some participants with 1 identity
        parts = partition_identities(NAMES, 10, scheme=scheme, rng=np.random.default_rng(seed), alpha=0.1,
                                     image_counts=counts, min_identities=3)
        assert min(len(p) for p in parts) >= 3
    with pytest.raises(ConfigError, match="cannot give each of 26 participants 2"):
        partition_identities(NAMES, 26, rng=np.random.default_rng(0), min_identities=2)
