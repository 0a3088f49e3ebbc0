"""The encrypted path decides exactly like plaintext cosine on ORL evaluation pairs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from facepp.data.images import read_image
from facepp.model.embedder import Embedder
from tests.helpers.terminal import Stack, orl_file, template

SUBJECTS = (35, 36, 37, 38, 39, 40)
PROBES = (6, 8)


def test_encrypted_decisions_equal_plaintext(make_stack: Callable[..., Stack], orl: Path, embedder: Embedder) -> None:
    templates = {s: template(embedder, [orl_file(orl, s, i) for i in (1, 2, 3)]) for s in SUBJECTS}
    pairs = []  # (claimed, probe subject, probe image, plaintext score): genuine and impostor pairs
    for k, s in enumerate(SUBJECTS):
        for image in PROBES:
            x = embedder.embed([read_image(orl_file(orl, s, image))])[0].astype(np.float64)
            for claimed in (s, SUBJECTS[(k + 1) % len(SUBJECTS)]):
                pairs.append((claimed, s, image, float(templates[claimed] @ x)))
    plain = np.array([p[3] for p in pairs])
    # Threshold at the median, so both decisions occur; no pair within 1e-4 of it (CKKS error ~1e-6).
    threshold = float(np.median(plain))
    threshold += 5e-4 if np.min(np.abs(plain - threshold)) < 1e-4 else 0.0
    stack = make_stack(threshold=threshold)
    for s in SUBJECTS:
        files = [("image", (f"{i}.pgm", orl_file(orl, s, i).read_bytes(), "image/x-portable-graymap")) for i in (1, 2, 3)]
        assert stack.api("POST", "/enroll", data={"subject_id": f"s{s}"}, files=files).status_code == 201
    decisions = []
    for claimed, s, image, score in pairs:
        r = stack.api("POST", "/verify", data={"subject_id": f"s{claimed}"},
                      files=[("image", ("probe.pgm", orl_file(orl, s, image).read_bytes(), "image/x-portable-graymap"))])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["match"] == (score >= threshold), (claimed, s, image, score, body)
        assert body["score"] == pytest.approx(score, abs=5e-4 + 1e-5)  # rounded to 3 decimals
        decisions.append(body["match"])
    assert 0 < sum(decisions) < len(decisions)
