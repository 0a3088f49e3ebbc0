"""HTTP client of the matcher API v1 (``docs/matcher_api.md``), used by the terminal.

Sends only public-key material, ciphertexts and opaque subject ids. Errors are
mapped to :mod:`facepp.errors` classes: 404 -> NotFoundError, 409 -> ConflictError,
413 -> ProtocolError; everything else (connection failure, 5xx, 401, a key
mismatch, a malformed answer) is a :class:`~webapp.terminal.errors.MatcherError`
(502 at the terminal's own boundary: the operator's request was fine, the
back end was not).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import requests

from facepp.errors import ConflictError, NotFoundError, ProtocolError
from webapp.terminal.errors import MatcherError

logger = logging.getLogger(__name__)

API = "/api/v1"
OCTET = "application/octet-stream"


class MatcherClient:
    """A thread-safe client (one ``requests.Session`` per thread).

    Args:
        base_url: e.g. ``http://127.0.0.1:8600``.
        api_key: the terminal's matcher API key (``facepp-matcher create-api-key``).
        timeout: seconds per request.
    """

    def __init__(self, base_url: str, *, api_key: str | None, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            if self._api_key:
                session.headers["Authorization"] = f"Bearer {self._api_key}"
            self._local.session = session
        return session

    def _request(self, method: str, path: str, *, data: bytes | None = None, params: dict[str, Any] | None = None,
                 expect: tuple[int, ...] = (200,)) -> requests.Response:
        url = f"{self.base_url}{API}{path}"
        headers = {"Content-Type": OCTET} if data is not None else {}
        started = time.perf_counter()
        try:
            response = self._session().request(method, url, data=data, params=params, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise MatcherError(f"matcher unreachable at {self.base_url} ({type(exc).__name__})") from None
        logger.debug("matcher %s %s -> %d (%d B sent, %d B back, %.3f s)", method, path, response.status_code,
                     len(data or b""), len(response.content), time.perf_counter() - started)
        if response.status_code in expect:
            return response
        raise self._error(response, f"{method} {path}")

    @staticmethod
    def _error(response: requests.Response, what: str) -> Exception:
        try:
            body = response.json()
            message, code = str(body.get("error", "")), str(body.get("code", ""))
        except ValueError:
            message, code = response.text[:200], ""
        detail = f"matcher refused {what}: {response.status_code} {code} {message}".strip()
        if response.status_code == 404:
            return NotFoundError(detail)
        if response.status_code == 409:
            return ConflictError(detail)
        if response.status_code == 413:
            return ProtocolError(detail)
        if response.status_code == 401:
            return MatcherError(f"matcher rejected the terminal's API key ({what}): check matcher_api_key")
        return MatcherError(detail)

    @staticmethod
    def _json(response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise MatcherError("matcher answered with malformed JSON") from None
        if not isinstance(body, dict):
            raise MatcherError("matcher answered with unexpected JSON")
        return body

    # -- API ------------------------------------------------------------------------------

    def health(self) -> bool:
        """True when ``GET /health`` answers ``{"status": "ok"}``."""
        try:
            return self._json(self._request("GET", "/health")).get("status") == "ok"
        except MatcherError:
            return False

    def put_bundle(self, bundle: bytes, *, dim: int) -> dict[str, Any]:
        """Register the public bundle (idempotent for the same bundle).

        Raises:
            ConflictError: the matcher holds a non-empty gallery under another key.
        """
        return self._json(self._request("PUT", "/bundle", data=bundle, params={"dim": dim}, expect=(200, 201)))

    def get_bundle(self) -> dict[str, Any] | None:
        """``{"fingerprint": hex, "dim": int}`` of the registered bundle, or None."""
        try:
            return self._json(self._request("GET", "/bundle"))
        except NotFoundError:
            return None

    def list_subjects(self) -> list[str]:
        """Opaque ids of every enrolled subject."""
        subjects = self._json(self._request("GET", "/subjects")).get("subjects")
        if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
            raise MatcherError("matcher answered with a malformed subject list")
        return subjects

    def add_subject(self, subject_id: str, template: bytes) -> None:
        """Enrol a TEMPLATE message under an opaque id (ConflictError if taken)."""
        self._request("POST", f"/subjects/{subject_id}", data=template, expect=(200, 201))

    def replace_subject(self, subject_id: str, template: bytes) -> None:
        """Replace a subject's template (NotFoundError if unknown)."""
        self._request("PUT", f"/subjects/{subject_id}", data=template)

    def delete_subject(self, subject_id: str) -> None:
        """Delete a subject (NotFoundError if unknown)."""
        self._request("DELETE", f"/subjects/{subject_id}", expect=(200, 204))

    def score(self, subject_id: str, probe: bytes) -> bytes:
        """Masked 1:1 scores message for ``subject_id`` (probe made with ``verification=True``)."""
        return self._request("POST", f"/subjects/{subject_id}/score", data=probe).content

    def identify(self, probe: bytes) -> bytes:
        """1:N scores message for the whole gallery (probe made with ``verification=False``)."""
        return self._request("POST", "/identify", data=probe).content

    def stale_blocks(self) -> list[int]:
        """Indices of blocks holding deleted/replaced slots that await a refresh."""
        blocks = self._json(self._request("GET", "/blocks/stale")).get("blocks")
        if not isinstance(blocks, list) or not all(isinstance(b, int) and not isinstance(b, bool) for b in blocks):
            raise MatcherError("matcher answered with a malformed stale-block list")
        return blocks

    def get_block(self, index: int) -> bytes:
        """A BLOCK message (occupancy = live slots) for :meth:`CkksKeyHolder.refresh_block`."""
        return self._request("GET", f"/blocks/{int(index)}").content

    def put_block(self, index: int, block: bytes) -> None:
        """Install a refreshed BLOCK message."""
        self._request("PUT", f"/blocks/{int(index)}", data=block, expect=(200, 201, 204))
