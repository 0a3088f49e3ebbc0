"""Crypto fixtures: one 2048-bit Paillier key pair per session (generation takes ~0.1 s)."""

from __future__ import annotations

import pytest

from facepp.crypto.paillier.secret_cipher import PackingPlan, SecretKey, VectorCipher, generate_keypair


@pytest.fixture(scope="session")
def secret_key() -> SecretKey:
    return generate_keypair(2048)


@pytest.fixture(scope="session")
def other_secret_key() -> SecretKey:
    return generate_keypair(2048)


@pytest.fixture(scope="session")
def plan() -> PackingPlan:
    return PackingPlan(plaintext_bits=2048, frac_bits=20, clip=4.0, max_summands=16)


@pytest.fixture()
def cipher(secret_key: SecretKey, plan: PackingPlan) -> VectorCipher:
    with VectorCipher(secret_key, plan, workers=1) as c:
        yield c
