"""The matcher authenticates, authorises and bounds a body before reading it, and writes nothing for strangers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers.matcher import MatcherServer, raw_request
from tests.helpers.net import free_port
from webapp.matcher.auth import Scope, create_api_key
from webapp.matcher.db import make_engine, upgrade
from webapp.matcher.store import MatcherStore

ROOT = Path(__file__).resolve().parents[3]
HUGE = 160 << 20  # what the old body limit let a stranger send before the 401

STRANGERS = {"no header": {}, "unknown key": {"Authorization": "Bearer fpm_" + "A" * 43},
             "malformed": {"Authorization": "Bearer nope"}, "basic": {"Authorization": "Basic dXNlcjpwYXNz"}}
ROUTES = [("GET", "/api/v1/subjects"), ("POST", "/api/v1/subjects/carol"), ("PUT", "/api/v1/subjects/carol"),
          ("DELETE", "/api/v1/subjects/carol"), ("POST", "/api/v1/subjects/carol/score"), ("POST", "/api/v1/identify"),
          ("GET", "/api/v1/blocks/stale"), ("GET", "/api/v1/blocks/0"), ("PUT", "/api/v1/blocks/0"),
          ("GET", "/api/v1/bundle"), ("PUT", "/api/v1/bundle?dim=32")]


def test_unauthenticated_requests_write_no_audit_row(matcher: MatcherServer) -> None:
    for headers in STRANGERS.values():
        for method, path in ROUTES:
            status, answer = raw_request(matcher, method, path, b"\0" * 64, api_key=None, headers=headers)
            assert (status, answer["code"]) == (401, "unauthorized")
    assert matcher.state.store.audit_entries() == []
    assert matcher.store().counts()["audit_log"] == 0


@pytest.fixture(scope="module")
def gunicorn_matcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[Scope, str]]]:
    """The matcher app served by gunicorn's threaded worker (which hands the body to the app unread); one key per scope."""
    db = tmp_path_factory.mktemp("gunicorn") / "matcher.db"
    engine = make_engine(str(db))
    upgrade(engine)
    keys = {scope: create_api_key(MatcherStore(engine), scope.value, {scope}) for scope in Scope}
    engine.dispose()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--threads", "2", "--workers", "1",
         "--bind", f"127.0.0.1:{port}", "webapp.matcher.app:create_app()"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "FACEPP_MATCHER_DB": str(db)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).raise_for_status()
                break
            except requests.RequestException:  # not listening yet, or the worker is still loading the app
                assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield port, keys
    finally:
        server.terminate()
        server.wait(timeout=30)


def status_before_body(port: int, method: str, path: str, headers: dict[str, str]) -> int:
    """Send only the head of a request that announces a 160 MiB body; the status the server answers with.

    The body is never sent, so a server that tried to read it would answer only at the timeout.
    """
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {HUGE}",
            "Content-Type: application/octet-stream", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        status_line = conn.makefile("rb").readline().decode()
    return int(status_line.split()[1])


@pytest.mark.parametrize("stranger", STRANGERS, ids=list(STRANGERS))
@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[0] in ("POST", "PUT")])
def test_a_stranger_is_refused_before_the_body(gunicorn_matcher: tuple[int, dict[Scope, str]], stranger: str,
                                               method: str, path: str) -> None:
    port, _ = gunicorn_matcher
    assert status_before_body(port, method, path, STRANGERS[stranger]) == 401


@pytest.mark.parametrize(("scope", "method", "path", "status"), [
    (Scope.SCORE, "PUT", "/api/v1/blocks/0", 403),  # the wrong scope
    (Scope.ADMIN, "POST", "/api/v1/subjects/carol", 403),
    (Scope.ENROL, "POST", "/api/v1/subjects/carol", 413),  # the right scope, a body over the template's size
    (Scope.ENROL, "PUT", "/api/v1/bundle?dim=32", 413),
    (Scope.SCORE, "POST", "/api/v1/identify", 413),
])
def test_a_key_is_refused_before_the_body(gunicorn_matcher: tuple[int, dict[Scope, str]], scope: Scope, method: str,
                                          path: str, status: int) -> None:
    port, keys = gunicorn_matcher
    assert status_before_body(port, method, path, {"Authorization": f"Bearer {keys[scope]}"}) == status
