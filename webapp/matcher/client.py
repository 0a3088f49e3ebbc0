"""HTTP client of the matcher API v1 (docs/matcher_api.md): the terminal's and the tests'.

Trusted side. Sends only public-key material, ciphertexts and opaque subject ids;
imports neither Flask nor SQLAlchemy nor any key: ciphertext messages come from
``CkksKeyHolder`` and go back to it. Thread-safe (one ``requests.Session`` per
thread), so a multi-threaded terminal can share one client.

Errors: 404 is :class:`~facepp.errors.NotFoundError` and 409
:class:`~facepp.errors.ConflictError`, the two answers a caller acts on.
Everything else (unreachable, a rejected API key, a key mismatch, a refused
ciphertext, a 5xx, a malformed answer) is a :class:`MatcherError`: the back end
failed, so a caller that is itself an HTTP service answers 502, never the
matcher's 401 or 400 (the operator's request was fine).

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
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from facepp.errors import ConflictError, FaceppError, NotFoundError, ProtocolError
from facepp.serving import tls_reason
from webapp.matcher.protocol import API_PREFIX, OCTET_STREAM, check_subject_id

logger = logging.getLogger(__name__)


class MatcherError(FaceppError):
    """The matcher is unreachable, refused the request or answered something unexpected.

    Attributes:
        matcher_code: The matcher's JSON error ``code`` (``unauthorized``, ``key_mismatch``,
            ...), ``unreachable`` or ``bad_answer``.
        matcher_status: The matcher's HTTP status (0 when it did not answer).
    """

    code = "matcher_unavailable"
    http_status = 502

    def __init__(self, message: str, *, matcher_code: str = "bad_answer", matcher_status: int = 0) -> None:
        super().__init__(message)
        self.matcher_code = matcher_code
        self.matcher_status = matcher_status


class MatcherClient:
    """Typed calls to one matcher.

    Args:
        base_url: e.g. ``https://matcher.example:8600`` (no trailing ``/api/v1``).
        api_key: the bearer key from ``facepp-matcher create-api-key`` (None: send none).
        timeout: seconds per request (a whole-block upload is 33.6 MB at dim 128).
        verify: PEM CA file the matcher's certificate must chain to (only that CA), or True: the system's CAs.
        cert: (certificate, key) PEM files presented to a matcher that requires mutual TLS.
    """

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 120.0, verify: bool | str = True,
                 cert: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        # Per request, not on the session: requests lets REQUESTS_CA_BUNDLE override a session's CA.
        self._tls: dict[str, Any] = {"verify": verify, "cert": cert}
        self._local = threading.local()
        self._table_lock = threading.Lock()
        self._table: tuple[str, dict[int, list[tuple[str, int]]]] = ("", {})

    # -- plumbing ------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            if self._api_key:
                session.headers["Authorization"] = f"Bearer {self._api_key}"
            self._local.session = session
        return session

    def request(self, method: str, path: str, *, data: bytes | None = None,
                params: dict[str, Any] | None = None) -> requests.Response:
        """Send one request; raise the mapped error on a 4xx/5xx answer or no answer."""
        headers = {"Content-Type": OCTET_STREAM} if data is not None else {}
        started = time.perf_counter()
        try:
            response = self._session().request(method, self.base_url + API_PREFIX + path, data=data, params=params,
                                               headers=headers, timeout=self.timeout, **self._tls)
        except requests.exceptions.SSLError as exc:
            raise MatcherError(f"TLS with the matcher at {self.base_url} failed ({tls_reason(exc)})",
                               matcher_code="tls_error") from None
        except requests.RequestException as exc:
            raise MatcherError(f"matcher unreachable at {self.base_url} ({type(exc).__name__})",
                               matcher_code="unreachable") from None
        logger.debug("matcher %s %s -> %d (%d B sent, %d B back, %.3f s)", method, path, response.status_code,
                     len(data or b""), len(response.content), time.perf_counter() - started)
        if response.status_code >= 400:
            raise _error_of(response, f"{method} {path}")
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            body = self.request(method, path, **kwargs).json()
        except ValueError:
            raise MatcherError(f"matcher answered {method} {path} with malformed JSON") from None
        if not isinstance(body, dict):
            raise MatcherError(f"matcher answered {method} {path} with unexpected JSON")
        return body

    @staticmethod
    def _subject(subject_id: str) -> str:
        return "/subjects/" + quote(check_subject_id(subject_id), safe="")

    # -- API -----------------------------------------------------------------------------------

    def health(self) -> bool:
        """``True`` when the matcher answers ``{"status": "ok"}``; ``False`` when it cannot be reached."""
        try:
            return bool(self._json("GET", "/health").get("status") == "ok")
        except MatcherError:
            return False

    def register_bundle(self, bundle: bytes, *, dim: int, replace: bool = False) -> dict[str, Any]:
        """PUT the public bundle (idempotent); returns ``{"fingerprint", "dim"}``.

        Args:
            replace: replace another registered bundle (needs an ``admin`` key and an empty gallery).

        Raises:
            ConflictError: another bundle is registered (pinned), or ``replace`` and the gallery is not empty.
        """
        params: dict[str, Any] = {"dim": dim, **({"replace": "true"} if replace else {})}
        return self._json("PUT", "/bundle", data=bundle, params=params)

    def bundle(self) -> dict[str, Any] | None:
        """The registered bundle's ``{"fingerprint", "dim"}``, or ``None``."""
        try:
            return self._json("GET", "/bundle")
        except NotFoundError:
            return None

    def subjects(self) -> list[str]:
        """Enrolled (opaque) subject ids, sorted."""
        subjects = self._json("GET", "/subjects").get("subjects")
        if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
            raise MatcherError("matcher answered with a malformed subject list")
        return subjects

    def enrol(self, subject_id: str, template: bytes) -> None:
        """Enrol a TEMPLATE message (``ConflictError`` if the id exists)."""
        self.request("POST", self._subject(subject_id), data=template)

    def replace(self, subject_id: str, template: bytes) -> None:
        """Replace a subject's template (``NotFoundError`` if unknown)."""
        self.request("PUT", self._subject(subject_id), data=template)

    def delete(self, subject_id: str) -> int:
        """Delete a subject (``NotFoundError`` if unknown); returns the block that now needs a refresh."""
        stale = self._json("DELETE", self._subject(subject_id)).get("stale_block")
        if not isinstance(stale, int) or isinstance(stale, bool):
            raise MatcherError("matcher answered a deletion without its stale block")
        return stale

    def verify(self, subject_id: str, probe: bytes) -> bytes:
        """1:1: SCORES message masked to ``subject_id`` (probe from ``encrypt_probe(verification=True)``)."""
        return self.request("POST", self._subject(subject_id) + "/score", data=probe).content

    def identify(self, probe: bytes) -> bytes:
        """1:N: SCORES message for the whole gallery (probe from ``encrypt_probe(verification=False)``).

        It names blocks, not subjects: decrypt it with ``locations=client.table_for``.
        """
        return self.request("POST", "/identify", data=probe).content

    def locations(self) -> tuple[str, list[tuple[str, int, int]]]:
        """The matcher's location table: its version and ``(subject_id, block, slot)`` per live subject."""
        body = self._json("GET", "/locations")
        version, subjects = body.get("version"), body.get("subjects")
        if not isinstance(version, str) or not isinstance(subjects, list) or not all(
                isinstance(s, list) and len(s) == 3 and isinstance(s[0], str)
                and all(type(v) is int and v >= 0 for v in s[1:]) for s in subjects):
            raise MatcherError("matcher answered with a malformed location table")
        return version, [(s[0], s[1], s[2]) for s in subjects]

    def table_for(self, version: str) -> dict[int, list[tuple[str, int]]]:
        """``{block: [(subject_id, slot), ...]}`` of location-table ``version``, fetched only when it changed.

        Raises:
            StaleLocationsError: the gallery changed since the reply naming ``version``: identify again.
        """
        with self._table_lock:
            if self._table[0] != version:
                current, subjects = self.locations()
                self._table = (current, location_table(subjects))
            if self._table[0] != version:
                raise StaleLocationsError("the gallery changed during the identification: ask again")
            return self._table[1]

    def stale_blocks(self) -> list[int]:
        """Blocks holding deleted/replaced slots that await a refresh."""
        blocks = self._json("GET", "/blocks/stale").get("blocks")
        if not isinstance(blocks, list) or not all(isinstance(b, int) and not isinstance(b, bool) for b in blocks):
            raise MatcherError("matcher answered with a malformed stale-block list")
        return blocks

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


