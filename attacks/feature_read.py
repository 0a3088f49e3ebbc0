"""Read the faces of a two-image batch off a model update, exactly, without optimisation.

Every facepp backbone ends the same way (:class:`facepp.model.backbone.EmbeddingBackbone`
built on the GDC head): a global depthwise convolution ``gdc.0``, its BatchNorm ``gdc.1``,
the linear embedding layer ``embed`` and the embedding BatchNorm ``bn``. A participant
whose local step sees two images normalises each GDC channel over those two values, and
its update carries the BatchNorm running statistics along with the weights:

* ``gdc.1``'s running mean and variance move by ``momentum`` times the batch mean and
  unbiased variance of its input, so a server holding the update reads, per channel, the
  two images' GDC outputs ``mean +- sqrt(var / 2)``, without knowing which is whose;
* two values per channel normalise to ``beta +- gamma``, so the embedding layer's gradient
  is the rank-one ``dz (h_1 - h_2)^T``: the signs of the embedding layer's step (an SGD
  step or Adam's first, ``lr * sign``) say which image has the larger output in each
  channel, up to one swap of the two images.

The model's eval-mode tail turns the two feature vectors into the templates it would
compare with a photo of each person. This holds for a round's first local step on exactly
two images; more images or steps mix the statistics. A fine-tune that keeps the
statistics (``TrainConfig.freeze_bn``, as every federation fine-tune does) moves none of
them: the read then returns the running mean plus or minus one running standard deviation
per channel, signed by the embedding layer's step, a one-bit sketch of each image's
features. Pure torch.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facepp.errors import ConfigError
from attacks.inversion import state_views


def gdc_tail(model: nn.Module) -> tuple[nn.BatchNorm2d, nn.Linear, nn.BatchNorm1d]:
    gdc, embed, bn = (getattr(model, name, None) for name in ("gdc", "embed", "bn"))
    if not (isinstance(gdc, nn.Sequential) and isinstance(gdc[-1], nn.BatchNorm2d) and isinstance(embed, nn.Linear)
            and isinstance(bn, nn.BatchNorm1d)):
        raise ConfigError("the model does not end in a GDC BatchNorm, a linear embedding and a BatchNorm")
    return gdc[-1], embed, bn


def read_features(model: nn.Module, update: np.ndarray) -> torch.Tensor:
    """The two images' GDC outputs, read off ``update``.

    Args:
        model: The backbone at the global weights the update started from.
        update: (P,) flat update ``W_local - W`` in federated order.

    Returns:
        (2, C) float32: one row per image, in an order the update does not reveal.

    Raises:
        ConfigError: the update does not fit the model, or the model has no GDC tail.
    """
    norm = gdc_tail(model)[0]
    prefix = f"gdc.{len(getattr(model, 'gdc')) - 1}"
    delta, state = state_views(model, update), model.state_dict()
    momentum = float(norm.momentum or 0.1)
    mean = state[prefix + ".running_mean"] + delta[prefix + ".running_mean"] / momentum
    var = state[prefix + ".running_var"] + delta[prefix + ".running_var"] / momentum
    half = torch.sqrt(var.clamp_min(0.0) / 2.0)
    _, _, vh = torch.linalg.svd(torch.sign(-delta["embed.weight"]), full_matrices=False)
    side = torch.sign(vh[0]) * torch.sign(norm.weight.detach())
    return torch.stack([mean + side * half, mean - side * half]).float()


def templates_from_features(model: nn.Module, features: torch.Tensor) -> np.ndarray:
    """(N, C) GDC outputs -> (N, D) unit templates through the model's eval-mode tail."""
    norm, embed, bn = (copy.deepcopy(module).eval() for module in gdc_tail(model))
    with torch.no_grad():
        raw = bn(embed(norm(features[:, :, None, None]).flatten(1)))
    return F.normalize(raw, dim=1).numpy()


def batch_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(N, C) GDC outputs of a batch as the participant's train-mode forward computes them:
    what :func:`read_features` reads."""
    gdc_tail(model)
    model = copy.deepcopy(model).train()
    found: list[torch.Tensor] = []
    handle = getattr(model, "gdc")[0].register_forward_hook(lambda _m, _i, out: found.append(out.detach().flatten(1)))
    with torch.no_grad():
        model.forward_raw(images)  # type: ignore[operator]
    handle.remove()
    return found[0]


def best_order(read: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``read``'s rows in the order that best matches ``truth``'s, and their mean cosine similarity."""
    orders = [list(p) for p in itertools.permutations(range(len(read)))]
    cosines = [float(F.cosine_similarity(read[order], truth, dim=1).mean()) for order in orders]
    best = int(np.argmax(cosines))
    return read[orders[best]], cosines[best]
