"""Matcher scenarios shared by the SQLite and PostgreSQL tests (the test process is the terminal)."""

from __future__ import annotations

import numpy as np

from facepp.crypto.ckks import messages as msg
from facepp.crypto.ckks.secret_key import CkksKeyHolder
from tests.helpers.matcher import DIM, MatcherServer
from webapp.matcher.client import MatcherClient, live_slots

#: docs/ckks.md §6: decrypted scores agree with plaintext cosine within this.
TOLERANCE = 1e-4


def subject_ids(n: int) -> list[str]:
    """Opaque ids shaped like the terminal's (HMAC-like hex)."""
    return [f"subj-{i:02d}-{'ab' * 8}" for i in range(n)]


def enrol_all(client: MatcherClient, holder: CkksKeyHolder, ids: list[str], x: np.ndarray) -> None:
    for sid, vec in zip(ids, x):
        client.enrol(sid, holder.encrypt_template(vec))


def verify_score(client: MatcherClient, holder: CkksKeyHolder, sid: str, probe: np.ndarray) -> float:
    """Decrypted masked 1:1 score of ``probe`` against ``sid``."""
    scores = holder.decrypt_scores(client.verify(sid, holder.encrypt_probe(probe)), dim=DIM)
    assert set(scores) == {sid}
    return scores[sid]


def identify_scores(client: MatcherClient, holder: CkksKeyHolder, probe: np.ndarray) -> dict[str, float]:
    """Decrypted 1:N scores of ``probe``."""
    return holder.decrypt_scores(client.identify(holder.encrypt_probe(probe, verification=False)), dim=DIM,
                                 locations=client.table_for)


def check_gallery(client: MatcherClient, holder: CkksKeyHolder, gallery: dict[str, np.ndarray],
                  probe: np.ndarray) -> None:
    """1:N scores equal the plaintext cosines of ``gallery`` (id -> template), 1:1 too for one subject."""
    scores = identify_scores(client, holder, probe)
    assert set(scores) == set(gallery)
    for sid, template in gallery.items():
        assert abs(scores[sid] - float(template @ probe)) < TOLERANCE
    sid = sorted(gallery)[0]
    assert abs(verify_score(client, holder, sid, probe) - float(gallery[sid] @ probe)) < TOLERANCE


def refresh(client: MatcherClient, holder: CkksKeyHolder) -> list[int]:
    """The terminal's refresh of every stale block."""
    return client.refresh_stale_blocks(
        lambda block: holder.refresh_block(block, dim=DIM, keep_slots=live_slots(block, fingerprint=holder.fingerprint))
    )


def enrol_score_restart(server: MatcherServer, holder: CkksKeyHolder, x: np.ndarray) -> None:
    """Register, enrol, score, delete + refresh, restart on the same database, score again."""
    client = server.client()
    client.register_bundle(holder.export_public_bundle(), dim=DIM)
    ids = subject_ids(4)
    enrol_all(client, holder, ids, x[:4])
    gallery = dict(zip(ids, x[:4]))
    check_gallery(client, holder, gallery, x[1])
    client.delete(ids[0])
    del gallery[ids[0]]
    assert client.stale_blocks() == [0]

    server.restart()
    client = server.client()
    assert client.bundle() == {"fingerprint": holder.fingerprint_hex, "dim": DIM}
    assert client.subjects() == sorted(gallery)
    assert client.stale_blocks() == [0], "dirty slots must survive a restart"
    check_gallery(client, holder, gallery, x[2])
    assert refresh(client, holder) == [0]
    client.enrol(ids[0], holder.encrypt_template(x[5]))
    gallery[ids[0]] = x[5]

    server.restart()
    client = server.client()
    assert client.stale_blocks() == []
    check_gallery(client, holder, gallery, x[5])
    counts = server.store().counts()
    assert (counts["bundle"], counts["gallery_blocks"], counts["subjects"]) == (1, 1, 4)


def uncompressed_block(holder: CkksKeyHolder, block: bytes, dim: int) -> bytes:
    """``block`` with its ciphertexts serialised without compression (as blocks were stored before zstd)."""
    context = holder.public
    occupied, diagonals = msg.parse_block(context.he, block, fingerprint=context.fingerprint, params=holder.params, dim=dim)
    return msg.pack_block(diagonals, occupied, fingerprint=context.fingerprint, dim=dim, baby=holder.params.baby_for(dim),
                          compression="none")
