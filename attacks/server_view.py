"""What the facepp parameter server holds after a real encrypted round, and the best it can make of it.

:func:`encrypted_round` runs the key ceremony, ``facepp-server`` in its own process on
loopback (recording every request body) and the victim as a real
:class:`training.participant.client.Participant` for one round; then it collects every
byte the server received and every byte of every file in its folder.

:func:`updates_without_key` is the attacker's use of those bytes. Without the secret key
the only structure a ciphertext offers is its public layout, so every stored or received
encrypted vector is read as if it were a plaintext: each ciphertext reduced modulo ``n``,
split into slots by the public packing plan and decoded to fixed point, then divided by
the weight slot and reduced by the global model as a plain server would. Paillier is
IND-CPA, so these vectors carry no information about the update; the measured attack on
them is compared with a guess from the prior alone.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import requests

from facepp.crypto.paillier.encrypted_vector import EncryptedVector
from facepp.crypto.paillier.packing import decode, unpack
from facepp.crypto.paillier.public_key import PublicKey
from facepp.crypto.paillier.secret_cipher import SecretKey
from facepp.errors import ConfigError, FaceppError, ProtocolError
from training.ceremony import create_federation
from training.participant.client import LocalTrainer, Participant
from training.participant.spec import TrainingSpec
from training.simulation.audit import find_leaks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerHoldings:
    """Everything the parameter server has after the round.

    Attributes:
        received: Every request body, concatenated.
        files: Every file of its folder (public key, configuration, SQLite, ciphertext blobs) by relative path.
        public_key: Its Paillier public key.
    """

    received: bytes
    files: dict[str, bytes]
    public_key: PublicKey

    @property
    def everything(self) -> bytes:
        return self.received + b"".join(self.files.values())

    def leaks(self, contributions: dict[str, np.ndarray]) -> list[str]:
        """Plaintext representations of ``contributions`` found anywhere in these bytes (see
        :func:`training.simulation.audit.find_leaks`); empty when nothing leaked."""
        plan = next(vector.plan for vector in self.vectors())
        return find_leaks(self.everything, contributions, plan)

    def vectors(self) -> list[EncryptedVector]:
        """Every encrypted vector the server holds: each file that parses as one (the uploads it
        received are stored as such files; the leak scan covers the raw request bodies too)."""
        found = []
        for data in self.files.values():
            try:
                found.append(EncryptedVector.from_bytes(data, self.public_key))
            except FaceppError:
                continue
        return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def encrypted_round(workdir: Path, *, spec: TrainingSpec, weights: np.ndarray, trainer: LocalTrainer,
                    key_bits: int = 2048, workers: int = 1) -> ServerHoldings:
    """One real round: the victim alone uploads (quorum 1) and the server aggregates.

    Args:
        workdir: A new or empty folder for the federation and the server's recordings.
        spec: The victim's spec (its ``sample_scale`` weights the upload).
        weights: The global model of the round.
        trainer: The victim's local trainer.

    Raises:
        ConfigError: ``workdir`` is not empty.
        FaceppError: the server did not start or refused the upload.
    """
    if workdir.exists() and any(workdir.iterdir()):
        raise ConfigError(f"{workdir} is not empty: give a new or empty folder")
    spec = replace(spec, participants=("victim",))  # a federation of one: the server holds only the victim's upload
    fed = create_federation(workdir / "federation", participants=("victim",), initial_weights=weights, total_rounds=1,
                            quorum=1, round_timeout_s=3600, key_bits=key_bits, spec_json=spec.to_json())
    received = workdir / "server-received.bin"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = (workdir / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-c", "from training.server.cli import main; main()", "--federation", str(fed.server_config),
         "--state", str(fed.server_state), "--port", str(port), "--record-requests", str(received)],
        stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise ProtocolError(f"the parameter server did not start; see {workdir / 'server.log'}")
            try:
                requests.get(url + "/status.json", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        key = SecretKey.load(fed.participant_dir("victim") / "secret_key.json")
        participant = Participant(server_url=url, token=(fed.participant_dir("victim") / "token").read_text().strip(),
                                  secret_key=key, plan=spec.federation_plan(key.public_key.key_bits), workers=workers)
        participant.run(trainer)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log_file.close()
    server_dir = fed.root / "server"
    files = {str(p.relative_to(server_dir)): p.read_bytes() for p in sorted(server_dir.rglob("*")) if p.is_file()}
    return ServerHoldings(received=received.read_bytes(), files=files,
                          public_key=PublicKey.load(server_dir / "public_key.json"))


def read_as_plaintext(vector: EncryptedVector, public_key: PublicKey) -> np.ndarray:
    """An encrypted vector decoded as if its ciphertexts were plaintexts (the public layout only)."""
    plan = vector.plan
    n = int(public_key.n)
    bits = plan.slots_per_plaintext * plan.slot_bits
    plaintexts = [(int(c) % n) & ((1 << bits) - 1) for c in vector.ciphertexts]
    return decode(unpack(plaintexts, plan, count=vector.count), plan, summands=vector.summands)


def updates_without_key(holdings: ServerHoldings, weights: np.ndarray) -> list[np.ndarray]:
    """The attacker's update candidates: each held vector read as a plaintext contribution
    ``[w W_local, w]``, divided by its weight slot when that is positive, minus the global model."""
    candidates = []
    for vector in holdings.vectors():
        values = read_as_plaintext(vector, holdings.public_key)
        if values.size != weights.size + 1:
            continue
        weight = float(values[-1])
        local = values[:-1] / weight if weight > 0 else values[:-1]
        candidates.append((local - weights).astype(np.float32))
    if not candidates:
        raise ProtocolError("the server holds no encrypted vector of the model's size")
    return candidates
