"""Fuzzing the Paillier and CKKS wire formats: any bytes give a project error or a valid object, never a crash.

Quick by design (bounded examples); ``benchmarks/abuse_bench.py`` runs the same targets longer.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.fuzz_targets import assert_robust, ckks_target, paillier_target
from facepp.crypto.ckks.secret_key import CkksKeyHolder
from facepp.crypto.paillier.secret_cipher import SecretKey, VectorCipher
from training.fedavg import FederationPlan, packing_plan

DIM = 8


def test_paillier_wire_format(secret_key: SecretKey) -> None:
    plan = FederationPlan(packing_plan(key_bits=2048, participants=3), participants=3, sample_scale=10.0)
    with VectorCipher(secret_key, plan.packing, workers=1) as cipher:
        samples = [cipher.encrypt(plan.contribution(np.full(n, 0.25), 5)).to_bytes() for n in (3, 80)]
        samples.append(cipher.encrypt(np.full(4, -64.0)).to_bytes())  # parses; its aggregate is refused
    assert_robust(paillier_target(secret_key, samples, plan), max_examples=150)


@pytest.fixture(scope="module")
def holder() -> CkksKeyHolder:
    return CkksKeyHolder.generate()


def test_ckks_wire_format(holder: CkksKeyHolder) -> None:
    from facepp.crypto.ckks.matcher import CkksMatcher

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    matcher = CkksMatcher.from_public_bundle(holder.export_public_bundle(), dim=DIM)
    matcher.add("s1", holder.encrypt_template(x[0]))
    probe = holder.encrypt_probe(x[1])
    samples = {"probe": probe, "probe-identify": holder.encrypt_probe(x[1], verification=False),
               "template": holder.encrypt_template(x[1]), "scores": matcher.score_all(probe)}
    assert_robust(ckks_target(matcher.context, samples, DIM), max_examples=120)
