"""Matcher test helpers: a real waitress server on loopback over a real database, raw requests, snapshots."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import waitress
from flask import Flask

from webapp.matcher.api import EXTENSION, MatcherState
from webapp.matcher.app import create_app
from webapp.matcher.auth import Scope, create_api_key
from webapp.matcher.client import MatcherClient
from webapp.matcher.db import make_engine, upgrade
from webapp.matcher.store import MatcherStore

#: Small embedding dimension: one block is DIM ciphertexts (8.4 MB at 32), so tests stay fast.
DIM = 32
N_SUBJECTS = 8


class BodyRecorder:
    """WSGI middleware that keeps a copy of every request body (privacy scans)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        import io

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        with self._lock:
            self.bodies.append(body)
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


class MatcherServer:
    """A matcher app served by waitress on a loopback port in a background thread.

    Args:
        db: SQLAlchemy URL of the matcher database.
        settings: extra :class:`MatcherConfig` settings.
    """

    def __init__(self, db: str, **settings: Any) -> None:
        self.db = db
        self.settings = settings
        self.recorder: BodyRecorder | None = None
        self.app: Flask | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.api_key = create_api_key(self.store(), "terminal-test", set(Scope))  # the test plays terminal and admin

    def store(self) -> MatcherStore:
        """A separate connection to the database (inspection from the test)."""
        engine = make_engine(self.db)
        upgrade(engine)
        return MatcherStore(engine)

    def start(self) -> MatcherServer:
        self.app = create_app({"db": self.db, **self.settings})
        self.recorder = BodyRecorder(self.app.wsgi_app)
        self.app.wsgi_app = self.recorder  # type: ignore[method-assign]
        self._server = waitress.create_server(self.app, host="127.0.0.1", port=0, threads=4,
                                              max_request_body_size=1 << 30)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, args=(self._server,), name="matcher-waitress", daemon=True)
        self._thread.start()
        return self

    def _run(self, server: Any) -> None:
        try:
            server.run()
        except OSError:
            if not self._stopping:  # closing the sockets under select() at shutdown is expected
                raise

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping = True
        for channel in list(self._server._map.values()):
            channel.close()
        self._server.task_dispatcher.shutdown()
        assert self._thread is not None
        self._thread.join(timeout=10)
        state: MatcherState = self.app.extensions[EXTENSION]
        state.service.close()
        state.store.engine.dispose()
        self._server = None

    def restart(self) -> MatcherServer:
        self.stop()
        return self.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.effective_port}"

    def client(self, api_key: str | None = None) -> MatcherClient:
        return MatcherClient(self.base_url, self.api_key if api_key is None else api_key, timeout=60)

    @property
    def state(self) -> MatcherState:
        return self.app.extensions[EXTENSION]


def alice_and_bob(db: str, key_holder: Any, embeddings: Any) -> MatcherServer:
    """A started matcher on ``db`` with the key holder's bundle and two subjects, ``alice`` and ``bob``."""
    running = MatcherServer(db).start()
    client = running.client()
    client.register_bundle(key_holder.export_public_bundle(), dim=DIM)
    client.enrol("alice", key_holder.encrypt_template(embeddings[0]))
    client.enrol("bob", key_holder.encrypt_template(embeddings[1]))
    return running


def raw_request(server: MatcherServer, method: str, path: str, body: bytes = b"",
                api_key: str | None = "default", headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Send ``path`` exactly as given (no client-side normalisation) and return (status, JSON body)."""
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", server._server.effective_port, timeout=60)
    all_headers = {"Content-Type": "application/octet-stream", **(headers or {})}
    if api_key is not None:
        all_headers["Authorization"] = f"Bearer {server.api_key if api_key == 'default' else api_key}"
    try:
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    assert response.getheader("Content-Type", "").startswith("application/json"), data[:200]
    return response.status, json.loads(data)


def snapshot(server: MatcherServer) -> dict[str, Any]:
    """Everything a refused request must leave unchanged: rows (audit log aside), block bytes, memory."""
    import hashlib

    from sqlalchemy import select

    from webapp.matcher.models import BlockRow, BundleRow, SubjectRow

    store = server.store()
    with store.engine.connect() as conn:
        blocks = {r.block_index: (hashlib.sha256(r.data).hexdigest(), r.live, r.dirty)
                  for r in conn.execute(select(BlockRow))}
        subjects = sorted(tuple(r) for r in conn.execute(select(SubjectRow.subject_id, SubjectRow.block_index,
                                                                 SubjectRow.slot)))
        bundle = conn.execute(select(BundleRow.fingerprint, BundleRow.dim)).all()
    store.engine.dispose()
    service = server.state.service
    return {"blocks": blocks, "subjects": subjects, "bundle": bundle, "listed": service.subjects(),
            "stale": service.stale_blocks(),
            "api_keys": store.counts()["api_keys"]}
