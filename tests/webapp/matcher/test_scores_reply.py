"""The 1:N reply names blocks and a location-table version, never a subject id (real matcher over HTTP)."""

from __future__ import annotations

import numpy as np
import pytest

from facepp.crypto.ckks.secret_key import CkksKeyHolder
from facepp.errors import ProtocolError
from tests.helpers.matcher import DIM, MatcherServer
from webapp.matcher.client import StaleLocationsError


def test_the_identify_reply_carries_no_subject_id_and_decrypts_through_the_location_table(
        registered: MatcherServer, key_holder: CkksKeyHolder, embeddings: np.ndarray) -> None:
    client = registered.client()
    ids = [f"subject-{i}" for i in range(3)]
    for sid, x in zip(ids, embeddings):
        client.enrol(sid, key_holder.encrypt_template(x))
    probe = key_holder.encrypt_probe(embeddings[0], verification=False)
    reply = client.identify(probe)
    assert not any(sid.encode() in reply for sid in ids)
    with pytest.raises(ProtocolError, match="location table"):
        key_holder.decrypt_scores(reply, dim=DIM)
    scores = key_holder.decrypt_scores(reply, dim=DIM, locations=client.table_for)
    assert sorted(scores) == ids
    np.testing.assert_allclose([scores[s] for s in ids], embeddings[:3] @ embeddings[0], atol=1e-4)

    client.delete(ids[1])  # the gallery changes: the new reply names a new version, the client fetches its table
    fresh = key_holder.decrypt_scores(client.identify(probe), dim=DIM, locations=client.table_for)
    assert sorted(fresh) == [ids[0], ids[2]]
    with pytest.raises(StaleLocationsError):  # the old reply's table is gone from the matcher and the client
        key_holder.decrypt_scores(reply, dim=DIM, locations=client.table_for)
