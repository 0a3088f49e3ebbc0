"""The matcher API end to end over real HTTP (waitress on loopback, real SQLite, real CKKS)."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from facepp.crypto.ckks.secret_key import CkksKeyHolder
from facepp.errors import ConflictError, NotFoundError
from tests.helpers.matcher import DIM, MatcherServer
from webapp.matcher.client import MatcherError
from webapp.matcher.store import BlockRecord, GalleryChange
from tests.helpers.matcher_flows import (
    TOLERANCE,
    check_gallery,
    enrol_all,
    enrol_score_restart,
    identify_scores,
    refresh,
    subject_ids,
    uncompressed_block,
    verify_score,
)


def test_health_needs_no_key(matcher: MatcherServer) -> None:
    response = requests.get(matcher.base_url + "/api/v1/health", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_bundle_registration(matcher: MatcherServer, key_holder: CkksKeyHolder) -> None:
    client = matcher.client()
    assert client.bundle() is None
    bundle = key_holder.export_public_bundle()
    first = client.request("PUT", "/bundle", data=bundle, params={"dim": DIM})
    assert first.status_code == 201
    assert first.json() == {"fingerprint": key_holder.fingerprint_hex, "dim": DIM}
    again = client.request("PUT", "/bundle", data=bundle, params={"dim": DIM})
    assert again.status_code == 200
    assert client.bundle() == {"fingerprint": key_holder.fingerprint_hex, "dim": DIM}


def test_bundle_is_pinned_and_replaced_only_on_request_with_an_empty_gallery(
    registered: MatcherServer, key_holder: CkksKeyHolder, other_key_holder: CkksKeyHolder, embeddings: np.ndarray
) -> None:
    client = registered.client()  # holds admin
    other = other_key_holder.export_public_bundle()
    with pytest.raises(ConflictError, match="pinned"):
        client.register_bundle(other, dim=DIM)
    with pytest.raises(ConflictError, match="pinned"):
        client.register_bundle(key_holder.export_public_bundle(), dim=2 * DIM)
    assert client.bundle()["fingerprint"] == key_holder.fingerprint_hex
    assert client.register_bundle(other, dim=DIM, replace=True)["fingerprint"] == other_key_holder.fingerprint_hex
    assert client.bundle()["fingerprint"] == other_key_holder.fingerprint_hex
    client.register_bundle(key_holder.export_public_bundle(), dim=DIM, replace=True)
    client.enrol("s1", key_holder.encrypt_template(embeddings[0]))
    with pytest.raises(ConflictError, match="not empty"):
        client.register_bundle(other, dim=DIM, replace=True)
    assert client.bundle()["fingerprint"] == key_holder.fingerprint_hex
    assert client.subjects() == ["s1"]


def test_enrol_duplicate_replace_delete_list(
    registered: MatcherServer, key_holder: CkksKeyHolder, embeddings: np.ndarray
) -> None:
    client = registered.client()
    ids = subject_ids(3)
    response = client.request("POST", f"/subjects/{ids[0]}", data=key_holder.encrypt_template(embeddings[0]))
    assert (response.status_code, response.json()) == (201, {"subject_id": ids[0]})
    enrol_all(client, key_holder, ids[1:], embeddings[1:3])
    assert client.subjects() == sorted(ids)

    with pytest.raises(ConflictError):
        client.enrol(ids[1], key_holder.encrypt_template(embeddings[5]))
    assert abs(verify_score(client, key_holder, ids[1], embeddings[1]) - 1.0) < TOLERANCE, "duplicate changed nothing"

    response = client.request("PUT", f"/subjects/{ids[1]}", data=key_holder.encrypt_template(embeddings[5]))
    assert (response.status_code, response.json()) == (200, {"subject_id": ids[1]})
    assert abs(verify_score(client, key_holder, ids[1], embeddings[5]) - 1.0) < TOLERANCE
    assert client.stale_blocks() == [0]

    assert client.delete(ids[2]) == 0
    assert client.subjects() == sorted(ids[:2])
    for call in (lambda: client.delete(ids[2]), lambda: client.verify(ids[2], key_holder.encrypt_probe(embeddings[2])),
                 lambda: client.replace("never-enrolled", key_holder.encrypt_template(embeddings[2]))):
        with pytest.raises(NotFoundError):
            call()
    counts = registered.store().counts()
    assert (counts["subjects"], counts["gallery_blocks"]) == (2, 1)


def test_scores_match_plaintext_cosine(
    registered: MatcherServer, key_holder: CkksKeyHolder, embeddings: np.ndarray
) -> None:
    client = registered.client()
    ids = subject_ids(6)
    enrol_all(client, key_holder, ids, embeddings[:6])
    gallery = dict(zip(ids, embeddings[:6]))
    for i, j in [(0, 0), (0, 3), (4, 1)]:
        expected = float(embeddings[i] @ embeddings[j])
        assert abs(verify_score(client, key_holder, ids[i], embeddings[j]) - expected) < TOLERANCE
    rng = np.random.default_rng(7)
    for k in range(6):
        probe = embeddings[k] + 0.3 * rng.normal(size=DIM) / np.sqrt(DIM)
        probe /= np.linalg.norm(probe)
        scores = identify_scores(client, key_holder, probe)
        plain = {sid: float(t @ probe) for sid, t in gallery.items()}
        assert max(abs(scores[s] - plain[s]) for s in plain) < TOLERANCE
        assert sorted(scores, key=scores.get, reverse=True) == sorted(plain, key=plain.get, reverse=True)
        assert max(scores, key=scores.get) == ids[k]


def test_identify_on_empty_gallery(registered: MatcherServer, key_holder: CkksKeyHolder,
                                   embeddings: np.ndarray) -> None:
    assert identify_scores(registered.client(), key_holder, embeddings[0]) == {}


def test_restart_keeps_gallery(matcher: MatcherServer, key_holder: CkksKeyHolder, embeddings: np.ndarray) -> None:
    enrol_score_restart(matcher, key_holder, embeddings)


def test_blocks_are_stored_compressed_and_uncompressed_rows_still_load(
    registered: MatcherServer, key_holder: CkksKeyHolder, embeddings: np.ndarray
) -> None:
    client = registered.client()
    ids = subject_ids(3)
    enrol_all(client, key_holder, ids, embeddings[:3])
    store = registered.store()
    stored = store.block_data(0)
    raw = uncompressed_block(key_holder, stored, DIM)
    assert len(stored) < 0.93 * len(raw)  # SEAL's zstd: about 10% smaller
    registered.stop()
    (index, live, dirty), = store.block_bitmaps()
    store.apply(GalleryChange(blocks=[BlockRecord(index, live, dirty, raw)]))  # a row written before compression
    registered.start()
    check_gallery(registered.client(), key_holder, dict(zip(ids, embeddings[:3])), embeddings[1])


def test_stale_block_refresh_zeroes_deleted_templates(
    registered: MatcherServer, key_holder: CkksKeyHolder, embeddings: np.ndarray
) -> None:
    client = registered.client()
    ids = subject_ids(3)
    enrol_all(client, key_holder, ids, embeddings[:3])
    client.replace(ids[1], key_holder.encrypt_template(embeddings[4]))
    client.delete(ids[2])
    gallery = {ids[0]: embeddings[0], ids[1]: embeddings[4]}
    assert client.stale_blocks() == [0]
    probe = key_holder.encrypt_probe(embeddings[2], verification=False)
    before = key_holder.decrypt_score_slots(client.identify(probe), dim=DIM)[0]
    assert abs(before[2] - 1.0) < TOLERANCE, "the deleted template lingers until the refresh"

    assert refresh(client, key_holder) == [0]
    assert client.stale_blocks() == []
    after = key_holder.decrypt_score_slots(client.identify(probe), dim=DIM)[0]
    assert np.abs(np.delete(after, [0, 3])).max() < 1e-4, "only the live slots 0 and 3 hold data"
    check_gallery(client, key_holder, gallery, embeddings[4])

    registered.restart()
    client = registered.client()
    assert client.stale_blocks() == []
    check_gallery(client, key_holder, gallery, embeddings[0])


def test_audit_log_records_calls_without_data(
    registered: MatcherServer, key_holder: CkksKeyHolder, other_key_holder: CkksKeyHolder, embeddings: np.ndarray
) -> None:
    client = registered.client()
    client.enrol("alice-hmac", key_holder.encrypt_template(embeddings[0]))
    with pytest.raises(MatcherError, match="key_mismatch"):
        client.enrol("bob-hmac", other_key_holder.encrypt_template(embeddings[1]))
    client.verify("alice-hmac", key_holder.encrypt_probe(embeddings[0]))
    entries = registered.store().audit_entries()
    tail = [(e["client"], e["operation"], e["subject_id"], e["outcome"]) for e in entries[-3:]]
    assert tail == [
        ("terminal-test", "enrol", "alice-hmac", "ok"),
        ("terminal-test", "enrol", "bob-hmac", "key_mismatch"),
        ("terminal-test", "verify", "alice-hmac", "ok"),
    ]
    assert all(set(e) == {"at", "client", "operation", "subject_id", "outcome"} for e in entries)


def test_concurrent_requests_are_serialised(
    registered: MatcherServer, key_holder: CkksKeyHolder, embeddings: np.ndarray
) -> None:
    """waitress serves on several threads: parallel enrolments and queries stay consistent."""
    from concurrent.futures import ThreadPoolExecutor

    ids = subject_ids(4)
    bodies = [key_holder.encrypt_template(v) for v in embeddings[:4]]
    probe = key_holder.encrypt_probe(embeddings[0], verification=False)

    def enrol(i: int) -> None:
        registered.client().enrol(ids[i], bodies[i])
        registered.client().identify(probe)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(enrol, range(4)))
    client = registered.client()
    assert client.subjects() == sorted(ids)
    slots = sorted(slot for _, _, slot in registered.store().subjects())
    assert slots == [0, 1, 2, 3]
    check_gallery(client, key_holder, dict(zip(ids, embeddings[:4])), embeddings[2])
    registered.restart()
    check_gallery(registered.client(), key_holder, dict(zip(ids, embeddings[:4])), embeddings[3])


def test_failed_write_leaves_memory_equal_to_storage(
    registered: MatcherServer, key_holder: CkksKeyHolder, embeddings: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database failure mid-enrolment answers 500 and reloads the gallery: nothing half-stored."""
    from webapp.matcher.store import MatcherStore

    client = registered.client()
    client.enrol("kept", key_holder.encrypt_template(embeddings[0]))

    def broken(self: MatcherStore, change: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(MatcherStore, "apply", broken)
    with pytest.raises(MatcherError) as failure:
        client.enrol("lost", key_holder.encrypt_template(embeddings[1]))
    assert (failure.value.matcher_status, failure.value.matcher_code) == (500, "internal_error")
    monkeypatch.undo()
    assert client.subjects() == ["kept"]
    client.enrol("lost", key_holder.encrypt_template(embeddings[1]))
    check_gallery(client, key_holder, {"kept": embeddings[0], "lost": embeddings[1]}, embeddings[1])


def test_client_maps_refusals_to_a_bad_gateway(registered: MatcherServer, key_holder: CkksKeyHolder) -> None:
    from webapp.matcher.client import MatcherClient

    with pytest.raises(MatcherError) as wrong_key:
        registered.client(api_key="not-a-key").subjects()
    assert (wrong_key.value.matcher_status, wrong_key.value.matcher_code, wrong_key.value.http_status) == (401, "unauthorized", 502)
    with pytest.raises(MatcherError) as refused:
        registered.client().enrol("s-bad", b"not a template")
    assert refused.value.matcher_status == 400 and refused.value.http_status == 502
    unreachable = MatcherClient("http://127.0.0.1:9", "k", timeout=5)
    assert unreachable.health() is False
    with pytest.raises(MatcherError) as down:
        unreachable.subjects()
    assert down.value.matcher_code == "unreachable"