class StaleLocationsError(MatcherError):
    """A 1:N reply names a location-table version the matcher no longer has (the gallery changed)."""

    code = "stale_locations"


def location_table(subjects: list[tuple[str, int, int]]) -> dict[int, list[tuple[str, int]]]:
    """``{block: [(subject_id, slot), ...]}`` from ``(subject_id, block, slot)`` rows."""
    table: dict[int, list[tuple[str, int]]] = {}
    for sid, block, slot in subjects:
        table.setdefault(block, []).append((sid, slot))
    return table


def live_slots(block: bytes, *, fingerprint: bytes | None = None, slots: int | None = None) -> list[int]:
    """Occupied (live) slots of a BLOCK message, read from its bitmap without loading ciphertexts.

    Args:
        fingerprint: Refuse a block under another key.
        slots: Refuse a bitmap that is not ``slots`` bits long (the key's slot count).

    Raises:
        ProtocolError, KeyMismatchError: not a BLOCK message (of ``fingerprint``, of ``slots``).
    """
    import numpy as np

    from facepp.crypto.ckks import wire
    from facepp.crypto.ckks.packing import unpack_bitmap

    env = wire.unpack(block, kind=wire.Kind.BLOCK, fingerprint=fingerprint)
    if not env.blobs:
        raise ProtocolError("block message carries no occupancy bitmap")
    if slots is not None and len(env.blobs[0]) != slots // 8:
        raise ProtocolError("block bitmap has the wrong length")
    bits = unpack_bitmap(env.blobs[0], slots=8 * len(env.blobs[0]))
    return [int(i) for i in np.flatnonzero(bits)]


def _error_of(response: requests.Response, what: str) -> FaceppError:
    try:
        body = response.json()
        message, code = str(body["error"]), str(body["code"])
    except (ValueError, KeyError, TypeError):
        message, code = f"HTTP {response.status_code} without a JSON error body", "bad_answer"
    if response.status_code == 404:
        return NotFoundError(message)
    if response.status_code == 409:
        return ConflictError(message)
    if response.status_code == 401:
        message = "the matcher rejected the API key (check the configured matcher API key)"
    if response.status_code == 403:
        message = f"the matcher API key lacks the scope for this call ({message})"
    return MatcherError(f"matcher refused {what}: {response.status_code} {code}: {message}",
                        matcher_code=code, matcher_status=response.status_code)
