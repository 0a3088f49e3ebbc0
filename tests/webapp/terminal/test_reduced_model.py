"""A model reduced to 64-d by ``facepp reduce`` enrols, verifies and identifies through the real terminal and matcher."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from facepp.data.images import read_image
from facepp.model.embedder import Embedder
from facepp.model.reduce import reduce_checkpoint
from tests.helpers.terminal import Stack, orl_file, template


@pytest.fixture(scope="module")
def reduced(checkpoint: Path, orl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The terminal tests' 128-d model reduced to 64-d, fitted on ORL."""
    out = tmp_path_factory.mktemp("reduced") / "m64.pt"
    reduce_checkpoint(checkpoint, out, dim=64, data=orl, cache_dir=out.parent / "cache", num_threads=1)
    return out


def test_a_64d_model_enrols_and_verifies_end_to_end(make_stack: Callable[..., Stack], reduced: Path, orl: Path) -> None:
    embedder = Embedder.from_checkpoint(reduced, num_threads=1)
    assert embedder.embedding_dim == 64
    enrolled = {s: template(embedder, [orl_file(orl, s, i) for i in (1, 2, 3)]) for s in (31, 32)}
    probe = embedder.embed([read_image(orl_file(orl, 31, 5))])[0].astype(np.float64)
    genuine, impostor = float(enrolled[31] @ probe), float(enrolled[32] @ probe)
    assert genuine > impostor + 0.01, f"the reduced test model does not separate s31/s32 ({genuine:.3f}, {impostor:.3f})"
    stack = make_stack(checkpoint=str(reduced), threshold=round((genuine + impostor) / 2, 4))
    for s in (31, 32):
        files = [("image", (f"{i}.pgm", orl_file(orl, s, i).read_bytes(), "image/x-portable-graymap")) for i in (1, 2, 3)]
        r = stack.api("POST", "/enroll", data={"subject_id": f"orl-s{s}"}, files=files)
        assert r.status_code == 201, r.text
    assert stack.matcher_admin().bundle()["dim"] == 64

    image = [("image", ("5.pgm", orl_file(orl, 31, 5).read_bytes(), "image/x-portable-graymap"))]
    accepted = stack.api("POST", "/verify", data={"subject_id": "orl-s31"}, files=image).json()
    refused = stack.api("POST", "/verify", data={"subject_id": "orl-s32"}, files=image).json()
    assert accepted["match"] is True and refused["match"] is False
    assert accepted["score"] == pytest.approx(genuine, abs=2e-3) and refused["score"] == pytest.approx(impostor, abs=2e-3)
    candidates = stack.api("POST", "/identify", data={"top_k": "2"}, files=image).json()["candidates"]
    assert [c["subject_id"] for c in candidates] == ["orl-s31", "orl-s32"]
