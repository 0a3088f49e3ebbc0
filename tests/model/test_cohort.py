"""Adaptive S-norm: cohort statistics, the checkpoint that carries them and ``facepp cohort``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facepp.cli import main
from facepp.errors import CheckpointError, ConfigError
from facepp.evaluation.verify import cross_identity_scores, evaluate_folder, store_calibration
from facepp.face_commands import COHORT_TOP_K
from facepp.model import Embedder, build_backbone, load_checkpoint, save_checkpoint, update_metadata
from facepp.model.cohort import DEFAULT_TOP_K, Cohort, cohort_of, one_image_per_identity, s_norm
from facepp.models import export_for_shipping
from facepp.vision import preset_for

SIZE = 32


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A calibrated 32-d checkpoint cropping ORL's centre, with two validation identities."""
    torch.manual_seed(0)
    model = build_backbone("mobilefacenet-tiny", embedding_dim=32, input_size=SIZE).eval()
    metadata = {
        "architecture": "mobilefacenet-tiny", "embedding_dim": 32, "input_size": SIZE,
        "preprocessing": preset_for("orl", input_size=SIZE).to_dict(),
        "threshold": 0.5, "thresholds": {"far_0.01": 0.5}, "calibration": {"far": 0.01},
        "validation_identities": ["s39", "s40"],
    }
    return save_checkpoint(tmp_path_factory.mktemp("cohort") / "source.pt", model_state=model.state_dict(),
                           metadata=metadata)


def test_stats_are_the_mean_and_spread_of_the_top_k_similarities(rng: np.random.Generator) -> None:
    cohort, faces = Cohort(_unit(rng, 300, 16), top_k=7), _unit(rng, 1500, 16)  # more faces than one chunk
    top = -np.sort(-(faces @ cohort.vectors.T).astype(np.float64), axis=1)[:, :7]
    np.testing.assert_allclose(cohort.stats(faces), np.stack([top.mean(1), top.std(1)], axis=1), atol=1e-6)
    np.testing.assert_allclose(cohort.stats(faces[0]), cohort.stats(faces)[:1], atol=1e-6)


def test_s_norm_averages_both_sides_z_scores() -> None:
    a, b = np.array([[0.2, 0.1], [0.3, 0.05]]), np.array([[0.4, 0.2], [0.1, 0.1]])
    scores = np.array([0.5, 0.6])
    expected = [0.5 * ((0.5 - 0.2) / 0.1 + (0.5 - 0.4) / 0.2), 0.5 * ((0.6 - 0.3) / 0.05 + (0.6 - 0.1) / 0.1)]
    np.testing.assert_allclose(s_norm(scores, a, b), expected)
    np.testing.assert_allclose(s_norm(scores, b, a), expected)  # symmetric in the two faces
    assert s_norm(0.5, a[0], b[0]) == pytest.approx(expected[0])


def test_a_face_equal_to_its_whole_cohort_does_not_divide_by_zero() -> None:
    cohort = Cohort(np.tile(np.eye(4, dtype=np.float32)[:1], (5, 1)), top_k=3)
    mean, sigma = cohort.stats(np.eye(4, dtype=np.float32)[:1])[0]
    assert mean == pytest.approx(1.0) and 0 < sigma and np.isfinite(s_norm(0.9, [mean, sigma], [mean, sigma]))


def test_cross_identity_scores_are_normalised_pair_by_pair(rng: np.random.Generator) -> None:
    vectors, names = _unit(rng, 12, 8), [f"p{i // 3}" for i in range(12)]
    stats = Cohort(_unit(rng, 20, 8), top_k=4).stats(vectors)
    expected = [s_norm(vectors[i] @ vectors[j], stats[i], stats[j]) for i in range(12) for j in range(i + 1, 12)
                if names[i] != names[j]]
    np.testing.assert_allclose(cross_identity_scores(vectors, names, stats=stats), expected, atol=1e-6)


