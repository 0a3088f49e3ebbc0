"""Fixed-point encoding and packing: exact round trips, bounds, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from facepp.crypto.paillier.packing import PackingPlan, decode, encode, pack, unpack
from facepp.errors import ConfigError, EncodingOverflowError, ProtocolError


def test_layout_fits_the_modulus_with_headroom() -> None:
    plan = PackingPlan(plaintext_bits=2048, frac_bits=20, clip=8.0, max_summands=1024)
    assert plan.offset == 8 * 2**20
    assert 2 * plan.offset * plan.max_summands < 2**plan.slot_bits
    assert plan.slots_per_plaintext * plan.slot_bits <= 2047
    assert plan.slot_bits == 35  # 2BM = 2**34 exactly needs 35 bits
    assert plan.slots_per_plaintext == 2047 // 35


def test_round_trip_with_negatives_and_edges(rng: np.random.Generator) -> None:
    plan = PackingPlan(frac_bits=16, clip=2.0, max_summands=8)
    x = np.concatenate([rng.uniform(-2, 2, 1000), [-2.0, 2.0, 0.0, -0.0, 2**-17, -(2**-17)]]).astype(np.float32)
    packed = pack(encode(x, plan), plan)
    assert len(packed) == plan.ciphertexts_for(len(x))
    assert all(0 <= m < 2**2047 for m in packed)
    y = decode(unpack(packed, plan, count=len(x)), plan, summands=1)
    assert np.max(np.abs(y - x)) <= plan.max_error(1)


def test_sums_of_packed_integers_decode_to_the_sum(rng: np.random.Generator) -> None:
    plan = PackingPlan(frac_bits=20, clip=1.0, max_summands=5)
    xs = [rng.uniform(-1, 1, 500) for _ in range(5)]
    xs[0][:3] = [-1.0, -1.0, 1.0]  # worst case at the bounds
    xs[1][:3] = [-1.0, -1.0, 1.0]
    sums = [sum(col) for col in zip(*(pack(encode(x, plan), plan) for x in xs))]
    y = decode(unpack(sums, plan, count=500), plan, summands=5)
    assert np.max(np.abs(y - np.sum(xs, axis=0))) <= plan.max_error(5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 4.0001, -5.0])
def test_out_of_range_values_are_refused(bad: float) -> None:
    plan = PackingPlan(clip=4.0)
    with pytest.raises(EncodingOverflowError):
        encode(np.array([0.0, bad]), plan)


def test_saturate_clips_instead_of_raising() -> None:
    plan = PackingPlan(clip=1.0)
    y = decode(encode(np.array([5.0, -5.0]), plan, saturate=True), plan, summands=1)
    assert list(y) == [1.0, -1.0]


@pytest.mark.parametrize(
    "kwargs",
    [dict(frac_bits=60), dict(clip=0.0), dict(clip=float("nan")), dict(max_summands=0), dict(frac_bits=40, clip=2.0**20)],
)
def test_invalid_plans_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        PackingPlan(**kwargs)


def test_unpack_refuses_a_plaintext_beyond_the_layout() -> None:
    plan = PackingPlan(frac_bits=20, clip=1.0, max_summands=4)
    with pytest.raises(ProtocolError):
        unpack([2**2047], plan, count=1)
    with pytest.raises(ProtocolError):
        unpack([1, 2], plan, count=1)
