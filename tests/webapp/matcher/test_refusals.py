"""Every trust-boundary check refuses with the right status and JSON code, and stores nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np
import pytest

from facepp.crypto.ckks.params import CkksParams
from facepp.crypto.ckks.secret_key import CkksKeyHolder
from facepp.crypto.ckks.sizes import message_bytes
from facepp.crypto.ckks.wire import Kind
from tests.helpers.matcher import DIM, MatcherServer, alice_and_bob, raw_request, snapshot

PARAMS = CkksParams()


def too_large(kind: Kind) -> Body:
    """One byte over the bound of a ``kind`` body at the test's parameters and dim."""
    return lambda k: b"\0" * (message_bytes(kind, PARAMS, DIM) + 1)


@dataclass(frozen=True)
class Keys:
    """The terminal's keys, a stranger's keys and embeddings, for building bodies."""

    mine: CkksKeyHolder
    other: CkksKeyHolder
    x: np.ndarray


Body = Callable[[Keys], bytes]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, key_holder: CkksKeyHolder,
           embeddings: np.ndarray) -> Iterator[MatcherServer]:
    """A matcher with two enrolled subjects (``alice``, ``bob``); refusals must leave it unchanged."""
    running = alice_and_bob(f"sqlite:///{tmp_path_factory.mktemp('refusals') / 'matcher.db'}", key_holder, embeddings)
    yield running
    running.stop()


@pytest.fixture()
def keys(key_holder: CkksKeyHolder, other_key_holder: CkksKeyHolder, embeddings: np.ndarray) -> Keys:
    return Keys(key_holder, other_key_holder, embeddings)


def template(k: Keys) -> bytes:
    return k.mine.encrypt_template(k.x[2])


def probe(k: Keys) -> bytes:
    return k.mine.encrypt_probe(k.x[0])


def _corrupt_magic(data: bytes) -> bytes:
    return b"XXXX" + data[4:]


MALFORMED: dict[str, Body] = {
    "empty": lambda k: b"",
    "random bytes": lambda k: np.random.default_rng(0).bytes(4096),
    "truncated": lambda k: template(k)[:-100],
    "trailing bytes": lambda k: template(k) + b"\0",
    "bad magic": lambda k: _corrupt_magic(template(k)),
    "json": lambda k: b'{"template": [0.1, 0.2]}',
}

