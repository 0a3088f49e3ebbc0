"""Loopback networking helpers of the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(url: str, process: "subprocess.Popen[bytes]", log: Path, *, timeout: float = 60.0,
                       verify: bool | str = True, cert: tuple[str, str] | None = None) -> None:
    """Poll ``url`` until it answers (any status, or a failed TLS handshake: it is listening then);
    fail with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            requests.get(url, timeout=2, verify=verify, cert=cert)
            return
        except requests.exceptions.SSLError:
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s: {log.read_text()[-3000:]}")


class ServiceProcess:
    """A console script serving in its own process group (gunicorn's master and worker), started and stopped whole.

    Args:
        argv: The command (``sys.executable -m module ...``), run from the repository root.
        url: What to poll until it answers (see :func:`wait_until_serving`).
        log: File receiving stdout and stderr.
        env: Extra environment variables.
        verify, cert: TLS settings of the poll.
    """

    def __init__(self, argv: list[str], *, url: str, log: Path, env: dict[str, str] | None = None,
                 verify: bool | str = True, cert: tuple[str, str] | None = None, timeout: float = 120.0) -> None:
        self.log = log
        self.process = subprocess.Popen(argv, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                                        start_new_session=True)
        try:
            wait_until_serving(url, self.process, log, timeout=timeout, verify=verify, cert=cert)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM (a graceful gunicorn stop); SIGKILL to the whole group if it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
