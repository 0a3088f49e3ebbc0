"""Matcher fixtures: a real waitress server on loopback over a real database, and the test
process playing the terminal with a real CKKS key holder (session-scoped: keygen is slow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facepp.crypto.ckks.secret_key import CkksKeyHolder
from tests.helpers.matcher import DIM, N_SUBJECTS, MatcherServer


@pytest.fixture(scope="session")
def key_holder() -> CkksKeyHolder:
    """The terminal's key pair (the test process plays the terminal)."""
    return CkksKeyHolder.generate()


@pytest.fixture(scope="session")
def other_key_holder() -> CkksKeyHolder:
    """A second terminal's keys: its ciphertexts carry another fingerprint."""
    return CkksKeyHolder.generate()


@pytest.fixture(scope="session")
def embeddings() -> np.ndarray:
    """``(N_SUBJECTS, DIM)`` float64, L2-normalised, seeded."""
    x = np.random.default_rng(2026).normal(size=(N_SUBJECTS, DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'matcher.db'}"


@pytest.fixture()
def matcher(sqlite_url: str) -> Iterator[MatcherServer]:
    """A running matcher on a fresh SQLite file (no bundle yet)."""
    server = MatcherServer(sqlite_url).start()
    yield server
    server.stop()


@pytest.fixture()
def registered(matcher: MatcherServer, key_holder: CkksKeyHolder) -> MatcherServer:
    """A running matcher with the terminal's bundle registered at ``DIM``."""
    matcher.client().register_bundle(key_holder.export_public_bundle(), dim=DIM)
    return matcher