@pytest.mark.parametrize("vectors, top_k, message", [
    (np.zeros((0, 4)), 1, r"non-empty \(C, D\) array"),
    (np.zeros(4), 1, r"non-empty \(C, D\) array"),
    (np.full((3, 4), np.nan), 1, "finite values"),
    (np.ones((3, 4)), 4, r"top_k must be in 1..3 \(the cohort size\), got 4"),
    (np.ones((3, 4)), 0, r"top_k must be in 1..3"),
])
def test_bad_cohorts_are_refused(vectors: np.ndarray, top_k: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Cohort(vectors, top_k=top_k)


def test_embeddings_of_another_dimension_are_refused(rng: np.random.Generator) -> None:
    with pytest.raises(ConfigError, match="embeddings are 8-d but the cohort is 16-d"):
        Cohort(_unit(rng, 10, 16), top_k=2).stats(_unit(rng, 3, 8))


def test_the_checkpoint_carries_the_cohort_under_its_digest(checkpoint: Path, tmp_path: Path,
                                                           rng: np.random.Generator) -> None:
    payload = load_checkpoint(checkpoint)
    vectors = torch.from_numpy(_unit(rng, 6, 32)).half()
    path = save_checkpoint(tmp_path / "c.pt", model_state=payload["model"], cohort=vectors,
                           metadata={**payload["metadata"], "cohort": {"top_k": 3}})
    cohort = cohort_of(load_checkpoint(path))
    assert cohort is not None and cohort.top_k == 3
    np.testing.assert_array_equal(cohort.vectors, vectors.float().numpy())
    assert cohort_of(load_checkpoint(checkpoint)) is None

    update_metadata(path, {"threshold": 1.5})  # rewrites keep the cohort
    shipped = tmp_path / "shipped.pt"
    export_for_shipping(path, shipped)
    for kept in (path, shipped):
        again = cohort_of(load_checkpoint(kept))
        assert again is not None and np.array_equal(again.vectors, cohort.vectors)

    tampered = torch.load(path, weights_only=True)
    tampered["cohort"][0, 0] += 1
    torch.save(tampered, tmp_path / "tampered.pt")
    with pytest.raises(CheckpointError, match="digest mismatch"):
        load_checkpoint(tmp_path / "tampered.pt")

    bare = save_checkpoint(tmp_path / "bare.pt", model_state=payload["model"], metadata=payload["metadata"], cohort=vectors)
    with pytest.raises(CheckpointError, match="cohort embeddings but no cohort metadata"):
        cohort_of(load_checkpoint(bare))
    wrong = save_checkpoint(tmp_path / "wrong.pt", model_state=payload["model"], cohort=vectors[:, :16],
                            metadata={**payload["metadata"], "cohort": {"top_k": 3}})
    with pytest.raises(CheckpointError, match="the cohort is 16-d but the model is 32-d"):
        Embedder.from_checkpoint(wrong)


def test_one_image_per_identity_takes_each_folders_first_image() -> None:
    paths = [Path("b/2.pgm"), Path("a/9.pgm"), Path("b/10.pgm"), Path("a/1.pgm")]
    assert one_image_per_identity(paths) == [Path("a/1.pgm"), Path("b/10.pgm")]


def test_cohort_command_end_to_end(checkpoint: Path, data_root: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "with_cohort.pt", tmp_path / "cache"
    argv = ["-q", "cohort", "--model", str(checkpoint), "--data", str(data_root / "orl"), "--top-k", "5",
            "--out", str(out), "--threads", "1", "--cache-dir", str(cache)]
    assert main(argv) == 0
    payload = load_checkpoint(out)
    meta, record = payload["metadata"], payload["metadata"]["cohort"]
    assert not {"threshold", "thresholds", "calibration"} & set(meta)  # raw-cosine thresholds do not hold for S-norm
    assert record["identities"] == record["images"] == 38 and record["excluded_validation_identities"] == 2
    assert record["top_k"] == 5 and record["source_digest"] == load_checkpoint(checkpoint)["digest"]

    source, normed = Embedder.from_checkpoint(checkpoint), Embedder.from_checkpoint(out)
    firsts = [data_root / "orl" / name / "1.pgm" for name in sorted(f"s{i}" for i in range(1, 39))]  # sorted by name
    crops, _ = source.for_dataset("orl").crops_of(firsts, cache_dir=cache)
    assert normed.cohort is not None
    np.testing.assert_allclose(normed.cohort.vectors, source.embed_crops(crops), atol=2e-3)  # stored as fp16
    assert normed.fingerprint != source.fingerprint  # an enrolled gallery is bound to its cohort too
    pair = normed.embed_crops(crops[:2])
    stats = normed.cohort.stats(pair)
    np.testing.assert_allclose(normed.score(pair[0], pair[1]), s_norm(pair[0] @ pair[1], stats[0], stats[1]))
    np.testing.assert_allclose(source.score(pair[:1], pair[1:]), [pair[0] @ pair[1]], rtol=1e-6)

    identities = ["s39", "s40"]
    raw = evaluate_folder(checkpoint, data_root / "orl", identities=identities, num_threads=1, cache_dir=cache)
    plain = evaluate_folder(out, data_root / "orl", identities=identities, num_threads=1, cache_dir=cache, score_norm=False)
    report = evaluate_folder(out, data_root / "orl", identities=identities, num_threads=1, cache_dir=cache,
                             cross_impostors=True)
    np.testing.assert_allclose(plain.scores, raw.scores)
    assert raw.info["scoring"] == "cosine" and report.info["scoring"] == "adaptive S-norm (cohort of 38, top 5)"
    assert not np.allclose(report.scores, raw.scores)

    with pytest.raises(ConfigError, match="calibrate without --no-score-norm"):
        store_calibration(out, plain, far=0.01)
    for views in ({"tta_scales": [0.9, 1.1]}, {"flip_tta": False}):
        other = evaluate_folder(out, data_root / "orl", identities=identities, num_threads=1, cache_dir=cache, **views)
        with pytest.raises(ConfigError, match=r"embedded with the model's own views \(crop scales \[1.0\], mirrored\)"):
            store_calibration(out, other, far=0.01)
    values = store_calibration(out, report, far=0.01)
    assert values["calibration"]["scoring"] == report.info["scoring"]
    assert Embedder.from_checkpoint(out).threshold == pytest.approx(values["threshold"])
    assert cohort_of(load_checkpoint(out)) is not None

    reduced = tmp_path / "m8.pt"  # a new model cannot keep the cohort its source made
    assert main(["-q", "reduce", "--model", str(out), "--dim", "8", "--data", str(data_root / "orl"),
                 "--out", str(reduced), "--threads", "1", "--cache-dir", str(cache)]) == 0
    assert "cohort" not in load_checkpoint(reduced) and "cohort" not in load_checkpoint(reduced)["metadata"]


@pytest.mark.parametrize("extra, message", [
    (["--top-k", "39"], "cohort top_k must be in 1..38 (the cohort size), got 39"),
    (["--out", "SOURCE"], "--out must be a new file, not the model the cohort is made for"),
])
def test_cohort_command_refuses_bad_input_in_one_line(checkpoint: Path, data_root: Path, tmp_path: Path,
                                                      extra: list[str], message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.pt"
    argv = ["cohort", "--model", str(checkpoint), "--data", str(data_root / "orl"), "--out", str(out),
            "--threads", "1", "--cache-dir", str(tmp_path / "cache"), *[str(checkpoint) if e == "SOURCE" else e for e in extra]]
    before = checkpoint.read_bytes()
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == f"facepp: error: {message}"
    assert not out.exists() and checkpoint.read_bytes() == before


def test_the_help_default_is_the_library_default() -> None:
    assert COHORT_TOP_K == DEFAULT_TOP_K
