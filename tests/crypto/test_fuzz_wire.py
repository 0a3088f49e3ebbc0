"""Fuzzing the Paillier and CKKS wire formats: any bytes give a project error or a valid object, never a crash.

Quick by design (bounded examples); ``benchmarks/abuse_bench.py`` runs the same targets longer.
"""

from __future__ import annotations

from benchmarks.fuzz_targets import assert_robust, ckks_samples, ckks_target, paillier_samples, paillier_target
from facepp.crypto.ckks.secret_key import CkksKeyHolder
from facepp.crypto.paillier.secret_cipher import SecretKey
from training.fedavg import FederationPlan, packing_plan

DIM = 8


def test_paillier_wire_format(secret_key: SecretKey) -> None:
    plan = FederationPlan(packing_plan(key_bits=2048, participants=3), participants=3, sample_scale=10.0)
    assert_robust(paillier_target(secret_key, paillier_samples(secret_key, plan), plan), max_examples=150)


def test_ckks_wire_format() -> None:
    context, samples = ckks_samples(CkksKeyHolder.generate(), DIM)
    assert_robust(ckks_target(context, samples, DIM), max_examples=120)
