"""Template inversion: a decoder from facepp embeddings back to face crops (after NbNet, Mai et al., TPAMI 2019).

The attacker trains the decoder on public faces with the public (shipped) model: an L1
pixel loss plus an identity loss that asks the model to embed the decoded face where the
template points (1 - cosine), so a decoded face is built to pass the matcher.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from facepp.vision.align import to_tensor

log = logging.getLogger(__name__)


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


class TemplateDecoder(nn.Module):
    """(N, dim) unit-norm templates -> (N, 3, size, size) images in [-1, 1]; ``size`` = 4 * 2**k."""

    def __init__(self, *, dim: int, size: int, width: int = 128) -> None:
        super().__init__()
        steps = int(np.log2(size // 4))
        if 4 * 2**steps != size:
            raise ValueError(f"decoder output side must be 4 * 2**k, got {size}")
        self.project = nn.Linear(dim, width * 16)
        channels = [width // 2**min(i, 2) for i in range(steps + 1)]
        self.body = nn.Sequential(*[_up(channels[i], channels[i + 1]) for i in range(steps)])
        self.head = nn.Conv2d(channels[-1], 3, 3, padding=1)
        self.width = width

    def forward(self, templates: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.project(templates), 0.2).view(-1, self.width, 4, 4)
        return torch.tanh(self.head(self.body(x)))


def train_decoder(crops: np.ndarray, templates: np.ndarray, embedder: nn.Module, *, epochs: int, batch_size: int = 32,
                  lr: float = 2e-3, identity_weight: float = 1.0, seed: int = 0, progress: bool = True) -> TemplateDecoder:
    """Fit a decoder on public (crop, template) pairs.

    Args:
        crops: (N, S, S, 3) uint8 public face crops.
        templates: (N, dim) their templates under the public model.
        embedder: The public model, (N, 3, S, S) in [-1, 1] -> (N, dim) unit norm (frozen).
        epochs: Passes over the data.
        identity_weight: Weight of the identity loss (0: pixels only).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    decoder = TemplateDecoder(dim=templates.shape[1], size=crops.shape[1])
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    for p in embedder.parameters():
        p.requires_grad_(False)
    embedder.eval()
    images, targets = to_tensor(crops), torch.from_numpy(np.asarray(templates, dtype=np.float32))
    bar = tqdm(range(epochs), desc="decoder", unit="epoch", disable=not progress, mininterval=2.0)
    for _ in bar:
        decoder.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                continue
            out = decoder(targets[idx])
            loss = F.l1_loss(out, images[idx])
            if identity_weight > 0:
                loss = loss + identity_weight * (1 - (embedder(out) * targets[idx]).sum(1)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        schedule.step()
        bar.set_postfix(loss=f"{total / len(images):.4f}")
    return decoder.eval()


@torch.no_grad()
def decode(decoder: TemplateDecoder, templates: np.ndarray) -> torch.Tensor:
    """(N, 3, S, S) images in [-1, 1] for (N, dim) templates."""
    return decoder(torch.from_numpy(np.asarray(templates, dtype=np.float32)))
