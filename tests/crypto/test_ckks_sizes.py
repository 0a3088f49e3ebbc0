"""The body-size bounds of facepp.crypto.ckks.sizes against real messages."""

from __future__ import annotations

import numpy as np
import pytest

from facepp.crypto.ckks import wire
from facepp.crypto.ckks.params import CkksParams
from facepp.crypto.ckks.secret_key import CkksKeyHolder
from facepp.crypto.ckks.sizes import message_bytes
from tests.helpers.matcher_flows import uncompressed_block


@pytest.fixture(scope="module")
def holder() -> CkksKeyHolder:
    return CkksKeyHolder.generate()


@pytest.mark.parametrize("dim", [8, 32, 128])
def test_template_and_probe_sizes_are_exact_block_sizes_bounded(holder: CkksKeyHolder, dim: int) -> None:
    x = np.random.default_rng(dim).normal(size=(2, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    params = holder.params
    assert len(holder.encrypt_template(x[0])) == message_bytes(wire.Kind.TEMPLATE, params, dim)
    assert len(holder.encrypt_probe(x[0])) == message_bytes(wire.Kind.PROBE, params, dim)
    assert len(holder.encrypt_probe(x[0], verification=False)) < message_bytes(wire.Kind.PROBE, params, dim)
    block, bound = holder.encrypt_block(x), message_bytes(wire.Kind.BLOCK, params, dim)
    raw = uncompressed_block(holder, block, dim)
    assert len(block) < 0.93 * len(raw) and len(raw) < bound < 1.01 * len(raw)  # zstd saves about 10%



@pytest.mark.parametrize("params", [CkksParams(), CkksParams(baby_steps=1)], ids=["default", "one rotation key"])
def test_bundle_bound_holds_and_is_tight(params: CkksParams) -> None:
    size = len(CkksKeyHolder.generate(params).export_public_bundle())
    bound = message_bytes(wire.Kind.PUBLIC_BUNDLE, params, 128)
    assert size <= bound < 1.25 * size


def test_scores_are_never_a_body() -> None:
    with pytest.raises(ValueError, match="never a request body"):
        message_bytes(wire.Kind.SCORES, CkksParams(), 128)
