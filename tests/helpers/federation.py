"""Federation test helpers: the parameter server as a process on loopback, toy participants as processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests

from facepp.crypto.paillier.packing import PackingPlan
from facepp.crypto.paillier.secret_cipher import SecretKey, VectorCipher
from tests.helpers.net import free_port, wait_until_serving
from tests.helpers.toy_participant import SAMPLE_SCALE, toy_update
from training.fedavg import fedavg
from training.ceremony import Federation
from training.fedavg import packing_plan, weighted_contribution
from training.protocol import UPLOAD_MAC_HEADER, hash_token, upload_mac

ROOT = Path(__file__).resolve().parents[2]
TOY = Path(__file__).with_name("toy_participant.py")
PARTICIPANTS = ("alice", "bob", "carol")
MODEL_SIZE = 300


class ServerProcess:
    """``facepp-server`` in its own process group, on a free loopback port.

    Args:
        tls: (certificate, key, client CA or None) PEM files: serve HTTPS (mutual TLS with a client CA).
        probe_tls: (CA, client certificate, client key) used to see that the server answers.
    """

    def __init__(self, federation: Federation, port: int | None = None, record: Path | None = None, *,
                 tls: tuple[Path, Path, Path | None] | None = None, probe_tls: tuple[Path, Path, Path] | None = None,
                 ) -> None:
        self.federation = federation
        self.record = record
        self.tls, self.probe_tls = tls, probe_tls
        self.port = port or free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log = federation.root / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "ServerProcess":
        cmd = [sys.executable, "-c", "from training.server.cli import main; main()",
               "--federation", str(self.federation.server_config), "--state", str(self.federation.server_state),
               "--port", str(self.port)] + (["--record-requests", str(self.record)] if self.record else [])
        if self.tls:
            cert, key, client_ca = self.tls
            cmd += ["--tls-cert", str(cert), "--tls-key", str(key)] + (["--tls-client-ca", str(client_ca)] if client_ca else [])
        self.process = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
        ca, client_cert, client_key = map(str, self.probe_tls) if self.probe_tls else (None, None, None)
        try:
            wait_until_serving(self.url + "/", self.process, self.log, timeout=30, verify=ca or True,
                               cert=(client_cert, client_key) if client_cert else None)
        except BaseException:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL the server's processes (gunicorn's master and worker), as a crash of its machine would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def encrypt(key: SecretKey, size: int = MODEL_SIZE + 1, plan: PackingPlan | None = None) -> bytes:
    """A fresh encrypted contribution (zeros, weight 0.5) of ``size`` values."""
    plan = plan or packing_plan(key_bits=2048, participants=len(PARTICIPANTS))
    with VectorCipher(key, plan, workers=1) as cipher:
        return cipher.encrypt(weighted_contribution(np.zeros(size - 1), 5, sample_scale=10)).to_bytes()


def token(server: ServerProcess, name: str) -> str:
    return (server.federation.participant_dir(name) / "token").read_text()


def upload(server: ServerProcess, name: str | None, round_: int, data: bytes, **headers: str) -> requests.Response:
    """POST an upload as participant ``name`` (None: no credentials), bound to ``round_`` unless a MAC header is given."""
    if name:
        headers.setdefault("Authorization", f"Bearer {token(server, name)}")
        headers.setdefault(UPLOAD_MAC_HEADER, upload_mac(hash_token(token(server, name)), round_, data))
    return requests.post(f"{server.url}/api/v1/rounds/{round_}/update", data=data, headers=headers, timeout=30)


def start_toy_participant(federation: Federation, name: str, url: str, *, out: Path, delay_s: float = 0.0,
                          tls: tuple[Path, Path, Path] | None = None) -> subprocess.Popen[bytes]:
    """A participant process whose local training is a deterministic toy step (see toy_participant.py).

    ``tls``: (CA, client certificate, client key) PEM files for a server over mutual TLS.
    """
    cmd = [sys.executable, str(TOY), "--dir", str(federation.participant_dir(name)), "--server", url,
           "--name", name, "--out", str(out), "--delay", str(delay_s),
           "--participants", str(len(list((federation.root / "participants").iterdir())))]
    if tls:
        cmd += ["--ca-file", str(tls[0]), "--client-cert", str(tls[1]), str(tls[2])]
    log = (federation.root / f"{name}.log").open("ab")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})


# Per round the decoded average errs by at most K * 2**-(f+1) / sum(w) = 3 * 1.9e-6 / 0.3 (f = 18,
# toy weights >= 0.1 each); two rounds stay below 4e-5.
TOLERANCE = 1e-4


def expected_fedavg(initial: np.ndarray, rounds: int, names_per_round: list[tuple[str, ...]],
                    plan: PackingPlan | None = None) -> np.ndarray:
    weights = initial
    for round_, names in zip(range(1, rounds + 1), names_per_round):
        updates = [toy_update(weights, name, round_) for name in names]
        weights = fedavg([(u.weights, u.samples) for u in updates], sample_scale=SAMPLE_SCALE, plan=plan)
    return weights


def wait_all(processes: list[subprocess.Popen[bytes]], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for p in processes:
        p.wait(timeout=max(1, deadline - time.monotonic()))
        assert p.returncode == 0, f"participant exited with {p.returncode}"


def uploads_in(state: Path, round_: int) -> int:
    with sqlite3.connect(f"file:{state / 'state.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM uploads WHERE round = ?", (round_,)).fetchone()[0]
