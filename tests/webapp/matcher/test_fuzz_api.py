"""Fuzzing the matcher's API over HTTP: every route with the terminal's key, wrong or missing keys,
mutated CKKS bodies (bundle, template, probe, block), odd subject ids and dims. Never a 5xx, and a
refused request leaves the database unchanged (the audit log aside: refusals are audited on purpose)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.fuzz_targets import assert_robust, matcher_http_target
from facepp.crypto.ckks.secret_key import CkksKeyHolder
from tests.helpers.matcher import DIM, MatcherServer
from webapp.matcher.auth import Scope, create_api_key


def test_matcher_api(registered: MatcherServer, key_holder: CkksKeyHolder, embeddings: np.ndarray, tmp_path: Path) -> None:
    client = registered.client()
    for i in range(2):
        client.enrol(f"s{i + 1}", key_holder.encrypt_template(embeddings[i]))
    samples = {"bundle": key_holder.export_public_bundle(), "template": key_holder.encrypt_template(embeddings[2]),
               "probe": key_holder.encrypt_probe(embeddings[0]),
               "identify": key_holder.encrypt_probe(embeddings[0], verification=False), "block": client.get_block(0)}
    admin = create_api_key(registered.store(), "fuzz-admin", set(Scope))
    target = matcher_http_target(registered.base_url, tmp_path / "matcher.db", [registered.api_key, admin], samples, DIM)
    assert_robust(target, max_examples=80)
