"""Learned inversion: rebuild the two faces of a two-image step from what the update states exactly.

A round's first local step on two images leaves in the update, exactly, every BatchNorm's
batch mean and unbiased variance (its running statistics move by ``momentum`` times them)
and, per image, the GDC features :mod:`attacks.feature_read` reads. Pixel-space
optimisation cannot use them: through the step's train-mode BatchNorms they are a
near-chaotic function of the pixels. The attacker learns the way back instead, in the spirit
of "learning to invert" attacks (Wu et al., UAI 2023): it runs the same first step (the global
weights it sent, train mode, the federation's augmentation) on pairs of public faces,
records the same readings, and fits a ridge regression from them to the face-space
(principal component) coefficients of the first face of the pair. Applied to the real
update's readings it gives each read image the face the public data says goes with them;
with no information it would give the mean public face, the prior-only guess.

The attacker needs no head and no loss: the readings depend only on the backbone and the
images. Pure torch and numpy; the caller sets the thread count.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from facepp.errors import ConfigError
from facepp.model.augment import AugmentConfig, augment_batch
from facepp.vision.align import to_tensor
from attacks.feature_read import gdc_tail, read_features
from attacks.inversion import state_views

#: Ridge penalties tried; the one with the least error on held-out public faces is used.
PENALTIES: tuple[float, ...] = (1e2, 1e3, 1e4, 1e5)


def _norms(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def read_statistics(model: nn.Module, update: np.ndarray) -> np.ndarray:
    """Every BatchNorm's batch mean and unbiased variance in the step, read off ``update``:
    (2 x BatchNorm channels,) in module order."""
    delta, state = state_views(model, update), model.state_dict()
    parts = []
    for name, norm in _norms(model):
        momentum = float(norm.momentum or 0.1)
        for kind in ("running_mean", "running_var"):
            parts.append(state[f"{name}.{kind}"] + delta[f"{name}.{kind}"] / momentum)
    return torch.cat(parts).numpy().astype(np.float64)


class StepReadings:
    """What a first step on two images would put in the update: called with the (2, 3, S, S)
    images, returns (the statistics as :func:`read_statistics` reads them, (2, C) GDC features),
    from a train-mode forward of a copy of ``model``.

    Raises:
        ConfigError: the model does not end in the GDC tail.
    """

    def __init__(self, model: nn.Module) -> None:
        gdc_tail(model)
        self.model = copy.deepcopy(model).train()
        self.names = [name for name, _ in _norms(self.model)]
        self.stats: dict[str, torch.Tensor] = {}
        self.features: list[torch.Tensor] = []
        for name, norm in _norms(self.model):
            norm.register_forward_hook(lambda _m, inputs, _out, name=name: self._record(name, inputs[0]))
        getattr(self.model, "gdc")[0].register_forward_hook(lambda _m, _i, out: self.features.append(out.flatten(1)))

    def _record(self, name: str, x: torch.Tensor) -> None:
        dims = [0, *range(2, x.dim())]
        self.stats[name] = torch.cat([x.mean(dims), x.var(dims, unbiased=True)])

    def __call__(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        self.stats.clear()
        self.features.clear()
        with torch.no_grad():
            self.model.forward_raw(images)  # type: ignore[operator]
        return torch.cat([self.stats[n] for n in self.names]).numpy().astype(np.float64), self.features[0].numpy().astype(np.float64)


def _rows(stats: np.ndarray, features: np.ndarray) -> np.ndarray:
    """(2, D) regression inputs, one per image: the shared statistics, its own features, the other's."""
    return np.stack([np.concatenate([stats, features[0], features[1]]), np.concatenate([stats, features[1], features[0]])])


def _ridge(a: np.ndarray, b: np.ndarray, penalty: float) -> np.ndarray:
    """(D, K) ridge solution of ``a @ w ~ b``, in the dual form when there are fewer rows than columns."""
    if len(a) < a.shape[1]:
        return a.T @ np.linalg.solve(a @ a.T + penalty * np.eye(len(a)), b)
    return np.linalg.solve(a.T @ a + penalty * np.eye(a.shape[1]), a.T @ b)


class LearnedInversion:
    """A map from an update's readings to the two faces of its step, learned on public faces.

    Args:
        model: The backbone at the global weights the updates start from (not modified).
        public: (M, S, S, 3) uint8 public faces (other people): the attacker's prior.
        pairs: Public pairs the map is learned from.
        components: Face-space dimensions predicted.
        augment: The federation's augmentation, applied to the public pairs as the victim applies it.
        seed: Seeds the pairs and their augmentation.
        progress: Show a progress bar.

    Raises:
        ConfigError: fewer than 5 public faces or 10 pairs, or a model without the GDC tail.
    """

    def __init__(self, model: nn.Module, public: np.ndarray, *, pairs: int = 1000, components: int = 40,
                 augment: AugmentConfig | None = None, seed: int = 0, progress: bool = False) -> None:
        if len(public) < 5 or pairs < 10:
            raise ConfigError(f"learned inversion needs at least 5 public faces and 10 pairs, got {len(public)} and {pairs}")
        step = StepReadings(model)
        self.model, self.shape = model, public.shape[1:]
        flat = public.reshape(len(public), -1).astype(np.float64) / 127.5 - 1.0
        self.mean = flat.mean(axis=0)
        self.basis = np.linalg.svd(flat - self.mean, full_matrices=False)[2][:components]
        coefficients = (flat - self.mean) @ self.basis.T
        rng = np.random.default_rng(seed)
        generator = torch.Generator().manual_seed(seed)
        images = to_tensor(public)
        index = np.stack([rng.choice(len(public), size=2, replace=False) for _ in range(pairs)])
        rows = []
        for i, j in tqdm(index, desc="simulated steps", unit="pair", leave=False, disable=not progress, mininterval=2.0):
            pair = images[[int(i), int(j)]]
            if augment is not None:
                pair = augment_batch(pair, augment, generator)
            rows.append(_rows(*step(pair))[0])
        inputs, outputs = np.stack(rows), coefficients[index[:, 0]]
        self.centre, self.scale = inputs.mean(axis=0), inputs.std(axis=0) + 1e-8
        inputs = (inputs - self.centre) / self.scale
        held = np.isin(index[:, 0], rng.choice(len(public), size=len(public) // 5, replace=False))
        errors = [float(np.mean((inputs[held] @ _ridge(inputs[~held], outputs[~held], p) - outputs[held]) ** 2))
                  for p in PENALTIES]
        self.weights = _ridge(inputs, outputs, PENALTIES[int(np.argmin(errors))])

    def __call__(self, update: np.ndarray) -> np.ndarray:
        """(2, S, S, 3) uint8 faces of ``update``'s step, in the order of
        :func:`attacks.feature_read.read_features`'s rows.

        Raises:
            ConfigError: the update does not fit the model.
        """
        readings = _rows(read_statistics(self.model, update), read_features(self.model, update).numpy().astype(np.float64))
        faces = self.mean + (((readings - self.centre) / self.scale) @ self.weights) @ self.basis
        faces = np.nan_to_num(faces, nan=0.0, posinf=1.0, neginf=-1.0)  # garbage readings: any valid image
        return ((faces + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8).reshape(2, *self.shape)
