"""Optional client-level differential privacy: clipping, noise, accounting, plumbing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from facepp.cli import main
from facepp.errors import ConfigError
from facepp.model import TrainConfig
from training.participant.local import build_model, federated_tensors, load_flat_weights
from training.participant.client import LocalUpdate
from training.participant.privacy import DPConfig, PrivateTrainer, epsilon_after, privatize
from training.participant.spec import TrainingSpec


def test_update_is_clipped_to_the_bound_and_small_updates_pass() -> None:
    reference = np.zeros(1000, dtype=np.float32)
    config = DPConfig(clip=0.5, noise_multiplier=1e-9, min_contributors=1)
    big = np.full(1000, 1.0, dtype=np.float32)
    private, norm = privatize(big, reference, config, np.random.default_rng(0))
    assert norm == pytest.approx(math.sqrt(1000))
    assert np.linalg.norm(private - reference) == pytest.approx(0.5, rel=1e-5)
    small = np.full(1000, 1e-3, dtype=np.float32)
    private, _ = privatize(small, reference, config, np.random.default_rng(0))
    np.testing.assert_allclose(private, small, atol=1e-7)


def test_noise_share_is_split_so_the_quorum_sums_to_the_full_noise() -> None:
    config = DPConfig(clip=0.5, noise_multiplier=2.0, min_contributors=4)
    reference = np.zeros(200_000, dtype=np.float32)
    shares = [privatize(reference, reference, config, np.random.default_rng(k))[0] for k in range(4)]
    assert np.std(shares[0]) == pytest.approx(2.0 * 0.5 / 2, rel=0.02)
    assert np.std(np.sum(shares, axis=0)) == pytest.approx(2.0 * 0.5, rel=0.02)


def test_epsilon_grows_with_rounds_shrinks_with_noise_and_is_below_the_classic_rdp_bound() -> None:
    config = DPConfig(clip=1.0, noise_multiplier=1.0, min_contributors=3)
    eps = [epsilon_after(r, config) for r in (1, 5, 10)]
    assert eps[0] < eps[1] < eps[2]
    assert epsilon_after(10, DPConfig(clip=1.0, noise_multiplier=4.0, min_contributors=3)) < eps[2]
    # Gaussian mechanism, sensitivity 1: RDP(alpha) = R * alpha / (2 sigma^2); classic conversion to (eps, delta).
    classic = min(10 * a / 2 + math.log(1 / 1e-5) / (a - 1) for a in np.linspace(1.01, 100, 20000))
    assert 0.5 * classic < eps[2] <= classic


def test_bad_dp_parameters_are_refused() -> None:
    with pytest.raises(ConfigError, match="noise_multiplier > 0"):
        DPConfig(clip=1.0, noise_multiplier=0.0, min_contributors=2)
    with pytest.raises(ConfigError, match="clip > 0"):
        DPConfig(clip=-1.0, noise_multiplier=1.0, min_contributors=2)


class _FixedTrainer:
    def train(self, weights: np.ndarray, round_: int) -> LocalUpdate:
        return LocalUpdate(weights=weights + 1.0, samples=37, metrics={"local_loss": 1.5})


def test_private_trainer_hides_counts_clips_and_reports_epsilon() -> None:
    config = DPConfig(clip=0.1, noise_multiplier=0.5, min_contributors=2)
    trainer = PrivateTrainer(_FixedTrainer(), config, sample_scale=500.0, noise_seed=7)
    weights = np.zeros(64, dtype=np.float32)
    first, again = trainer.train(weights, 3), trainer.train(weights, 3)
    assert first.samples == 500  # FedAvg weight 1: the private count 37 never leaves
    # Only epsilon leaves: loss and update norm depend on the private data.
    assert first.metrics == {"dp_epsilon": pytest.approx(epsilon_after(3, config))}
    assert np.linalg.norm(first.weights - weights) < 1.0  # the norm-8 update, clipped to 0.1, plus noise of norm ~0.28
    np.testing.assert_array_equal(first.weights, again.weights)  # seeded: a simulation twin repeats it
    fresh = PrivateTrainer(_FixedTrainer(), config, sample_scale=500.0)
    assert not np.array_equal(fresh.train(weights, 3).weights, fresh.train(weights, 3).weights)


def test_spec_round_trips_the_dp_config() -> None:
    spec = TrainingSpec(total_rounds=2, participants=("a", "b"), dp=DPConfig(clip=2.0, noise_multiplier=1.1, min_contributors=2))
    assert TrainingSpec.from_json(spec.to_json()) == spec
    plain = TrainingSpec(total_rounds=2, participants=("a", "b"))
    assert TrainingSpec.from_json(plain.to_json()).dp is None


@pytest.mark.parametrize("mangle", [
    lambda doc: doc["dp"].update(clipp=1.0),  # misspelled key
    lambda doc: doc.pop("participants"),
    lambda doc: doc["dp"].update(noise_multiplier=-1.0),
])
def test_a_broken_training_json_is_a_clear_config_error(mangle) -> None:  # type: ignore[no-untyped-def]
    spec = TrainingSpec(total_rounds=2, participants=("a", "b"), dp=DPConfig(clip=2.0, noise_multiplier=1.1, min_contributors=2))
    doc = json.loads(spec.to_json())
    mangle(doc)
    with pytest.raises(ConfigError):
        TrainingSpec.from_json(json.dumps(doc))
    with pytest.raises(ConfigError, match="not a valid training spec"):
        TrainingSpec.from_json("{not json")


def test_noised_negative_batchnorm_variances_are_clamped_on_load() -> None:
    model = build_model(TrainConfig(backbone="mobilefacenet-tiny"), 32)
    parts = [(-v if name.endswith("running_var") else v).reshape(-1).numpy() for name, v in federated_tensors(model)]
    load_flat_weights(model, np.concatenate(parts).astype(np.float32))
    variances = [b for name, b in model.named_buffers() if name.endswith("running_var")]
    assert variances and all(bool((v >= 0).all()) for v in variances)
    with torch.no_grad():
        assert torch.isfinite(model.eval()(torch.zeros(1, 3, 32, 32))).all()


@pytest.mark.slow
def test_simulate_with_dp_reports_epsilon_and_the_twin_repeats_the_noise(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code = main(["-q", "simulate", "--participants", "2", "--rounds", "2", "--local-epochs", "1", "--data",
                 str(data_root / "orl"), "--from-scratch", "--backbone", "mobilefacenet-tiny", "--input-size", "32",
                 "--dp-noise", "1.0", "--dp-clip", "0.5", "--workdir", str(tmp_path / "sim"), "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    expected = epsilon_after(2, DPConfig(clip=0.5, noise_multiplier=1.0, min_contributors=2))
    assert report["dp"]["epsilon"] == pytest.approx(expected) and report["dp"]["clip"] == 0.5
    assert report["max_abs_weight_diff"] <= 2 * report["fixed_point_step"]
    assert report["plaintext_leak_found"] is False
