"""Distillation: the student learns the teacher's embeddings; teacher embeddings are cached by content."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facepp.cli import main
from facepp.errors import ConfigError
from facepp.model.augment import AugmentConfig
from facepp.model.checkpoint import load_checkpoint
from facepp.model.distill import centre, teacher_targets
from facepp.model.teacher import VIEWS, DlibTeacher, TeacherCache
from facepp.model.train import TrainConfig, fit
from facepp.vision.align import PreprocessConfig

SIZE = 32


def _synthetic_teacher(crops: np.ndarray, dim: int) -> np.ndarray:
    """A fixed random projection of the pixels (and of the mirrored pixels), centred: a
    deterministic 'teacher' whose targets differ for every image."""
    rng = np.random.default_rng(3)
    projection = rng.normal(size=(SIZE * SIZE * 3, dim))
    views = [crops, crops[:, :, ::-1]]
    raw = np.stack([(v.reshape(len(v), -1) / 255.0 - 0.5) @ projection for v in views], axis=1)
    raw /= np.linalg.norm(raw, axis=-1, keepdims=True)
    return centre(raw)[0]


def _config(**overrides: object) -> TrainConfig:
    values: dict[str, object] = dict(
        embedding_dim=16, epochs=6, batch_size=16, lr=3e-3, seed=0, num_threads=1, distill_weight=20.0,
        augment=AugmentConfig(erase=0.0, max_rotate_deg=0.0, brightness=0.0, contrast=0.0, saturation=0.0, grayscale=0.0),
    )
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_distillation_raises_student_teacher_agreement(tmp_path: Path, tiny_set: tuple[np.ndarray, np.ndarray]) -> None:
    crops, labels = tiny_set
    targets = _synthetic_teacher(crops, 16)
    result = fit(crops, labels, config=_config(), preprocessing=PreprocessConfig(input_size=SIZE),
                 checkpoint_path=tmp_path / "student.pt", targets=targets, progress=False)
    agreement = [h.extra["teacher_cosine"] for h in result.history]
    assert agreement[-1] > agreement[0] + 0.1, agreement
    assert result.history[-1].loss < result.history[0].loss
    # Without the teacher the same run learns no agreement with it: the gain is the teacher's.
    plain = fit(crops, labels, config=_config(distill_weight=0.0), preprocessing=PreprocessConfig(input_size=SIZE),
                checkpoint_path=tmp_path / "plain.pt", targets=targets, progress=False)
    assert all("teacher_cosine" not in h.extra for h in plain.history)
    # The student stays a plain facepp checkpoint.
    meta = load_checkpoint(result.checkpoint)["metadata"]
    assert meta["architecture"] == "mobilefacenet" and meta["embedding_dim"] == 16


def test_targets_must_match_the_crops(tmp_path: Path, tiny_set: tuple[np.ndarray, np.ndarray]) -> None:
    crops, labels = tiny_set
    with pytest.raises(ConfigError, match="teacher targets"):
        fit(crops, labels, config=_config(), preprocessing=PreprocessConfig(input_size=SIZE),
            checkpoint_path=tmp_path / "x.pt", targets=np.zeros((len(labels), 2, 8), np.float32), progress=False)
    with pytest.raises(ConfigError, match="distill_weight"):
        _config(distill_weight=-1.0)


def test_centring_spreads_a_narrow_cone() -> None:
    rng = np.random.default_rng(0)
    cone = np.array([1.0] + [0.0] * 15) + 0.15 * rng.normal(size=(200, 16))
    cone /= np.linalg.norm(cone, axis=1, keepdims=True)
    assert np.linalg.norm(cone.mean(0)) > 0.8
    centred, mean = centre(cone)
    assert np.allclose(np.linalg.norm(centred, axis=1), 1.0, atol=1e-5)
    assert np.linalg.norm(centred.mean(0)) < 0.1
    assert np.allclose(mean, cone.mean(0), atol=1e-6)


@pytest.fixture()
def lfw_images(data_root: Path, tmp_path: Path) -> list[Path]:
    src = data_root / "lfw" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
    blank = tmp_path / "blank.png"
    import cv2

    cv2.imwrite(str(blank), np.full((120, 120, 3), 128, np.uint8))
    renamed = tmp_path / "renamed.jpg"
    shutil.copy(src, renamed)
    return [src, blank, renamed]


def test_teacher_cache_is_reused_by_content(lfw_images: list[Path], tmp_path: Path) -> None:
    teacher = DlibTeacher(pick="central")
    first = TeacherCache(teacher, tmp_path / "cache")
    vectors, ok = first.embeddings(lfw_images, progress=False)
    assert ok.tolist() == [True, False, True]  # the blank image has no face
    assert first.misses == 2 and first.hits == 1  # the renamed copy is a hit within the run
    assert vectors.shape == (3, len(VIEWS), 128)
    assert np.allclose(np.linalg.norm(vectors[0], axis=1), 1.0, atol=1e-5)
    assert 0.8 < float(vectors[0, 0] @ vectors[0, 1]) < 1.0  # the mirror view is close, not equal
    second = TeacherCache(teacher, tmp_path / "cache")
    again, ok2 = second.embeddings(lfw_images, progress=False)
    assert (second.hits, second.misses) == (3, 0)  # nothing recomputed, the missed face included
    assert np.array_equal(again, vectors) and np.array_equal(ok, ok2)
    targets, ok3, summary = teacher_targets(lfw_images, teacher, cache_dir=tmp_path / "cache", progress=False)
    assert summary["cache_hits"] == 3 and summary["teacher_missed"] == 1 and ok3.sum() == 2


def test_cli_refuses_a_teacher_with_another_dimension(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    code = main(["train", "--data", str(data_root / "orl"), "--out", str(tmp_path / "m.pt"), "--teacher", "dlib",
                 "--embedding-dim", "64"])
    assert code == 1
    assert "--embedding-dim 128" in capsys.readouterr().err + caplog.text
    assert not (tmp_path / "m.pt").exists()


def test_distilling_on_faceless_images_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    for person in ("ann", "bob"):
        (tmp_path / "data" / person).mkdir(parents=True)
        for k in range(2):
            cv2.imwrite(str(tmp_path / "data" / person / f"{k}.png"), np.full((96, 96, 3), 60 + 40 * k, np.uint8))
    code = main(["-q", "train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "m.pt"), "--teacher", "dlib",
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 1
    err = capsys.readouterr().err
    assert "no face found by the teacher" in err and "Traceback" not in err
    assert not (tmp_path / "m.pt").exists()
