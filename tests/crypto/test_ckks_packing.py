"""Pure packing maths of the CKKS gallery (no encryption) and parameter validation."""

from __future__ import annotations

import numpy as np
import pytest

from facepp.crypto.ckks import packing as pk
from facepp.crypto.ckks.params import HE_STANDARD_MAX_BITS_128, CkksParams, security_bits_ok
from facepp.errors import ConfigError, EncodingOverflowError


def _unit_rows(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    x = rng.standard_normal((k, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("dim", "baby"), [(8, 1), (16, 16), (128, 32), (512, 32)])
def test_reference_scores_equal_inner_products(rng: np.random.Generator, dim: int, baby: int) -> None:
    slots = 1024
    x = _unit_rows(rng, 300, dim)
    diags = pk.diagonal_block(x, slots=slots, baby=baby)
    scores = pk.reference_scores(diags, x[7], baby=baby)
    np.testing.assert_allclose(scores[:300], x @ x[7], atol=1e-12)
    np.testing.assert_array_equal(scores[300:], 0.0)
    np.testing.assert_allclose(pk.undiagonal_block(diags, baby=baby)[:300], x, atol=0)


@pytest.mark.parametrize(("dim", "baby"), [(128, 32), (32, 8)])
def test_single_template_contribution_is_its_block_layout(rng: np.random.Generator, dim: int, baby: int) -> None:
    slots, t = 512, 77
    x = _unit_rows(rng, 1, dim)[0]
    rep = pk.replicate(x, slots=slots)
    masks = pk.slot_masks(t, dim=dim, slots=slots, baby=baby)
    contribution = np.stack([pk.rot(rep, j) * masks[k] for k in range(dim // baby) for j in range(baby)])
    alone = np.zeros((t + 1, dim))
    alone[t] = x
    np.testing.assert_array_equal(contribution, pk.diagonal_block(alone, slots=slots, baby=baby))


def test_bitmap_round_trip(rng: np.random.Generator) -> None:
    occupied = rng.random(4096) < 0.3
    data = pk.pack_bitmap(occupied)
    assert len(data) == 512
    np.testing.assert_array_equal(pk.unpack_bitmap(data, slots=4096), occupied)


def test_check_embeddings_refuses_bad_input() -> None:
    with pytest.raises(ConfigError):
        pk.check_embeddings(np.ones(64) / 8, dim=128)
    with pytest.raises(EncodingOverflowError):
        pk.check_embeddings(np.ones(128), dim=128)
    with pytest.raises(EncodingOverflowError):
        pk.check_embeddings(np.full(128, np.nan), dim=128)


def test_default_params_meet_he_standard() -> None:
    params = CkksParams()
    assert params.total_bits == 200 <= HE_STANDARD_MAX_BITS_128[8192]
    assert security_bits_ok(params)
    assert params.slots == 4096


@pytest.mark.parametrize(
    "kwargs",
    [
        {"poly_degree": 5000},
        {"poly_degree": 4096},  # 200 bits > 109-bit bound
        {"qi_sizes": (60, 40, 40, 60, 18)},
        {"qi_sizes": (60, 50, 50, 60)},  # exceeds 218 bits
        {"qi_sizes": (60, 30, 40, 60)},  # middle primes must equal the scale
        {"baby_steps": 24},
        {"scale_bits": 10},
    ],
)
def test_bad_params_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        CkksParams(**kwargs)  # type: ignore[arg-type]


def test_check_dim() -> None:
    params = CkksParams()
    assert params.check_dim(128) == 128 and params.check_dim(512) == 512
    for bad in (0, 100, 8192, 4):
        with pytest.raises(ConfigError):
            params.check_dim(bad)
