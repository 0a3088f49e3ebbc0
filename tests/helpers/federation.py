"""Federation test helpers: the parameter server as a process on loopback, toy participants as processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests

from facepp.crypto.paillier.packing import PackingPlan
from facepp.crypto.paillier.secret_cipher import SecretKey, VectorCipher
from tests.helpers.net import free_port
from training.ceremony import Federation
from training.fedavg import packing_plan, weighted_contribution
from training.protocol import UPLOAD_MAC_HEADER, hash_token, upload_mac

ROOT = Path(__file__).resolve().parents[2]
TOY = Path(__file__).with_name("toy_participant.py")
PARTICIPANTS = ("alice", "bob", "carol")
MODEL_SIZE = 300


class ServerProcess:
    """``facepp-server`` in its own process, on a free loopback port."""

    def __init__(self, federation: Federation, port: int | None = None, record: Path | None = None) -> None:
        self.federation = federation
        self.record = record
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = federation.root / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "ServerProcess":
        cmd = [sys.executable, "-c", "from training.server.cli import main; main()",
               "--federation", str(self.federation.server_config), "--state", str(self.federation.server_state),
               "--port", str(self.port)] + (["--record-requests", str(self.record)] if self.record else [])
        self.process = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                requests.get(self.url + "/", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in 30 s")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
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


def start_toy_participant(federation: Federation, name: str, url: str, *, out: Path, delay_s: float = 0.0) -> subprocess.Popen[bytes]:
    """A participant process whose local training is a deterministic toy step (see toy_participant.py)."""
    cmd = [sys.executable, str(TOY), "--dir", str(federation.participant_dir(name)), "--server", url,
           "--name", name, "--out", str(out), "--delay", str(delay_s)]
    log = (federation.root / f"{name}.log").open("ab")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
