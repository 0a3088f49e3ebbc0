"""Terminal test helpers: servers on loopback threads, a matcher + terminal stack, ORL paths, plaintext templates."""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
from flask import Flask
from PIL import Image

from facepp.data.images import read_image
from facepp.model.embedder import Embedder
from webapp.matcher.client import MatcherClient

API_TOKEN = "test-terminal-token-0123456789"
OPERATOR = ("operator", "correct horse battery")


class ServerThread:
    """A WSGI app served by waitress on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, app: Flask, *, threads: int = 8) -> None:
        import waitress.server

        self.server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=threads,
                                                    max_request_body_size=1 << 30)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self._closing = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.server.run()
        except OSError:
            if not self._closing:  # closing the socket under select() raises EBADF: expected at teardown
                raise

    def close(self) -> None:
        self._closing = True
        self.server.close()
        self.server.task_dispatcher.shutdown(timeout=5)


def orl_file(orl: Path, subject: int, image: int) -> Path:
    """The path of ORL image ``image`` of subject ``s<subject>``."""
    return orl / f"s{subject}" / f"{image}.pgm"


def jpeg(pixels: np.ndarray) -> bytes:
    """``pixels`` encoded as a JPEG file (quality 90)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def csrf_token(html: str) -> str:
    """The CSRF token of a terminal page's form."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(session: requests.Session, url: str) -> None:
    """Log the test operator in on ``session`` (through the login form)."""
    token = csrf_token(session.get(f"{url}/login", timeout=30).text)
    r = session.post(f"{url}/login", data={"csrf_token": token, "username": OPERATOR[0], "password": OPERATOR[1]},
                     timeout=30)
    assert r.status_code == 200 and "Log out" in r.text, r.text[:500]


def template(embedder: Embedder, paths: list[Path]) -> np.ndarray:
    """Plaintext template: mean of the L2-normalised embeddings, re-normalised."""
    x = embedder.embed([read_image(p) for p in paths]).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    m = x.mean(axis=0)
    return m / np.linalg.norm(m)


@dataclass
class Stack:
    """A running matcher + terminal pair."""

    matcher_url: str
    terminal_url: str
    terminal_app: Flask
    matcher_app: Flask
    instance_dir: Path
    token: str = API_TOKEN

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.terminal_url}/api{path}", headers=headers, timeout=300, **kwargs)

    def matcher_admin(self) -> MatcherClient:
        """A client of the matcher with an ``admin`` key (the terminal's key may not list subject ids)."""
        from webapp.matcher.api import EXTENSION
        from webapp.matcher.auth import Scope, create_api_key

        store = self.matcher_app.extensions[EXTENSION].store
        names = {row["name"] for row in store.api_keys()}
        key = create_api_key(store, f"admin-{len(names)}", {Scope.ADMIN})
        return MatcherClient(self.matcher_url, key, timeout=60)


def start_matcher(folder: Path) -> tuple[Flask, ServerThread, str]:
    """A matcher app on a temp SQLite database, with a fresh API key for the terminal (scopes score and enrol)."""
    from webapp.matcher.api import EXTENSION
    from webapp.matcher.app import create_app as create_matcher
    from webapp.matcher.auth import create_api_key

    app = create_matcher({"db": str(folder / "matcher.db")})
    key = create_api_key(app.extensions[EXTENSION].store, "terminal")
    return app, ServerThread(app), key
