"""The facepp CLI end to end on a few real ORL images (untrained network: checks plumbing, not accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facepp.cli import main
from facepp.model import load_checkpoint

KEYS = {"accuracy", "accuracy_std", "auc", "eer", "tar_at_far_1e-2", "tar_at_far_1e-3", "threshold", "pairs"}


def test_evaluate_writes_json_roc_and_calibration(untrained_checkpoint: Path, data_root: Path, tmp_path: Path) -> None:
    out, roc = tmp_path / "m.json", tmp_path / "roc.png"
    argv = ["-q", "evaluate", "--model", str(untrained_checkpoint), "--data", str(data_root / "orl"),
            "--identities", "s31", "s32", "s33", "--json", str(out), "--roc", str(roc), "--calibrate-far", "0.01",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    metrics = json.loads(out.read_text())
    assert KEYS <= set(metrics) and metrics["pairs"] == 2 * 3 * 45
    assert roc.stat().st_size > 1000
    meta = load_checkpoint(untrained_checkpoint)["metadata"]
    assert meta["threshold"] == pytest.approx(meta["thresholds"]["far_0.01"])


def test_calibration_stores_the_test_time_scales_it_used(untrained_checkpoint: Path, data_root: Path, tmp_path: Path) -> None:
    from facepp.model import Embedder

    model = tmp_path / "copy.pt"
    model.write_bytes(untrained_checkpoint.read_bytes())
    base = ["-q", "evaluate", "--model", str(model), "--data", str(data_root / "orl"), "--identities", "s31", "s32",
            "--cache-dir", str(tmp_path / "cache")]
    assert main([*base, "--json", str(tmp_path / "single.json")]) == 0
    assert main([*base, "--tta-scales", "0.9", "1.1", "--json", str(tmp_path / "multi.json"), "--calibrate-far", "0.01"]) == 0
    single, multi = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("single", "multi"))
    assert single["tta_scales"] == [1.0] and multi["tta_scales"] == [0.9, 1.1]
    assert single["auc"] != multi["auc"]  # the views really changed the embeddings
    meta = load_checkpoint(model)["metadata"]
    assert meta["calibration"]["tta_scales"] == [0.9, 1.1]
    assert Embedder.from_checkpoint(model).preprocessor.config.tta_scales == (0.9, 1.1)
    assert main([*base, "--tta-scales", "0"]) == 1  # a ConfigError naming tta_scales; checkpoint untouched
    assert load_checkpoint(model)["metadata"] == meta


def test_embed_to_npy_and_json(untrained_checkpoint: Path, data_root: Path, tmp_path: Path) -> None:
    images = [str(data_root / "orl" / "s1" / "1.pgm"), str(data_root / "lfw" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")]
    assert main(["-q", "embed", "--model", str(untrained_checkpoint), *images, "--out", str(tmp_path / "e.npy")]) == 0
    vectors = np.load(tmp_path / "e.npy")
    assert vectors.shape == (2, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert main(["-q", "embed", "--model", str(untrained_checkpoint), images[0], "--out", str(tmp_path / "e.json")]) == 0
    record = json.loads((tmp_path / "e.json").read_text())["embeddings"][0]
    assert record["faces_found"] >= 1 and len(record["embedding"]) == 32


def _blank(path: Path) -> Path:
    """A grey image: no face in it."""
    from PIL import Image

    Image.new("RGB", (120, 120), (200, 200, 200)).save(path)
    return path


def test_cli_errors_are_exit_codes_and_name_the_file(untrained_checkpoint: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = _blank(tmp_path / "blank.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases = [
        (["--model", str(tmp_path / "missing.pt"), str(bad)], "missing.pt"),
        (["--model", str(untrained_checkpoint), str(bad)], f"{bad}: no face detected"),  # NoFaceError
        (["--model", str(untrained_checkpoint), str(tmp_path / "empty.jpg")], f"{tmp_path / 'empty.jpg'}: "),
    ]
    for argv, named in cases:
        assert main(["-q", "embed", *argv]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("facepp: error: ") and named in err and "\n" not in err and "Traceback" not in err
    assert main([]) == 2


def test_embed_on_no_face_fail_skip_center(untrained_checkpoint: Path, data_root: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """One image without a face among real ones: fail names it, skip leaves it out, center embeds the centre crop;
    the JSON records the outcome of every file."""
    face = data_root / "lfw" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
    blank = _blank(tmp_path / "blank.png")
    base = ["-q", "embed", "--model", str(untrained_checkpoint), str(face), str(blank), str(face)]

    assert main([*base, "--out", str(tmp_path / "fail.json")]) == 1  # default: --on-no-face fail
    assert f"{blank}: no face detected" in capsys.readouterr().err
    assert not (tmp_path / "fail.json").exists()

    assert main([*base, "--on-no-face", "skip", "--out", str(tmp_path / "skip.json")]) == 0
    skipped = json.loads((tmp_path / "skip.json").read_text())
    assert skipped["on_no_face"] == "skip" and skipped["outcomes"] == {"embedded": 2, "center": 0, "skipped": 1}
    assert [r["outcome"] for r in skipped["embeddings"]] == ["embedded", "skipped", "embedded"]
    assert skipped["embeddings"][1]["file"] == str(blank) and "embedding" not in skipped["embeddings"][1]
    assert skipped["embeddings"][1]["reason"] == "no face detected in the image"
    assert len(skipped["embeddings"][2]["embedding"]) == 32

    assert main([*base, "--on-no-face", "center", "--out", str(tmp_path / "center.json")]) == 0
    centred = json.loads((tmp_path / "center.json").read_text())
    assert [r["outcome"] for r in centred["embeddings"]] == ["embedded", "center", "embedded"]
    assert centred["embeddings"][1]["faces_found"] == 0 and len(centred["embeddings"][1]["embedding"]) == 32
    assert centred["embeddings"][0]["embedding"] == skipped["embeddings"][0]["embedding"]

    assert main([*base, "--on-no-face", "skip", "--out", str(tmp_path / "skip.npy")]) == 0
    vectors = np.load(tmp_path / "skip.npy")
    records = json.loads((tmp_path / "skip.npy.json").read_text())["files"]
    assert vectors.shape == (2, 32) and [r["row"] for r in records] == [0, None, 1]
    np.testing.assert_allclose(vectors[1], skipped["embeddings"][2]["embedding"], atol=1e-6)


def test_cli_mode_choices_are_the_preprocessing_modes() -> None:
    from facepp.face_commands import MODE_CHOICES
    from facepp.vision.align import MODES

    assert MODE_CHOICES == MODES


def test_evaluation_crops_faces_the_way_the_model_was_trained(untrained_checkpoint: Path, data_root: Path, tmp_path: Path) -> None:
    """Without --mode, a model trained on landmark-aligned crops is evaluated on them;
    --mode overrides."""
    from facepp.model.checkpoint import update_metadata

    model = tmp_path / "landmarks.pt"
    model.write_bytes(untrained_checkpoint.read_bytes())
    meta = load_checkpoint(model)["metadata"]
    update_metadata(model, {"preprocessing": {**meta["preprocessing"], "mode": "landmarks"}})
    base = ["-q", "evaluate", "--model", str(model), "--data", str(data_root / "orl"), "--identities", "s31", "s32",
            "--cache-dir", str(tmp_path / "cache")]
    assert main([*base, "--json", str(tmp_path / "default.json")]) == 0
    assert main([*base, "--mode", "center", "--json", str(tmp_path / "center.json")]) == 0
    default, center = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("default", "center"))
    assert default["preprocessing_mode"] == "landmarks" and center["preprocessing_mode"] == "center"
    assert default["auc"] != center["auc"]


def test_calibration_stores_the_alignment_it_measured(untrained_checkpoint: Path, data_root: Path, tmp_path: Path) -> None:
    """A threshold measured on landmark-aligned crops makes the terminal align by landmarks;
    one measured on the fixed centre crop leaves the photo pipeline as it was."""
    from facepp.model import Embedder

    model = tmp_path / "copy.pt"
    model.write_bytes(untrained_checkpoint.read_bytes())
    base = ["-q", "evaluate", "--model", str(model), "--data", str(data_root / "orl"), "--identities", "s31", "s32",
            "--cache-dir", str(tmp_path / "cache"), "--calibrate-far", "0.01"]
    assert Embedder.from_checkpoint(model).preprocessor.config.mode == "detect"
    assert main([*base, "--mode", "center"]) == 0
    assert Embedder.from_checkpoint(model).preprocessor.config.mode == "detect"
    assert main([*base, "--mode", "landmarks"]) == 0
    meta = load_checkpoint(model)["metadata"]
    assert meta["inference_preprocessing"]["mode"] == "landmarks"
    assert meta["calibration"]["preprocessing_mode"] == "landmarks"
    assert Embedder.from_checkpoint(model).preprocessor.config.mode == "landmarks"


def test_evaluate_cross_impostors_scores_every_cross_identity_image_pair(untrained_checkpoint: Path, data_root: Path,
                                                                        tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    argv = ["-q", "evaluate", "--model", str(untrained_checkpoint), "--data", str(data_root / "orl"),
            "--identities", "s31", "s32", "s33", "--cross-impostors", "--json", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    metrics = json.loads(out.read_text())
    assert metrics["cross_impostor_pairs"] == 30 * 29 // 2 - 3 * (10 * 9 // 2)  # 30 images of 3 people
    assert 0.0 <= metrics["cross_tar_at_far_1e-4"] <= metrics["cross_tar_at_far_1e-3"] <= 1.0
