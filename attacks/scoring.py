"""How well an attack did: PSNR and SSIM (scikit-image), attack success by facepp's own model, figures.

Attack success is the number a privacy officer cares about: the share of reconstructions
that facepp's model (the shipped one unless another is given) matches to the original
person, that is whose score against the embedding of another photo of that person (their
enrolment photo) reaches the model's threshold calibrated at FAR 1e-3. The score is the
one the terminal decides on (:meth:`facepp.model.embedder.Embedder.score`): the cosine,
S-normalised when the model carries a cohort.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from facepp.errors import CheckpointError
from facepp.model.embedder import Embedder
from facepp.models import model_or_shipped


def to_images(x: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) float in [-1, 1] -> (N, S, S, 3) uint8 RGB."""
    return ((x.detach().permute(0, 2, 3, 1).numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)


def image_quality(originals: np.ndarray, reconstructions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image SSIM and PSNR (dB) of uint8 RGB images of the same size."""
    ssim = [structural_similarity(o, r, channel_axis=-1, data_range=255) for o, r in zip(originals, reconstructions)]
    psnr = [peak_signal_noise_ratio(o, r, data_range=255) for o, r in zip(originals, reconstructions)]
    return np.asarray(ssim, dtype=np.float64), np.minimum(np.asarray(psnr, dtype=np.float64), 99.0)


class Judge:
    """facepp's model deciding whether a reconstruction is the original person.

    Args:
        model: Checkpoint (None: the shipped model).
        threshold: Decision threshold (None: the checkpoint's, calibrated at FAR 1e-3).

    Raises:
        CheckpointError: the checkpoint carries no calibrated threshold and none is given.
    """

    def __init__(self, model: Path | None = None, *, threshold: float | None = None) -> None:
        self.embedder = Embedder.from_checkpoint(model_or_shipped(model))
        value = threshold if threshold is not None else self.embedder.threshold
        if value is None:
            raise CheckpointError("the judging model has no calibrated threshold: run facepp evaluate --calibrate-far 0.001")
        self.threshold = float(value)
        self.size = int(self.embedder.metadata["input_size"])

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(N, D) embeddings of crops of any square size (resized to the model's input)."""
        if images.shape[1] != self.size:
            images = np.stack([cv2.resize(im, (self.size, self.size), interpolation=cv2.INTER_LINEAR) for im in images])
        return self.embedder.embed_crops(images)

    def scores(self, reconstructions: np.ndarray, references: np.ndarray) -> np.ndarray:
        """The score of each reconstruction against the reference photo of its person."""
        return self.embedder.score(self.embed(reconstructions), self.embed(references))


def summarise(originals: np.ndarray, reconstructions: np.ndarray, references: np.ndarray, judge: Judge,
              **extra: Any) -> dict[str, Any]:
    """The numbers of one view: mean SSIM and PSNR against the originals and the attack success rate."""
    ssim, psnr = image_quality(originals, reconstructions)
    scores = judge.scores(reconstructions, references)
    return {"ssim": float(ssim.mean()), "psnr": float(psnr.mean()),
            "attack_success": float(np.mean(scores >= judge.threshold)), "images": len(originals),
            "mean_match_score": float(scores.mean()), **extra}


def template_summary(templates: np.ndarray, references: np.ndarray, judge: Judge) -> dict[str, Any]:
    """Attack success of templates (not images): the share the judge matches to the reference
    photo of their person at its threshold, and the mean match score."""
    scores = judge.embedder.score(templates, judge.embed(references))
    return {"attack_success": float(np.mean(scores >= judge.threshold)), "mean_match_score": float(scores.mean())}


def prior_guesses(prior: np.ndarray, count: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """What an attacker guesses from the prior alone, ``count`` images each: the mean face of
    the public images (the best guess under squared error) and public faces drawn at random."""
    rng = np.random.default_rng(seed)
    mean = prior.astype(np.float64).mean(axis=0).round().astype(np.uint8)
    return {"mean_face": np.repeat(mean[None], count, axis=0),
            "random_face": prior[rng.choice(len(prior), size=count, replace=len(prior) < count)]}


def prior_only(originals: np.ndarray, references: np.ndarray, prior: np.ndarray, judge: Judge) -> dict[str, Any]:
    """The prior-only level: each guess of :func:`prior_guesses` scored like an attack, and
    ``success``, the best success rate among them."""
    guesses = {name: summarise(originals, images, references, judge)
               for name, images in prior_guesses(prior, len(originals)).items()}
    return {**guesses, "success": max(g["attack_success"] for g in guesses.values()),
            "ssim": max(g["ssim"] for g in guesses.values()), "psnr": max(g["psnr"] for g in guesses.values())}


def save_grid(path: Path, originals: np.ndarray, rows: Mapping[str, np.ndarray]) -> Path:
    """A PNG grid: the originals in the first row, one row per view of reconstructions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    named = {"original": originals, **rows}
    n = len(originals)
    fig, axes = plt.subplots(len(named), n, figsize=(1.2 * n + 1.6, 1.25 * len(named)), squeeze=False)
    for r, (name, images) in enumerate(named.items()):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(images[c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_dp(path: Path, rows: Sequence[Mapping[str, Any]], *, prior_level: float) -> Path:
    """Attack success and model accuracy against the DP noise multiplier (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noise = [r["noise_multiplier"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(noise, [r["attack_success"] for r in rows], "o-", label="attack success")
    ax.plot(noise, [r["model_accuracy"] for r in rows], "s--", label="model accuracy (one DP round)")
    ax.axhline(prior_level, color="grey", lw=0.8, ls=":", label="prior-only success")
    ax.set_xscale("log")
    ax.set_xlabel("noise multiplier (aggregate noise std / clip)")
    ax.set_ylim(-0.02, 1.02)
    for r in rows:
        ax.annotate(f"eps {r['epsilon']:.3g}", (r["noise_multiplier"], r["attack_success"]), fontsize=6,
                    textcoords="offset points", xytext=(0, 6), ha="center")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
