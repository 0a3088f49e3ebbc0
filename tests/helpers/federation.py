"""Federation test helpers: the parameter server as a process on loopback, toy participants as processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.helpers.net import free_port
from training.ceremony import Federation

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
        self.process = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
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
        """SIGKILL the server's processes (gunicorn's master and worker), as a crash of its machine would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_toy_participant(federation: Federation, name: str, url: str, *, out: Path, delay_s: float = 0.0) -> subprocess.Popen[bytes]:
    """A participant process whose local training is a deterministic toy step (see toy_participant.py)."""
    cmd = [sys.executable, str(TOY), "--dir", str(federation.participant_dir(name)), "--server", url,
           "--name", name, "--out", str(out), "--delay", str(delay_s)]
    log = (federation.root / f"{name}.log").open("ab")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
