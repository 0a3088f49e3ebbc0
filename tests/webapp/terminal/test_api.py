"""JSON API end to end over real HTTP: enrol, verify, identify, list, delete (ORL faces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepp.data.images import read_image
from facepp.model.embedder import Embedder
from tests.helpers.terminal import Stack, orl_file, template


def files(paths: list[Path]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("image", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]


@pytest.fixture(scope="module")
def enrolled(stack: Stack, orl: Path) -> list[str]:
    """s31..s34 enrolled from images 1-3 each."""
    names = []
    for s in (31, 32, 33, 34):
        name = f"orl-s{s}"
        r = stack.api("POST", "/enroll", data={"subject_id": name}, files=files([orl_file(orl, s, i) for i in (1, 2, 3)]))
        assert r.status_code == 201, r.text
        assert r.json()["subject_id"] == name and r.json()["images"] == 3
        names.append(name)
    return names


def test_verify_genuine_accepted_impostor_refused(stack: Stack, orl: Path, enrolled: list[str], threshold: float) -> None:
    genuine = stack.api("POST", "/verify", data={"subject_id": "orl-s31"}, files=files([orl_file(orl, 31, 5)]))
    impostor = stack.api("POST", "/verify", data={"subject_id": "orl-s31"}, files=files([orl_file(orl, 32, 5)]))
    assert genuine.status_code == 200, genuine.text
    g, i = genuine.json(), impostor.json()
    assert g["match"] is True and i["match"] is False
    assert g["threshold"] == pytest.approx(threshold) and g["score"] > i["score"]
    for body in (g, i):  # rounded for display: never full precision (CKKS caveat)
        assert body["score"] == round(body["score"], 3)


def test_identify_top_k_matches_plaintext(stack: Stack, orl: Path, enrolled: list[str], embedder: Embedder) -> None:
    probe = orl_file(orl, 33, 6)
    r = stack.api("POST", "/identify", data={"top_k": "3"}, files=files([probe]))
    assert r.status_code == 200, r.text
    candidates = r.json()["candidates"]
    assert len(candidates) == 3
    x = embedder.embed([read_image(probe)])[0].astype(np.float64)
    plain = {n: float(template(embedder, [orl_file(orl, int(n[5:]), i) for i in (1, 2, 3)]) @ x) for n in enrolled}
    expected = sorted(plain, key=plain.get, reverse=True)[:3]
    assert [c["subject_id"] for c in candidates] == expected
    for c in candidates:
        assert c["score"] == pytest.approx(plain[c["subject_id"]], abs=1e-3)
    scores = [c["score"] for c in candidates]
    assert scores == sorted(scores, reverse=True)


def test_list_and_delete(stack: Stack, orl: Path, enrolled: list[str]) -> None:
    r = stack.api("POST", "/enroll", data={"subject_id": "to-delete"}, files=files([orl_file(orl, 35, 1)]))
    assert r.status_code == 201, r.text
    listed = [s["subject_id"] for s in stack.api("GET", "/subjects").json()["subjects"]]
    assert "to-delete" in listed and set(enrolled) <= set(listed)
    r = stack.api("DELETE", "/subjects/to-delete")
    assert r.status_code == 200, r.text
    assert r.json()["blocks_refreshed"] >= 1
    listed = [s["subject_id"] for s in stack.api("GET", "/subjects").json()["subjects"]]
    assert "to-delete" not in listed
    assert stack.api("DELETE", "/subjects/to-delete").status_code == 404
    # The matcher no longer has it and holds no stale block.
    service = stack.terminal_app.extensions["terminal"]
    assert service.opaque_id("to-delete") not in stack.matcher_admin().subjects()
    assert service.client.stale_blocks() == []
    # Verification against the deleted subject: 404.
    r = stack.api("POST", "/verify", data={"subject_id": "to-delete"}, files=files([orl_file(orl, 35, 2)]))
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_matcher_never_sees_names(stack: Stack, enrolled: list[str]) -> None:
    """Every byte the matcher stored (SQLite file and its WAL) is free of the subject names."""
    folder = stack.instance_dir.parent
    stored = b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("matcher.db"))
    assert stored, "matcher database not found"
    for name in enrolled:
        assert name.encode() not in stored


def test_concurrent_verifications(stack: Stack, orl: Path, enrolled: list[str]) -> None:
    """Parallel requests through waitress threads: no error, identical decisions and scores."""
    from concurrent.futures import ThreadPoolExecutor

    def verify(i: int) -> tuple[int, bool, float]:
        probe = orl_file(orl, 31 if i % 2 == 0 else 32, 5)
        r = stack.api("POST", "/verify", data={"subject_id": "orl-s31"}, files=files([probe]))
        body = r.json()
        return r.status_code, body.get("match"), body.get("score")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(verify, range(8)))
    assert all(status == 200 for status, _, _ in results), results
    for i, (_, match, score) in enumerate(results):  # same probe: same decision, same rounded score (+-1 ulp of rounding)
        assert match is (i % 2 == 0)
        assert score == pytest.approx(results[i % 2][2], abs=1.01e-3)
