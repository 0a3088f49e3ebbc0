"""The federation end to end: real server and participant processes over loopback HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.federation import (PARTICIPANTS, TOLERANCE, ServerProcess, expected_fedavg, start_toy_participant,
                                     uploads_in, wait_all)
from tests.helpers.toy_participant import SAMPLE_SCALE, toy_update
from facepp.crypto.paillier.encrypted_vector import EncryptedVector
from facepp.crypto.paillier.secret_cipher import SecretKey, VectorCipher
from training.fedavg import average_from_sum


def test_encrypted_federation_equals_plaintext_fedavg(
    server: ServerProcess, initial_weights: np.ndarray, paillier_key: SecretKey, tmp_path: Path
) -> None:
    fed = server.federation
    procs = [start_toy_participant(fed, name, server.url, out=tmp_path / f"{name}.npy") for name in PARTICIPANTS]
    wait_all(procs)
    expected = expected_fedavg(initial_weights, 2, [PARTICIPANTS, PARTICIPANTS])
    model_0 = (fed.server_state / "models" / "model-00000.bin").read_bytes()
    plan = EncryptedVector.from_bytes(model_0, paillier_key.public_key).plan
    start = average_from_sum(VectorCipher(paillier_key, plan).decrypt(EncryptedVector.from_bytes(model_0, paillier_key.public_key)))
    exact = expected_fedavg(start, 2, [PARTICIPANTS, PARTICIPANTS], plan=plan)
    for name in PARTICIPANTS:
        got = np.load(tmp_path / f"{name}.npy")
        assert np.max(np.abs(got - expected)) < TOLERANCE
        # The same fixed-point arithmetic in the clear, from the decrypted W_0: equal bit for bit.
        assert np.array_equal(got, exact)
    assert not np.allclose(expected, initial_weights)  # training moved the model


def test_killed_participant_round_closes_by_quorum_and_deadline(make_federation, initial_weights: np.ndarray, tmp_path: Path) -> None:
    fed = make_federation(round_timeout_s=3.0, quorum=2)
    server = ServerProcess(fed).start()
    try:
        victim = start_toy_participant(fed, "carol", server.url, out=tmp_path / "carol.npy", delay_s=60)
        procs = [start_toy_participant(fed, n, server.url, out=tmp_path / f"{n}.npy") for n in ("alice", "bob")]
        time.sleep(1.5)  # carol has downloaded the model and is "training"
        victim.kill()
        wait_all(procs)
    finally:
        server.stop()
    expected = expected_fedavg(initial_weights, 2, [("alice", "bob")] * 2)
    assert np.max(np.abs(np.load(tmp_path / "alice.npy") - expected)) < TOLERANCE


def test_server_killed_mid_round_loses_no_accepted_upload(make_federation, initial_weights: np.ndarray, tmp_path: Path) -> None:
    fed = make_federation()
    server = ServerProcess(fed).start()
    procs = [start_toy_participant(fed, n, server.url, out=tmp_path / f"{n}.npy") for n in ("alice", "bob")]
    procs.append(start_toy_participant(fed, "carol", server.url, out=tmp_path / "carol.npy", delay_s=4))
    try:
        deadline = time.monotonic() + 30
        while uploads_in(fed.server_state, 1) < 2:
            assert time.monotonic() < deadline, "alice and bob did not upload"
            time.sleep(0.05)
        server.kill()  # SIGKILL with two accepted uploads in the open round
        time.sleep(1.0)
        server = ServerProcess(fed, port=server.port).start()
        wait_all(procs)
    finally:
        server.stop()
    expected = expected_fedavg(initial_weights, 2, [PARTICIPANTS, PARTICIPANTS])
    for name in PARTICIPANTS:
        assert np.max(np.abs(np.load(tmp_path / f"{name}.npy") - expected)) < TOLERANCE


def test_server_state_holds_no_secret_key(server: ServerProcess) -> None:
    for path in server.federation.root.joinpath("server").rglob("*"):
        if path.is_file():
            assert b"facepp-paillier-secret-key" not in path.read_bytes(), path


def test_nothing_the_server_received_or_stored_holds_plaintext(make_federation, initial_weights: np.ndarray, tmp_path: Path) -> None:
    from facepp.crypto.paillier.encrypted_vector import EncryptedVector
    from facepp.crypto.paillier.public_key import PublicKey
    from training.simulation.audit import find_leaks, read_tree
    from training.fedavg import weighted_contribution

    fed = make_federation(total_rounds=1)
    received = tmp_path / "received.bin"
    server = ServerProcess(fed, record=received).start()
    try:
        wait_all([start_toy_participant(fed, n, server.url, out=tmp_path / f"{n}.npy") for n in PARTICIPANTS])
    finally:
        server.stop()
    contributions = {}
    for name in PARTICIPANTS:
        update = toy_update(initial_weights, name, 1)
        contributions[name] = weighted_contribution(update.weights, update.samples, sample_scale=SAMPLE_SCALE)
        contributions[f"{name} raw"] = update.weights
    key = PublicKey.load(fed.server_config.parent / "public_key.json")
    plan = EncryptedVector.from_bytes(fed.server_state.joinpath("models", "model-00000.bin").read_bytes(), key).plan
    haystack = received.read_bytes() + read_tree([fed.root / "server"])
    assert len(received.read_bytes()) > 3 * 300 * 8  # the uploads really were recorded
    assert find_leaks(haystack, contributions, plan) == []
    # The audit is able to fail: a plaintext contribution planted in the haystack is found.
    planted = haystack + contributions["alice"].astype("<f4").tobytes()
    assert find_leaks(planted, contributions, plan) == ["alice: float32"]


@pytest.mark.parametrize("content", [None, "not json", '{"public_key": "k.json"}'])
def test_server_refuses_a_missing_or_broken_federation_file(tmp_path: Path, content: str | None,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from training.server.cli import main

    config = tmp_path / "federation.json"
    if content is not None:
        config.write_text(content)
    assert main(["--federation", str(config), "--state", str(tmp_path / "state")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("facepp-server: error: ") and "\n" not in error and "Traceback" not in error
