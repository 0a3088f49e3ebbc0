"""API key scopes: each key reaches only its routes, every refusal is audited, the bundle is pinned."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from sqlalchemy import text

from facepp.crypto.ckks.secret_key import CkksKeyHolder
from tests.helpers.matcher import DIM, MatcherServer, alice_and_bob, raw_request, snapshot
from webapp.matcher.auth import Scope, authenticate, create_api_key, hash_api_key
from webapp.matcher.db import make_engine, upgrade
from webapp.matcher.models import utcnow
from webapp.matcher.store import MatcherStore

Body = Callable[[CkksKeyHolder, np.ndarray], bytes]
NONE: Body = lambda h, x: b""  # noqa: E731
TEMPLATE: Body = lambda h, x: h.encrypt_template(x[5])  # noqa: E731
PROBE: Body = lambda h, x: h.encrypt_probe(x[0])  # noqa: E731
PROBE_1N: Body = lambda h, x: h.encrypt_probe(x[0], verification=False)  # noqa: E731
BLOCK: Body = lambda h, x: h.encrypt_block(x[:1])  # noqa: E731
BUNDLE: Body = lambda h, x: h.export_public_bundle()  # noqa: E731

#: Per scope, the requests a key holding only that scope may not make.
FORBIDDEN: dict[Scope, list[tuple[str, str, Body]]] = {
    Scope.SCORE: [("GET", "/api/v1/subjects", NONE), ("POST", "/api/v1/subjects/carol", TEMPLATE),
                  ("PUT", "/api/v1/subjects/alice", TEMPLATE), ("DELETE", "/api/v1/subjects/alice", NONE),
                  ("GET", "/api/v1/blocks/stale", NONE), ("GET", "/api/v1/blocks/0", NONE),
                  ("PUT", "/api/v1/blocks/0", BLOCK), ("PUT", "/api/v1/bundle?dim=32", BUNDLE)],
    Scope.ENROL: [("GET", "/api/v1/subjects", NONE), ("POST", "/api/v1/subjects/alice/score", PROBE),
                  ("POST", "/api/v1/identify", PROBE_1N), ("GET", "/api/v1/blocks/0", NONE),  # not stale
                  ("PUT", "/api/v1/bundle?dim=32&replace=true", BUNDLE)],
    Scope.ADMIN: [("POST", "/api/v1/subjects/carol", TEMPLATE), ("PUT", "/api/v1/subjects/alice", TEMPLATE),
                  ("DELETE", "/api/v1/subjects/alice", NONE), ("POST", "/api/v1/subjects/alice/score", PROBE),
                  ("POST", "/api/v1/identify", PROBE_1N), ("PUT", "/api/v1/blocks/0", BLOCK)],
}
CASES = [(scope, *request) for scope, requests in FORBIDDEN.items() for request in requests]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, key_holder: CkksKeyHolder,
           embeddings: np.ndarray) -> Iterator[MatcherServer]:
    """A matcher holding ``alice`` and ``bob``, with one key per scope (named after it)."""
    running = alice_and_bob(f"sqlite:///{tmp_path_factory.mktemp('scopes') / 'matcher.db'}", key_holder, embeddings)
    running.scoped = {scope: create_api_key(running.store(), scope.value, {scope}) for scope in Scope}  # type: ignore[attr-defined]
    yield running
    running.stop()


@pytest.mark.parametrize(("scope", "method", "path", "body"), CASES,
                         ids=[f"{s.value}: {m} {p}" for s, m, p, _ in CASES])
def test_each_scope_is_refused_outside_its_routes_and_audited(
        server: MatcherServer, key_holder: CkksKeyHolder, embeddings: np.ndarray,
        scope: Scope, method: str, path: str, body: Body) -> None:
    before = snapshot(server)
    audited = len(server.state.store.audit_entries())
    status, answer = raw_request(server, method, path, body(key_holder, embeddings), api_key=server.scoped[scope])
    assert (status, answer["code"]) == (403, "forbidden"), answer
    assert scope.value in answer["error"]
    assert snapshot(server) == before
    entries = server.state.store.audit_entries()
    assert len(entries) == audited + 1
    assert (entries[-1]["client"], entries[-1]["outcome"]) == (scope.value, "forbidden")


def test_each_scope_does_its_job(server: MatcherServer, key_holder: CkksKeyHolder, embeddings: np.ndarray) -> None:
    score, enrol, admin = (server.client(server.scoped[s]) for s in (Scope.SCORE, Scope.ENROL, Scope.ADMIN))
    scores = key_holder.decrypt_scores(score.verify("alice", key_holder.encrypt_probe(embeddings[0])), dim=DIM)
    assert scores["alice"] == pytest.approx(1.0, abs=1e-3)
    assert set(key_holder.decrypt_scores(score.identify(PROBE_1N(key_holder, embeddings)), dim=DIM,
                                         locations=score.table_for)) == {"alice", "bob"}
    assert score.bundle()["fingerprint"] == key_holder.fingerprint_hex
    # enrol: add, delete, then refresh the block the deletion left stale (export and install a stale block only)
    enrol.enrol("carol", key_holder.encrypt_template(embeddings[2]))
    enrol.register_bundle(key_holder.export_public_bundle(), dim=DIM)  # the same bundle again: allowed, no change
    stale = enrol.delete("carol")
    assert enrol.stale_blocks() == [stale]
    keep = [slot for _, block, slot in server.store().subjects() if block == stale]
    assert enrol.refresh_stale_blocks(lambda b: key_holder.refresh_block(b, dim=DIM, keep_slots=keep)) == [stale]
    # admin: list, export any block
    assert admin.subjects() == ["alice", "bob"]
    assert len(admin.get_block(0)) > 0


def test_replacing_the_bundle_needs_admin_and_the_flag(matcher: MatcherServer, key_holder: CkksKeyHolder,
                                                       other_key_holder: CkksKeyHolder) -> None:
    enrol_key = create_api_key(matcher.store(), "terminal")
    admin_key = create_api_key(matcher.store(), "ops", {Scope.ADMIN})
    mine, other = key_holder.export_public_bundle(), other_key_holder.export_public_bundle()
    assert raw_request(matcher, "PUT", "/api/v1/bundle?dim=32", mine, api_key=enrol_key)[0] == 201  # first: pinned
    for key, query, status, code in [(enrol_key, "", 409, "conflict"), (enrol_key, "&replace=true", 403, "forbidden"),
                                     (admin_key, "", 409, "conflict")]:
        got, answer = raw_request(matcher, "PUT", f"/api/v1/bundle?dim=32{query}", other, api_key=key)
        assert (got, answer["code"]) == (status, code), answer
    assert matcher.client().bundle()["fingerprint"] == key_holder.fingerprint_hex
    assert raw_request(matcher, "PUT", "/api/v1/bundle?dim=32&replace=true", other, api_key=admin_key)[0] == 201
    assert matcher.client().bundle()["fingerprint"] == other_key_holder.fingerprint_hex
    outcomes = [(e["client"], e["outcome"]) for e in matcher.state.store.audit_entries()
                if e["operation"] == "register_bundle"]
    assert outcomes == [("terminal", "ok"), ("terminal", "conflict"), ("terminal", "forbidden"), ("ops", "conflict"),
                        ("ops", "ok")]


def test_keys_made_before_scopes_get_the_terminal_scopes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(str(tmp_path / "old.db"))
    upgrade(engine, "0001_initial")
    key = "fpm_" + "k" * 43
    with engine.begin() as conn:  # a key as the 0001 schema stored it: no scopes column
        conn.execute(text("INSERT INTO api_keys (name, key_hash, created_at) VALUES (:name, :hash, :at)"),
                     {"name": "terminal-1", "hash": hash_api_key(key), "at": utcnow()})
    upgrade(engine)
    client = authenticate(MatcherStore(engine), f"Bearer {key}")
    assert (client.name, client.scopes) == ("terminal-1", frozenset({Scope.SCORE, Scope.ENROL}))
    engine.dispose()
