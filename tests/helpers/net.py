"""Loopback networking helpers of the tests."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import requests


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
