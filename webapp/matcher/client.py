"""HTTP client of the matcher API (docs/matcher_api.md), for the terminal and tests.

Trusted side (terminal) or tests. Imports neither Flask nor SQLAlchemy nor any
key: ciphertext messages come from ``CkksKeyHolder`` and go back to it. Errors
come back as the :mod:`facepp.errors` class of the JSON ``code`` (``ProtocolError``,
``KeyMismatchError``, ``AuthenticationError``, ``NotFoundError``,
``ConflictError``), else :class:`MatcherRequestError`.

Example (terminal)::

    client = MatcherClient("http://127.0.0.1:8600", api_key)
    client.register_bundle(holder.export_public_bundle(), dim=128)
    client.enrol(sid, holder.encrypt_template(embedding))
    score = holder.decrypt_scores(client.verify(sid, holder.encrypt_probe(probe)), dim=128)[sid]
    client.refresh_stale_blocks(lambda block: holder.refresh_block(
        block, dim=128, keep_slots=live_slots(block, fingerprint=holder.fingerprint)))
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from facepp.errors import (
    AuthenticationError,
    ConflictError,
    FaceppError,
    KeyMismatchError,
    NotFoundError,
    ProtocolError,
)
from webapp.matcher.protocol import API_PREFIX, OCTET_STREAM, check_subject_id

logger = logging.getLogger(__name__)
_ERRORS: dict[str, type[FaceppError]] = {
    cls.code: cls for cls in (ProtocolError, KeyMismatchError, AuthenticationError, NotFoundError, ConflictError)
}


class MatcherRequestError(FaceppError):
    """A matcher answer with an error code this client has no class for (413, 500, ...)."""

    def __init__(self, message: str, *, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = status


class MatcherClient:
    """Typed calls to one matcher.

    Args:
        base_url: e.g. ``http://127.0.0.1:8600`` (no trailing ``/api/v1``).
        api_key: the bearer key from ``facepp-matcher create-api-key``.
        timeout: seconds per request (a whole-block upload is 33.6 MB at dim 128).
        session: optional ``requests.Session`` (connection reuse).
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 120.0,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/") + API_PREFIX
        self.timeout = timeout
        self.session = session or requests.Session()
        self._headers = {"Authorization": f"Bearer {api_key}"}

    # -- plumbing ------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, data: bytes | None = None,
                params: dict[str, Any] | None = None) -> requests.Response:
        """Send one request; raise the mapped :class:`FaceppError` on a 4xx/5xx answer."""
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = OCTET_STREAM
        response = self.session.request(method, self.base_url + path, data=data, params=params,
                                        headers=headers, timeout=self.timeout)
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    @staticmethod
    def _subject(subject_id: str) -> str:
        return "/subjects/" + quote(check_subject_id(subject_id), safe="")

    # -- API -----------------------------------------------------------------------------------

    def health(self) -> bool:
        """``True`` when the matcher answers ``{"status": "ok"}``."""
        return bool(self.request("GET", "/health").json().get("status") == "ok")

    def register_bundle(self, bundle: bytes, *, dim: int) -> dict[str, Any]:
        """PUT the public bundle; returns ``{"fingerprint", "dim"}``."""
        return dict(self.request("PUT", "/bundle", data=bundle, params={"dim": dim}).json())

    def bundle(self) -> dict[str, Any] | None:
        """The registered bundle's ``{"fingerprint", "dim"}``, or ``None``."""
        try:
            return dict(self.request("GET", "/bundle").json())
        except NotFoundError:
            return None

    def subjects(self) -> list[str]:
        """Enrolled subject ids, sorted."""
        return list(self.request("GET", "/subjects").json()["subjects"])

    def enrol(self, subject_id: str, template: bytes) -> None:
        """Enrol a TEMPLATE message (``ConflictError`` if the id exists)."""
        self.request("POST", self._subject(subject_id), data=template)

    def replace(self, subject_id: str, template: bytes) -> None:
        """Replace a subject's template (``NotFoundError`` if unknown)."""
        self.request("PUT", self._subject(subject_id), data=template)

    def delete(self, subject_id: str) -> int:
        """Delete a subject; returns the block that now needs a refresh."""
        return int(self.request("DELETE", self._subject(subject_id)).json()["stale_block"])

    def verify(self, subject_id: str, probe: bytes) -> bytes:
        """1:1: SCORES message masked to ``subject_id`` (probe from ``encrypt_probe(verification=True)``)."""
        return self.request("POST", self._subject(subject_id) + "/score", data=probe).content

    def identify(self, probe: bytes) -> bytes:
        """1:N: SCORES message for the whole gallery."""
        return self.request("POST", "/identify", data=probe).content

    def stale_blocks(self) -> list[int]:
        """Blocks holding deleted/replaced slots."""
        return [int(i) for i in self.request("GET", "/blocks/stale").json()["blocks"]]

    def get_block(self, index: int) -> bytes:
        """BLOCK message of block ``index`` (occupancy = its live slots)."""
        return self.request("GET", f"/blocks/{int(index)}").content

    def put_block(self, index: int, block: bytes) -> None:
        """Install a refreshed BLOCK message."""
        self.request("PUT", f"/blocks/{int(index)}", data=block)

    def refresh_stale_blocks(self, refresh: Callable[[bytes], bytes]) -> list[int]:
        """Export, re-encrypt (``refresh``, terminal side) and install every stale block.

        Returns:
            The refreshed block indices.
        """
        done = []
        for index in self.stale_blocks():
            self.put_block(index, refresh(self.get_block(index)))
            done.append(index)
        return done


def live_slots(block: bytes, *, fingerprint: bytes | None = None) -> list[int]:
    """Occupied (live) slots of a BLOCK message, read from its bitmap without loading ciphertexts.

    Raises:
        ProtocolError, KeyMismatchError: not a BLOCK message (of ``fingerprint``).
    """
    import numpy as np

    from facepp.crypto import ckks_wire as wire
    from facepp.crypto.ckks_packing import unpack_bitmap

    env = wire.unpack(block, kind=wire.Kind.BLOCK, fingerprint=fingerprint)
    if not env.blobs:
        raise ProtocolError("block message carries no occupancy bitmap")
    bits = unpack_bitmap(env.blobs[0], slots=8 * len(env.blobs[0]))
    return [int(i) for i in np.flatnonzero(bits)]


def _error_of(response: requests.Response) -> FaceppError:
    try:
        body = response.json()
        message, code = str(body["error"]), str(body["code"])
    except (ValueError, KeyError, TypeError):
        message, code = f"HTTP {response.status_code} without a JSON error body", "http_error"
    cls = _ERRORS.get(code)
    if cls is not None:
        return cls(message)
    return MatcherRequestError(message, code=code, status=response.status_code)