CASES: list[tuple[str, str, Body, int, str]] = [
    *[("POST", "/api/v1/subjects/carol", body, 400, "protocol_error") for name, body in MALFORMED.items()
      if name != "trailing bytes"],
    # A template is exactly the bound of its route: one byte more is refused unread.
    ("POST", "/api/v1/subjects/carol", MALFORMED["trailing bytes"], 413, "payload_too_large"),
    ("POST", "/api/v1/identify", lambda k: k.mine.encrypt_probe(k.x[0], verification=False) + b"\0", 400,
     "protocol_error"),
    ("POST", "/api/v1/subjects/carol", lambda k: k.other.encrypt_template(k.x[2]), 400, "key_mismatch"),
    ("POST", "/api/v1/subjects/carol", lambda k: k.mine.encrypt_probe(k.x[2], verification=False), 400,
     "key_mismatch"),  # wrong kind
    ("POST", "/api/v1/subjects/carol", lambda k: k.mine.encrypt_template(np.eye(64)[0]), 400, "protocol_error"),
    ("POST", "/api/v1/subjects/alice", template, 409, "conflict"),
    ("PUT", "/api/v1/subjects/carol", template, 404, "not_found"),
    ("PUT", "/api/v1/subjects/alice", lambda k: k.other.encrypt_template(k.x[2]), 400, "key_mismatch"),
    ("PUT", "/api/v1/subjects/alice", MALFORMED["truncated"], 400, "protocol_error"),
    ("DELETE", "/api/v1/subjects/carol", lambda k: b"", 404, "not_found"),
    ("POST", "/api/v1/subjects/carol/score", probe, 404, "not_found"),
    ("POST", "/api/v1/subjects/alice/score", lambda k: k.other.encrypt_probe(k.x[0]), 400, "key_mismatch"),
    ("POST", "/api/v1/subjects/alice/score", lambda k: k.mine.encrypt_probe(k.x[0], verification=False), 400,
     "protocol_error"),  # a level-1 probe cannot be masked
    ("POST", "/api/v1/subjects/alice/score", lambda k: _corrupt_magic(probe(k)), 400, "protocol_error"),
    ("POST", "/api/v1/identify", lambda k: k.other.encrypt_probe(k.x[0]), 400, "key_mismatch"),
    ("POST", "/api/v1/identify", lambda k: probe(k)[:1000], 400, "protocol_error"),
    ("POST", "/api/v1/identify", template, 400, "key_mismatch"),  # a template is not a probe
    ("PUT", "/api/v1/bundle?dim=32", lambda k: k.other.export_public_bundle(), 409, "conflict"),
    ("PUT", "/api/v1/bundle?dim=32", lambda k: k.mine.export_public_bundle()[:-10], 400, "protocol_error"),
    ("PUT", "/api/v1/bundle?dim=32", lambda k: b"not a bundle", 400, "protocol_error"),
    *[("PUT", f"/api/v1/bundle{q}", lambda k: k.mine.export_public_bundle(), 400, "protocol_error")
      for q in ("", "?dim=", "?dim=abc", "?dim=7", "?dim=100", "?dim=-32", "?dim=8192", "?dim=1e2")],
    ("GET", "/api/v1/blocks/1", lambda k: b"", 404, "not_found"),
    ("GET", "/api/v1/blocks/-1", lambda k: b"", 404, "not_found"),
    ("GET", "/api/v1/blocks/zero", lambda k: b"", 404, "not_found"),
    ("PUT", "/api/v1/blocks/3", lambda k: b"", 404, "not_found"),
    ("PUT", "/api/v1/blocks/0", lambda k: k.other.encrypt_block(k.x[:2]), 400, "key_mismatch"),
    ("PUT", "/api/v1/blocks/0", lambda k: k.mine.encrypt_block(k.x[:1]), 400, "protocol_error"),  # occupancy
    ("PUT", "/api/v1/blocks/0", MALFORMED["random bytes"], 400, "protocol_error"),
    ("POST", "/api/v1/subjects/carol", too_large(Kind.TEMPLATE), 413, "payload_too_large"),
    ("PUT", "/api/v1/subjects/alice", too_large(Kind.TEMPLATE), 413, "payload_too_large"),
    ("PUT", "/api/v1/bundle?dim=32", too_large(Kind.PUBLIC_BUNDLE), 413, "payload_too_large"),
    ("POST", "/api/v1/identify", too_large(Kind.PROBE), 413, "payload_too_large"),
    ("POST", "/api/v1/subjects/alice/score", too_large(Kind.PROBE), 413, "payload_too_large"),
    ("PUT", "/api/v1/blocks/0", too_large(Kind.BLOCK), 413, "payload_too_large"),
    *[(m, p, lambda k: b"x", 413, "payload_too_large") for m, p in
      [("GET", "/api/v1/subjects"), ("DELETE", "/api/v1/subjects/alice"), ("GET", "/api/v1/blocks/0"),
       ("GET", "/api/v1/bundle"), ("GET", "/api/v1/blocks/stale")]],
    ("GET", "/api/v1/nothing-here", lambda k: b"", 404, "not_found"),
    ("PATCH", "/api/v1/subjects/alice", template, 405, "method_not_allowed"),
]


