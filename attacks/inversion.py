"""Gradient inversion: rebuild a participant's training faces from the model update it sends.

The attacker holds the global backbone ``W`` it sent and an update ``U`` (``W_local - W``
as the participant returned it, or some view of it) and looks for a dummy batch whose
gradient points the way the update does (a descent step moves against the gradient).

* ``dlg`` (Zhu et al., NeurIPS 2019): squared distance between the dummy gradient and
  ``-U``, no image prior, unknowns initialised at random.
* ``idlg`` (Zhao et al., 2020): DLG whose output-side unknowns start where the last
  layer's update puts them (read analytically, as iDLG reads the label).
* ``geiping`` (Geiping et al., NeurIPS 2020): 1 - cosine similarity between the dummy
  gradient and ``-U`` plus a total-variation prior, signed Adam steps, pixels boxed to
  the image range.

The participant's margin head never leaves it, so the loss is unknown to the attacker.
Whatever the head and the loss, the backbone gradient of a batch is
``d/dW sum_i <raw_i, v_i>`` with ``v_i`` the loss gradient at image ``i``'s raw embedding;
each dummy image therefore carries a free ``v_i`` that the attack optimises with it (the
role DLG's dummy labels play). The embedding layer ends in a BatchNorm whose bias gradient
is ``sum_i v_i``: that is the analytic start of ``idlg`` and ``geiping``.

Only trainable parameters are matched; the BatchNorm running statistics the update also
carries are what :mod:`attacks.feature_read` reads. Pure torch; the caller sets the thread count.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from facepp.errors import ConfigError

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("dlg", "idlg", "geiping")


@dataclass(frozen=True)
class InversionConfig:
    """Attack hyper-parameters.

    Attributes:
        method: ``dlg``, ``idlg`` or ``geiping`` (see the module docstring).
        iterations: Optimiser steps.
        lr: Adam step size on the pixels (images live in [-1, 1]).
        tv_weight: Weight of the total-variation prior (``geiping`` only).
        seed: Seed of the dummy batch.
    """

    method: str = "geiping"
    iterations: int = 300
    lr: float = 0.1
    tv_weight: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown attack {self.method!r}, expected one of {list(METHODS)}")
        if self.iterations < 1 or self.lr <= 0 or self.tv_weight < 0:
            raise ConfigError(f"need iterations >= 1, lr > 0, tv_weight >= 0; got {self.iterations}, {self.lr}, {self.tv_weight}")


def state_views(model: nn.Module, flat: np.ndarray) -> dict[str, torch.Tensor]:
    """Split a flat federated vector (parameters and BatchNorm statistics, state-dict order)
    into tensors named like the model's floating-point state.

    Raises:
        ConfigError: ``flat`` does not have the model's federated length.
    """
    tensors = [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]
    total = sum(v.numel() for _, v in tensors)
    if flat.size != total:
        raise ConfigError(f"an update of {flat.size} values does not fit this model ({total} federated values)")
    views, offset = {}, 0
    source = torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32))
    for name, v in tensors:
        views[name] = source[offset : offset + v.numel()].reshape(v.shape)
        offset += v.numel()
    return views


def parameter_views(model: nn.Module, flat: np.ndarray) -> dict[str, torch.Tensor]:
    """:func:`state_views` restricted to the model's trainable parameters."""
    trainable = {name for name, _ in model.named_parameters()}
    return {k: v for k, v in state_views(model, flat).items() if k in trainable}


def _norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """L2 norm of tensors taken as one vector."""
    return torch.sqrt(torch.stack([(t * t).sum() for t in tensors]).sum())


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (anisotropic TV)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def _last_bias(model: nn.Module) -> str:
    """Name of the last bias parameter (the embedding BatchNorm's)."""
    names = [name for name, _ in model.named_parameters() if name.endswith("bias")]
    if not names:
        raise ConfigError("the model has no bias parameter to read the output gradient from")
    return names[-1]


def invert(
    model: nn.Module,
    update: np.ndarray,
    *,
    batch: int,
    config: InversionConfig,
    mask: np.ndarray | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Reconstruct ``batch`` images from a model update.

    Args:
        model: The backbone at the global weights the update started from (not modified).
        update: (P,) flat update ``W_local - W`` in federated order.
        batch: How many images the participant trained on (the attacker's guess of it).
        config: The attack.
        mask: (P,) bool: the coordinates the attacker was given (a top-k view); None: all.
        progress: Show a progress bar.

    Returns:
        (batch, 3, S, S) float32 images in [-1, 1].
    """
    model = copy.deepcopy(model).train()  # the participant's BatchNorms use batch statistics
    params = dict(model.named_parameters())
    targets = {k: -v for k, v in parameter_views(model, update).items()}
    if mask is not None:
        masks = {k: v.bool() for k, v in parameter_views(model, mask.astype(np.float32)).items()}
        kept = [k for k in targets if bool(masks[k].any())]
        targets = {k: targets[k][masks[k]] for k in kept}
    else:
        masks = {}
    names = list(targets)
    size, dim = int(getattr(model, "input_size")), int(getattr(model, "embedding_dim"))
    generator = torch.Generator().manual_seed(config.seed)
    x = torch.randn(batch, 3, size, size, generator=generator).clamp_(-1, 1).requires_grad_(True)
    bias = _last_bias(model)
    if config.method == "dlg" or bias not in parameter_views(model, update):
        v0 = torch.randn(batch, dim, generator=generator)
    else:
        v0 = (-parameter_views(model, update)[bias]).expand(batch, dim) / batch
        v0 = v0 / v0.std().clamp_min(1e-12) + 0.01 * torch.randn(batch, dim, generator=generator)
    v = v0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x, v], lr=config.lr)
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=[int(config.iterations * f) for f in (0.375, 0.625, 0.875)], gamma=0.1)
    # The attacker knows neither the learning rate nor the loss scale: the target is rescaled
    # to the size of the first dummy gradient (cosine matching ignores scale anyway).
    first = torch.autograd.grad((model.forward_raw(x) * v).sum(), [params[k] for k in names])  # type: ignore[operator]
    scale = _norm([g[masks[k]] if masks else g for g, k in zip(first, names)])
    target_norm = _norm(list(targets.values()))
    targets = {k: t * (scale / target_norm) for k, t in targets.items()}
    target_norm = scale
    bar = tqdm(range(config.iterations), desc=f"{config.method} inversion", unit="step", leave=False,
               disable=not progress, mininterval=2.0)
    for step in bar:
        optimizer.zero_grad(set_to_none=True)
        raw = model.forward_raw(x)  # type: ignore[operator]
        grads = torch.autograd.grad((raw * v).sum(), [params[k] for k in names], create_graph=True)
        if masks:
            grads = tuple(g[masks[k]] for g, k in zip(grads, names))
        if config.method == "geiping":
            dot = sum((g * targets[k]).sum() for g, k in zip(grads, names))
            norm = _norm(list(grads))
            loss = 1 - dot / (norm * target_norm + 1e-12) + config.tv_weight * total_variation(x)
        else:
            loss = sum(((g - targets[k]) ** 2).sum() for g, k in zip(grads, names)) / target_norm**2
        loss.backward()
        if config.method == "geiping":  # signed gradients, as Geiping et al.
            for tensor in (x, v):
                if tensor.grad is not None:
                    tensor.grad.sign_()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            x.clamp_(-1, 1)
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        if step % max(1, config.iterations // 10) == 0:
            log.debug("step %d: loss %.5f", step, float(loss.detach()))
    return x.detach()
