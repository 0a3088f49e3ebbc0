"""Fuzzing the federation's bodies: the metrics and round-status JSON in process, and a live parameter
server over HTTP (uploads bound to their round, so the ciphertext parser is reached; metrics; status
pages; wrong and missing tokens). Never a crash, never a 5xx, and a refused request changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.fuzz_targets import assert_robust, federation_bodies_target, federation_http_target
from facepp.crypto.paillier.secret_cipher import SecretKey
from tests.helpers.federation import PARTICIPANTS, ServerProcess, encrypt


def test_federation_bodies() -> None:
    assert_robust(federation_bodies_target(), max_examples=300)


@pytest.fixture()
def patient_server(make_federation) -> Iterator[ServerProcess]:  # type: ignore[no-untyped-def]
    """A server whose rounds close only when everyone uploaded (no deadline passes during the test)."""
    proc = ServerProcess(make_federation(round_timeout_s=24 * 3600.0)).start()
    yield proc
    proc.stop()


def test_parameter_server_over_http(patient_server: ServerProcess, paillier_key: SecretKey) -> None:
    fed = patient_server.federation
    tokens = {name: fed.participant_dir(name).joinpath("token").read_text() for name in PARTICIPANTS}
    target = federation_http_target(patient_server.url, fed.server_state, tokens,
                                    [encrypt(paillier_key), encrypt(paillier_key, size=10)])
    assert_robust(target, max_examples=150)
