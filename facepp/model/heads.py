"""Margin-based classification heads (training only): CosFace and ArcFace, plus a registry.

A head holds one weight vector per training identity and turns raw embeddings and
labels into logits with an additive margin on the true class, fed to cross-entropy.
At inference only the backbone is used.
"""

from __future__ import annotations

import abc

import math

import torch
import torch.nn.functional as F
from torch import nn

from facepp.errors import ConfigError


class MarginHead(nn.Module, abc.ABC):
    """Base class: cosine logits ``cos(theta_j)`` between embeddings and class centres.

    Args:
        embedding_dim: Embedding size.
        num_classes: Number of training identities.
        scale: Logit scale ``s``.
        margin: Margin ``m`` (its meaning depends on the subclass).
    """

    def __init__(self, *, embedding_dim: int, num_classes: int, scale: float, margin: float) -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"a margin head needs >= 2 classes, got {num_classes}")
        if scale <= 0 or margin < 0:
            raise ConfigError(f"scale must be > 0 and margin >= 0, got s={scale}, m={margin}")
        self.scale = scale
        self.margin = margin
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, C) cosine similarities to every class centre."""
        return F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1))

    @abc.abstractmethod
    def margin_logits(self, cosine: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, C) scaled logits with the margin applied to each sample's own class."""

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits with margin, plain cosine)``; both (N, num_classes)."""
        cosine = self.cosine(embeddings)
        return self.margin_logits(cosine, labels), cosine

    @torch.no_grad()
    def imprint(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Set each class centre to the mean unit embedding of its samples (weight imprinting,
        Qi et al., CVPR 2018): a fine-tune then starts from a head that already agrees with its
        backbone, instead of pushing a random head's gradients into good features.

        Args:
            embeddings: (N, embedding_dim) embeddings of the training samples.
            labels: (N,) class labels; a class without samples keeps its centre.
        """
        sums = torch.zeros_like(self.weight).index_add_(0, labels, F.normalize(embeddings, dim=1).to(self.weight.dtype))
        seen = torch.bincount(labels, minlength=self.weight.shape[0]) > 0
        self.weight[seen] = F.normalize(sums[seen], dim=1)


class CosFace(MarginHead):
    """CosFace / AM-Softmax (Wang et al., 2018): logit ``s * (cos(theta_y) - m)``."""

    def __init__(self, *, embedding_dim: int, num_classes: int, scale: float = 32.0, margin: float = 0.35) -> None:
        super().__init__(embedding_dim=embedding_dim, num_classes=num_classes, scale=scale, margin=margin)

    def margin_logits(self, cosine: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
        return self.scale * (cosine - self.margin * one_hot)


class ArcFace(MarginHead):
    """ArcFace (Deng et al., 2019): logit ``s * cos(theta_y + m)``, with the usual
    linear fallback ``cos(theta) - m sin(m)`` past ``theta > pi - m`` to stay monotonic."""

    def __init__(self, *, embedding_dim: int, num_classes: int, scale: float = 32.0, margin: float = 0.5) -> None:
        super().__init__(embedding_dim=embedding_dim, num_classes=num_classes, scale=scale, margin=margin)

    def margin_logits(self, cosine: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos_m, sin_m = math.cos(self.margin), math.sin(self.margin)
        sine = torch.sqrt((1.0 - cosine * cosine).clamp(min=1e-7))
        phi = cosine * cos_m - sine * sin_m
        phi = torch.where(cosine > math.cos(math.pi - self.margin), phi, cosine - math.sin(math.pi - self.margin) * self.margin)
        one_hot = F.one_hot(labels, cosine.shape[1]).to(torch.bool)
        return self.scale * torch.where(one_hot, phi, cosine)


HEADS: dict[str, type[MarginHead]] = {"cosface": CosFace, "arcface": ArcFace}


def build_head(
    name: str, *, embedding_dim: int, num_classes: int, scale: float | None = None, margin: float | None = None
) -> MarginHead:
    """Instantiate a registered margin head (``scale``/``margin`` None = the head's default).

    Raises:
        ConfigError: unknown name (the message lists the choices) or bad parameters.
    """
    if name not in HEADS:
        raise ConfigError(f"unknown margin head {name!r}, expected one of {sorted(HEADS)}")
    kwargs: dict[str, float] = {}
    if scale is not None:
        kwargs["scale"] = scale
    if margin is not None:
        kwargs["margin"] = margin
    return HEADS[name](embedding_dim=embedding_dim, num_classes=num_classes, **kwargs)
