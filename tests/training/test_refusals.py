"""Every refusal of the parameter server, over real HTTP: clear JSON error, right status, nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from facepp.crypto.paillier.secret_cipher import SecretKey, generate_keypair
from tests.helpers.federation import MODEL_SIZE, ServerProcess, encrypt, token, upload
from training.fedavg import packing_plan


@pytest.fixture()
def good(paillier_key: SecretKey) -> bytes:
    return encrypt(paillier_key)


def stored_uploads(server: ServerProcess) -> list[Path]:
    return sorted((server.federation.server_state / "uploads").glob("*.bin"))


def assert_refused(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["error"]


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Basic abc", "Bearer "])
def test_bad_or_missing_token(server: ServerProcess, good: bytes, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    assert_refused(upload(server, None, 1, good, **headers), 401, "unauthorized")
    assert_refused(requests.get(f"{server.url}/api/v1/model", headers=headers, timeout=10), 401, "unauthorized")
    assert stored_uploads(server) == []


def test_future_round_duplicate_and_closed_round(server: ServerProcess, good: bytes, paillier_key: SecretKey) -> None:
    assert_refused(upload(server, "alice", 2, good), 409, "conflict")
    assert upload(server, "alice", 1, good).status_code == 201
    assert_refused(upload(server, "alice", 1, good), 409, "conflict")  # second upload, same round
    assert len(stored_uploads(server)) == 1
    for name in ("bob", "carol"):
        assert upload(server, name, 1, encrypt(paillier_key)).status_code == 201  # everyone in: round 1 closes
    response = upload(server, "alice", 1, encrypt(paillier_key))
    assert_refused(response, 409, "conflict")
    assert "closed" in response.json()["error"]


def test_ciphertext_under_another_key(server: ServerProcess) -> None:
    assert_refused(upload(server, "alice", 1, encrypt(generate_keypair(2048))), 400, "key_mismatch")
    assert stored_uploads(server) == []


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b"",
        lambda b: b[:50],
        lambda b: b[:-7],
        lambda b: b"\x00" * len(b),
        lambda b: b[:69] + b"\xff" * (len(b) - 69),
    ],
    ids=["empty", "truncated-header", "truncated-body", "zeros", "out-of-range-ciphertexts"],
)
def test_malformed_bytes(server: ServerProcess, good: bytes, mangle) -> None:
    assert_refused(upload(server, "alice", 1, mangle(good)), 400, "protocol_error")
    assert stored_uploads(server) == []


def test_wrong_length_and_wrong_plan(server: ServerProcess, paillier_key: SecretKey) -> None:
    assert_refused(upload(server, "alice", 1, encrypt(paillier_key, size=MODEL_SIZE)), 400, "protocol_error")
    other_plan = packing_plan(key_bits=2048, participants=40)
    assert_refused(upload(server, "alice", 1, encrypt(paillier_key, plan=other_plan)), 400, "protocol_error")
    assert stored_uploads(server) == []


def test_oversized_body(server: ServerProcess, good: bytes) -> None:
    assert_refused(upload(server, "alice", 1, good + b"\0" * 100_000), 413, "payload_too_large")
    assert stored_uploads(server) == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"version": 1, "metrics": {"loss": "high"}}', b'{"version": 2, "metrics": {"loss": 1}}',
     b'{"version": 1, "metrics": {"bad name!": 1}}', b'{"version": 1, "metrics": {}}'],
)
def test_bad_metrics(server: ServerProcess, body: bytes) -> None:
    response = requests.post(f"{server.url}/api/v1/rounds/1/metrics", data=body, timeout=10,
                             headers={"Authorization": f"Bearer {token(server, 'alice')}"})
    assert_refused(response, 400, "protocol_error")


def test_status_page_shows_the_round(server: ServerProcess, good: bytes) -> None:
    upload(server, "alice", 1, good)
    operator = {"Authorization": f"Bearer {server.federation.operator_token.read_text()}"}
    page = requests.get(server.url + "/", headers=operator, timeout=10).text
    assert "Round <strong>1</strong>" in page and "alice" in page and "bob, carol" in page
    assert requests.get(server.url + "/metrics.png", headers=operator, timeout=30).content.startswith(b"\x89PNG")
