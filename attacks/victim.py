"""The attacked participant: a small batch of real faces, the exact update it sends, and views of it.

The update comes from the participant's own code (:func:`training.participant.local.local_trainer`:
the shared backbone with a private margin head, the spec's local epochs, optimizer and
augmentation, and the DP wrapper when the spec asks for it) and leaves through the FedAvg
weighting of :func:`training.fedavg.weighted_contribution`, as :class:`training.participant.client.Participant`
uploads it. A plain FedAvg server divides by the weight it receives and subtracts the global
model it sent: :func:`plaintext_update` is exactly what it learns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facepp.data.datasets import load_dataset
from facepp.errors import DatasetError
from facepp.model import TrainConfig
from facepp.vision.align import FacePreprocessor, PreprocessConfig
from facepp.vision.cache import preprocess_paths
from training.fedavg import average_from_sum, weighted_contribution
from training.participant.client import LocalUpdate
from training.participant.local import initial_weights, local_trainer
from training.participant.privacy import DPConfig
from training.participant.spec import TrainingSpec, fine_tuning


@dataclass(frozen=True)
class FaceBatch:
    """A participant's training batch and, per image, another image of the same person.

    Attributes:
        crops: (B, S, S, 3) uint8 aligned crops the participant trains on (one per person).
        labels: (B,) int64 local labels (0..B-1).
        people: Identity of each crop.
        references: (B, S, S, 3) uint8: another image of each person (their enrolment photo).
    """

    crops: np.ndarray
    labels: np.ndarray
    people: tuple[str, ...]
    references: np.ndarray


def load_batch(root: str | Path, *, people: int, preprocessing: PreprocessConfig, seed: int = 0,
               exclude: tuple[str, ...] = (), cache_dir: Path | None = None) -> FaceBatch:
    """``people`` persons drawn at random, one training image and one reference image each.

    Persons whose images yield no face are passed over.

    Raises:
        DatasetError: fewer than ``people`` usable persons with two images.
    """
    dataset = load_dataset(root)
    candidates = [name for name in dataset.identities if len(dataset.images_of(name)) >= 2 and name not in exclude]
    order = np.random.default_rng(seed).permutation(len(candidates))
    preprocessor = FacePreprocessor(preprocessing)
    chosen: list[tuple[str, np.ndarray, np.ndarray]] = []
    for index in order:
        name = candidates[int(index)]
        paths = [s.path for s in dataset.images_of(name)[:2]]
        crops, ok = preprocess_paths(paths, preprocessor, cache_dir=cache_dir, progress=False)
        if ok.all():
            chosen.append((name, crops[0], crops[1]))
        if len(chosen) == people:
            break
    if len(chosen) < people:
        raise DatasetError(f"{root} has only {len(chosen)} persons with two usable images; the batch needs {people}")
    return FaceBatch(crops=np.stack([c for _, c, _ in chosen]), labels=np.arange(people, dtype=np.int64),
                     people=tuple(n for n, _, _ in chosen), references=np.stack([r for _, _, r in chosen]))


def victim_spec(*, model: Path | None, participants: int = 3, local_epochs: int = 1, train: TrainConfig | None = None,
                dp: DPConfig | None = None, seed: int = 0) -> TrainingSpec:
    """The federation's spec as the victim holds it: fine-tuning ``model`` (None: ``train`` from scratch)."""
    spec = TrainingSpec(total_rounds=1, participants=tuple(f"org{i + 1}" for i in range(participants)),
                        local_epochs=local_epochs, seed=seed, train=train or TrainConfig(batch_size=32, lr=1e-3, num_threads=1),
                        dp=dp)
    return fine_tuning(spec, model) if model is not None else spec


def global_weights(spec: TrainingSpec, model: Path | None) -> np.ndarray:
    """The global model of round 1: ``model``'s backbone, or the spec's seeded random weights."""
    return initial_weights(spec.train, spec.input_size, model)


def local_update(spec: TrainingSpec, batch: FaceBatch, weights: np.ndarray, *, noise_seed: int | None = None) -> LocalUpdate:
    """Round 1 of the participant's own local training on ``batch`` (privatised when ``spec.dp`` is set)."""
    trainer = local_trainer(spec, batch.crops, batch.labels, 0, dp_noise_seed=noise_seed)
    return trainer.train(weights, 1)


def plaintext_update(update: LocalUpdate, weights: np.ndarray, spec: TrainingSpec) -> np.ndarray:
    """What a plain FedAvg server learns: the uploaded ``[w W_local, w]`` divided by ``w``, minus the global model."""
    contribution = weighted_contribution(update.weights, update.samples, sample_scale=spec.sample_scale)
    return (average_from_sum(contribution) - weights).astype(np.float32)


def top_fraction(update: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The largest ``fraction`` of coordinates by magnitude (Shokri and Shmatikov's selective sharing).

    Returns:
        (the shared update with zeros elsewhere, the (P,) bool mask of shared coordinates).
    """
    k = max(1, int(round(fraction * update.size)))
    mask = np.zeros(update.size, dtype=bool)
    mask[np.argpartition(np.abs(update), update.size - k)[update.size - k :]] = True
    return np.where(mask, update, 0.0).astype(np.float32), mask


def with_dp(spec: TrainingSpec, *, noise_multiplier: float, clip: float) -> TrainingSpec:
    """The same spec with client-level DP (noise split over the spec's participants)."""
    return replace(spec, dp=DPConfig(clip=clip, noise_multiplier=noise_multiplier, min_contributors=len(spec.participants)))


def public_faces(root: str | Path, *, exclude: tuple[str, ...], count: int, preprocessing: PreprocessConfig,
                 seed: int = 0, cache_dir: Path | None = None) -> np.ndarray:
    """(M, S, S, 3) uint8 crops of up to ``count`` images of other people: the attacker's prior.

    Raises:
        DatasetError: no usable image outside ``exclude``.
    """
    dataset = load_dataset(root)
    paths = [s.path for s in dataset.samples if s.identity not in exclude]
    rng = np.random.default_rng(seed)
    chosen = [paths[int(i)] for i in np.sort(rng.choice(len(paths), size=min(count, len(paths)), replace=False))]
    crops, ok = preprocess_paths(chosen, FacePreprocessor(preprocessing), cache_dir=cache_dir, progress=False)
    if not ok.any():
        raise DatasetError(f"no usable public face in {root} outside the attacked people")
    return crops[ok]
