"""A malicious participant against honest ones, over real HTTP: poisoning, stalling and replay.

The server sees only ciphertexts, so it cannot see an out-of-range contribution; the
honest participants check every decrypted aggregate against the federation plan and
refuse the round, keeping the last model they accepted.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import requests

from facepp.crypto.paillier.encrypted_vector import EncryptedVector
from facepp.crypto.paillier.secret_cipher import SecretKey, VectorCipher
from facepp.errors import EncodingOverflowError
from tests.helpers.federation import MODEL_SIZE, ServerProcess, token, upload
from tests.helpers.toy_participant import SAMPLE_SCALE, ToyTrainer, toy_plan
from training.fedavg import AggregateRejectedError, FederationPlan, packing_plan
from training.participant.client import Participant
from training.protocol import UPLOAD_MAC_HEADER, hash_token, upload_mac

HONEST = ("alice", "bob")
ATTACKER = "carol"


def initial_model(server: ServerProcess, key: SecretKey) -> np.ndarray:
    vector = EncryptedVector.from_bytes((server.federation.server_state / "models" / "model-00000.bin").read_bytes(),
                                        key.public_key)
    with VectorCipher(key, vector.plan, workers=1) as cipher:
        return toy_plan().average(cipher.decrypt(vector))


Outcomes = dict[str, tuple[Participant, BaseException | None]]


def run_honest(server: ServerProcess, key: SecretKey) -> tuple[Outcomes, list[threading.Thread]]:
    """Start the honest participants in threads; the outcomes fill in as each run ends."""
    results: Outcomes = {}

    def play(participant: Participant, name: str) -> None:
        try:
            participant.run(ToyTrainer(name, 0.0))
            results[name] = (participant, None)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            results[name] = (participant, exc)

    threads = []
    for name in HONEST:
        participant = Participant(server_url=server.url, token=token(server, name), secret_key=key,
                                  plan=toy_plan(), poll_s=0.05, workers=1)
        threads.append(threading.Thread(target=play, args=(participant, name), daemon=True))
        threads[-1].start()
    return results, threads


def finish(honest: tuple[Outcomes, list[threading.Thread]]) -> Outcomes:
    results, threads = honest
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "an honest participant neither finished nor refused"
    return results


def attacker_upload(server: ServerProcess, data: bytes, round_: int = 1) -> None:
    assert upload(server, ATTACKER, round_, data).status_code == 201  # the server cannot tell


def assert_refused_and_kept(server: ServerProcess, key: SecretKey, results: Outcomes) -> None:
    start = initial_model(server, key)
    for name in HONEST:
        participant, error = results[name]
        assert isinstance(error, AggregateRejectedError), f"{name} used a poisoned aggregate: {error!r}"
        assert "aggregate refused" in str(error)
        kept_round, kept = participant.last_model  # type: ignore[misc]
        assert kept_round == 0 and np.array_equal(kept, start)  # the previous model, untouched


def test_a_weight_of_64_is_refused_by_every_honest_participant(server: ServerProcess, paillier_key: SecretKey) -> None:
    honest = run_honest(server, paillier_key)
    # FedAvg weight 64 (honest weights are at most 1) carrying the model -1 everywhere: without
    # the check this pulls the global mean towards -1 whatever the honest participants trained.
    poison = np.concatenate([np.full(MODEL_SIZE, -64.0), [64.0]])
    with VectorCipher(paillier_key, toy_plan().packing, workers=1) as cipher:
        attacker_upload(server, cipher.encrypt(poison).to_bytes())
    assert_refused_and_kept(server, paillier_key, finish(honest))


def test_ciphertexts_equal_to_n_minus_1_are_refused_without_losing_the_model(server: ServerProcess,
                                                                             paillier_key: SecretKey) -> None:
    honest = run_honest(server, paillier_key)
    plan = toy_plan().packing
    n = paillier_key.public_key.n
    stall = EncryptedVector(fingerprint=paillier_key.public_key.fingerprint, plan=plan, count=MODEL_SIZE + 1, summands=1,
                            ciphertexts=tuple([n - 1] * plan.ciphertexts_for(MODEL_SIZE + 1)))  # decrypts to 0: weight -64
    attacker_upload(server, stall.to_bytes())
    assert_refused_and_kept(server, paillier_key, finish(honest))


def test_a_value_beyond_the_bound_times_the_weight_is_refused() -> None:
    plan = toy_plan()
    honest = np.concatenate([np.full(4, 0.5), [1.0]])
    assert np.allclose(plan.average(honest), 0.5)
    # Weight within range but a weighted sum no honest model reaches: 64.5 * weight 1.
    with pytest.raises(AggregateRejectedError, match="weighted sum"):
        plan.average(np.concatenate([[64.5, 0.0, 0.0, 0.0], [1.0]]))
    for weight in (0.0, -1.0, plan.participants * plan.max_weight + 0.01):
        with pytest.raises(AggregateRejectedError, match="total weight"):
            plan.average(np.concatenate([np.zeros(4), [weight]]))


def test_max_weight_and_the_value_bound_are_enforced_when_encoding() -> None:
    plan = FederationPlan(packing_plan(key_bits=2048, participants=3), participants=3, sample_scale=SAMPLE_SCALE,
                          max_weight=0.5)
    assert plan.contribution(np.ones(3), 50)[-1] == 0.5
    with pytest.raises(EncodingOverflowError, match="max_weight"):
        plan.contribution(np.ones(3), 51)
    with pytest.raises(EncodingOverflowError, match="bound 128"):
        plan.contribution(np.array([0.0, -128.5, 1.0]), 10)


def test_a_round_1_upload_replayed_in_round_2_is_refused(server: ServerProcess, paillier_key: SecretKey) -> None:
    honest = run_honest(server, paillier_key)
    plan = toy_plan()
    with VectorCipher(paillier_key, plan.packing, workers=1) as cipher:
        data = cipher.encrypt(plan.contribution(np.zeros(MODEL_SIZE), 10)).to_bytes()
    round_1_mac = upload_mac(hash_token(token(server, ATTACKER)), 1, data)
    attacker_upload(server, data)
    deadline = time.monotonic() + 60
    while not (server.federation.server_state / "models" / "model-00001.bin").exists():  # round 2 is open
        assert time.monotonic() < deadline, "round 1 did not close"
        time.sleep(0.05)
    # The same request again, now that round 2 is open: its MAC binds it to round 1.
    replay = upload(server, ATTACKER, 2, data, **{UPLOAD_MAC_HEADER: round_1_mac})
    assert replay.status_code == 400 and "not bound to round 2" in replay.json()["error"]
    # Re-signed for round 2 by its own participant: the same ciphertexts are still a replay.
    resigned = upload(server, ATTACKER, 2, data)
    assert resigned.status_code == 409 and "replay" in resigned.json()["error"]
    # Nor can anyone else sign it, or leave the MAC out.
    assert upload(server, "alice", 2, data, **{UPLOAD_MAC_HEADER: upload_mac(hash_token(token(server, ATTACKER)), 2, data)}).status_code == 400
    assert requests.post(f"{server.url}/api/v1/rounds/2/update", data=data, timeout=30,
                         headers={"Authorization": f"Bearer {token(server, ATTACKER)}"}).status_code == 400
    assert not (server.federation.server_state / "uploads" / f"round-00002-{ATTACKER}.bin").exists()
    with VectorCipher(paillier_key, plan.packing, workers=1) as cipher:  # a fresh upload is taken
        attacker_upload(server, cipher.encrypt(plan.contribution(np.zeros(MODEL_SIZE), 10)).to_bytes(), round_=2)
    assert all(error is None for _, error in finish(honest).values())
