"""The shipped model: present, digest-checked, usable with no flag, and it recognises faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facepp.cli import main
from facepp.errors import CheckpointError
from facepp.model.checkpoint import load_checkpoint
from facepp.model.cohort import s_norm
from facepp.model.embedder import Embedder
from facepp.models import SHIPPED_SHA256, export_for_shipping, shipped_model, verify_file

MAX_BYTES = 8 * 1024 * 1024


def test_shipped_model_loads_and_is_small() -> None:
    path = shipped_model()
    assert path.stat().st_size <= MAX_BYTES
    assert (path.parent / "MODEL_CARD.md").is_file()
    meta = load_checkpoint(path)["metadata"]
    assert meta["embedding_dim"] == 128 and meta["threshold"] is not None
    assert meta["inference_preprocessing"]["mode"] == "landmarks"
    cohort = Embedder.from_checkpoint(path).cohort  # its threshold is on S-normalised scores
    assert cohort is not None and cohort.vectors.shape == (4307, 128) and meta["cohort"]["top_k"] == cohort.top_k
    assert meta["calibration"]["scoring"] == "adaptive S-norm (cohort of 4307, top 50)"
    assert "head" not in load_checkpoint(path)  # no resume state is shipped


def test_a_tampered_copy_is_refused(tmp_path: Path) -> None:
    data = bytearray(shipped_model().read_bytes())
    data[len(data) // 2] ^= 0x01
    copy = tmp_path / "tampered.pt"
    copy.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="modified"):
        verify_file(copy, SHIPPED_SHA256)
    with pytest.raises(CheckpointError, match="missing"):
        verify_file(tmp_path / "absent.pt", SHIPPED_SHA256)


def test_export_drops_the_resume_state(tmp_path: Path) -> None:
    digest = export_for_shipping(shipped_model(), tmp_path / "again.pt")
    assert digest == SHIPPED_SHA256  # exporting is deterministic: the digest can be reproduced


def test_embed_needs_no_model_flag(data_root: Path, tmp_path: Path) -> None:
    images = [data_root / "lfw" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg",
              data_root / "lfw" / "George_W_Bush" / "George_W_Bush_0001.jpg",
              data_root / "lfw" / "George_W_Bush" / "George_W_Bush_0002.jpg"]
    out = tmp_path / "e.json"
    assert main(["-q", "embed", *map(str, images), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    vectors = np.array([e["embedding"] for e in record["embeddings"]])
    assert vectors.shape == (3, 128)
    embedder = Embedder.from_checkpoint(shipped_model())
    assert embedder.threshold is not None and record["threshold"] == embedder.threshold
    genuine, impostor = embedder.score(vectors[[1, 0]], vectors[[2, 1]])
    assert genuine > embedder.threshold > impostor  # same person above, others below
    # The output alone is enough to decide, as its "scoring" says.
    assert record["scoring"].startswith("adaptive S-norm")
    stats = np.array([e["cohort_stats"] for e in record["embeddings"]])
    z = s_norm(vectors[1] @ vectors[2], stats[1], stats[2])
    assert z == pytest.approx(genuine, abs=1e-4)


def test_calibration_never_rewrites_the_shipped_model(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["-q", "evaluate", "--data", str(data_root / "orl"), "--identities", "s31", "s32", "--calibrate-far", "0.01"]
    for model in ([], ["--model", str(shipped_model())]):
        assert main([*base, *model]) == 1
        assert "copy the shipped model" in capsys.readouterr().err
    assert shipped_model()  # its digest still matches
