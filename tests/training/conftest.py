"""Federation fixtures: a key pair, initial weights, federations and a running server (helpers: tests.helpers.federation)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facepp.crypto.paillier.secret_cipher import SecretKey, generate_keypair
from tests.helpers.federation import MODEL_SIZE, PARTICIPANTS, ServerProcess
from training.ceremony import Federation, create_federation

@pytest.fixture(scope="session")
def paillier_key() -> SecretKey:
    return generate_keypair(2048)


@pytest.fixture()
def initial_weights() -> np.ndarray:
    return np.random.default_rng(7).normal(0, 0.1, MODEL_SIZE).astype(np.float32)


@pytest.fixture()
def make_federation(tmp_path: Path, paillier_key: SecretKey, initial_weights: np.ndarray):  # type: ignore[no-untyped-def]
    def make(**kwargs) -> Federation:  # type: ignore[no-untyped-def]
        options = dict(participants=PARTICIPANTS, initial_weights=initial_weights, total_rounds=2, round_timeout_s=60.0)
        options.update(kwargs)
        return create_federation(tmp_path / "fed", secret_key=paillier_key, **options)

    return make


@pytest.fixture()
def server(make_federation) -> Iterator[ServerProcess]:  # type: ignore[no-untyped-def]
    proc = ServerProcess(make_federation()).start()
    yield proc
    proc.stop()