def _case_id(case: tuple[str, str, Body, int, str]) -> str:
    method, path, body, status, code = case
    name = next((n for n, b in MALFORMED.items() if b is body), getattr(body, "__name__", "body"))
    return f"{method} {path} {name} -> {status}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_refused_and_nothing_stored(server: MatcherServer, keys: Keys,
                                    case: tuple[str, str, Body, int, str]) -> None:
    method, path, body, status, code = case
    before = snapshot(server)
    got_status, answer = raw_request(server, method, path, body(keys))
    assert (got_status, answer["code"]) == (status, code), answer
    assert isinstance(answer["error"], str) and answer["error"]
    assert snapshot(server) == before


BAD_IDS = [
    "x' OR 1=1--",
    "x'; DROP TABLE subjects;--",
    "../etc/passwd",
    "..%2Fetc%2Fpasswd",
    "a" * 65,
    "a b",
    "caf\u00e9",
    "nul\x00byte",
    "semi;colon",
    "..",
]


@pytest.mark.parametrize("subject_id", BAD_IDS)
@pytest.mark.parametrize("method, suffix", [("POST", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/score")])
def test_bad_subject_ids(server: MatcherServer, keys: Keys, subject_id: str, method: str, suffix: str) -> None:
    before = snapshot(server)
    # "/" and "%" are kept literally so that path-looking ids reach the server as such.
    path = "/api/v1/subjects/" + quote(subject_id, safe="/.%'=;-") + suffix
    body = probe(keys) if suffix else b"" if method == "DELETE" else template(keys)
    status, answer = raw_request(server, method, path, body)
    assert (status, answer["code"]) == (400, "protocol_error"), answer
    assert subject_id not in answer["error"], "a refusal must not echo hostile input"
    assert snapshot(server) == before


AUTH_CASES = {
    "missing": None,
    "unknown key": "fpm_" + "A" * 43,
    "malformed key": "wrong",
    "basic scheme": "Basic dXNlcjpwYXNz",
    "empty bearer": "Bearer ",
}


@pytest.mark.parametrize("authorization", AUTH_CASES.values(), ids=AUTH_CASES.keys())
@pytest.mark.parametrize("method, path", [("GET", "/api/v1/subjects"), ("POST", "/api/v1/subjects/carol"),
                                          ("DELETE", "/api/v1/subjects/alice"), ("GET", "/api/v1/blocks/0"),
                                          ("PUT", "/api/v1/bundle?dim=32")])
def test_missing_or_invalid_api_key(server: MatcherServer, keys: Keys, authorization: str | None, method: str,
                                    path: str) -> None:
    before = snapshot(server)
    headers = {"Authorization": authorization} if authorization else {}
    status, answer = raw_request(server, method, path, template(keys), api_key=None, headers=headers)
    assert (status, answer["code"]) == (401, "unauthorized")
    assert snapshot(server) == before


def test_no_bundle_yet(matcher: MatcherServer, keys: Keys) -> None:
    before = snapshot(matcher)
    for method, path, body, status in [("GET", "/api/v1/bundle", b"", 404),
                                       ("POST", "/api/v1/subjects/carol", template(keys), 409),
                                       ("POST", "/api/v1/identify", probe(keys), 409),
                                       ("POST", "/api/v1/subjects/carol/score", probe(keys), 404),
                                       ("PUT", "/api/v1/blocks/0", b"", 404),
                                       ("PUT", "/api/v1/blocks/0", b"x", 413)]:  # no gallery: no block to install
        assert raw_request(matcher, method, path, body)[0] == status
    assert snapshot(matcher) == before


def test_pinned_fingerprint(tmp_path, keys: Keys) -> None:
    pinned = MatcherServer(f"sqlite:///{tmp_path / 'pinned.db'}",
                           bundle_fingerprint=keys.mine.fingerprint_hex).start()
    try:
        status, answer = raw_request(pinned, "PUT", "/api/v1/bundle?dim=32", keys.other.export_public_bundle())
        assert (status, answer["code"]) == (400, "key_mismatch")
        assert raw_request(pinned, "PUT", "/api/v1/bundle?dim=32", keys.mine.export_public_bundle())[0] == 201
    finally:
        pinned.stop()

