"""Shorter embeddings for a trained model: a principal subspace of its embeddings, folded into its last layers.

Every facepp backbone ends in ``embed`` (Linear) and ``bn`` (BatchNorm1d), then L2
normalisation, and the embedder sums the unit-norm embeddings of an image's views. The
projection ``P`` onto the top ``d`` eigenvectors of the embeddings' second moment (PCA
without centring: cosine similarity compares directions from the origin) commutes with
that normalisation up to scale, and in eval mode ``P bn(embed(x))`` is affine, so it
folds into a new ``Linear(C -> d)`` and a ``BatchNorm1d(d)`` with identity statistics
whose bias carries the old one. The result is a plain checkpoint of embedding dimension
``d`` that loads wherever a model loads, and each view's embedding is the normalised
projection of the source model's, up to float rounding.

On the shipped model, 64 of the 128 dimensions keep 99.9% of the second moment and the
validation accuracy; centring first cost 0.6 points at any dimension, so it is not done
(docs/face_pipeline.md). A 64-d template takes half the encrypted storage. Example::

    facepp reduce --dim 64 --data $FACEPP_DATA/lfw --exclude-pairs $FACEPP_DATA/lfw/pairsDevTest.txt --out m64.pt
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from facepp.errors import ConfigError, DatasetError
from facepp.model.backbone import EmbeddingBackbone, build_backbone, count_parameters
from facepp.model.checkpoint import CALIBRATION_KEYS, load_checkpoint, save_checkpoint
from facepp.model.embedder import Embedder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Projection:
    """An orthogonal projection onto the principal subspace of unit-norm embeddings.

    Attributes:
        components: (d, C) orthonormal rows, the top eigenvectors of the second moment first.
        explained_variance: The fraction of the second moment the ``d`` components keep: the
            mean squared length of a projected unit embedding.
        samples: Embeddings fitted (faces x views).
    """

    components: np.ndarray
    explained_variance: float
    samples: int

    @property
    def dim(self) -> int:
        return int(self.components.shape[0])

    def apply(self, embeddings: np.ndarray) -> np.ndarray:
        """(..., C) embeddings -> (..., d) projected ones (not normalised)."""
        return np.asarray(embeddings, dtype=np.float64) @ self.components.T


def fit_projection(embeddings: np.ndarray, dim: int) -> Projection:
    """Uncentred PCA (SVD in float64) of (M, C) unit-norm embeddings, keeping ``dim`` components.

    Raises:
        ConfigError: ``dim`` outside ``[1, C]`` or no more embeddings than ``dim``.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or not 1 <= dim <= x.shape[1]:
        raise ConfigError(f"cannot keep {dim} principal components of {x.shape[-1]}-d embeddings")
    if len(x) <= dim:
        raise ConfigError(f"a {dim}-d projection needs more than {dim} fitted embeddings, got {len(x)}")
    _, singular, vt = np.linalg.svd(x, full_matrices=False)
    energy = singular**2
    return Projection(components=vt[:dim], explained_variance=float(energy[:dim].sum() / energy.sum()), samples=len(x))


def fold_projection(model: nn.Module, projection: Projection) -> EmbeddingBackbone:
    """An eval-mode copy of ``model`` whose ``embed`` + ``bn`` output the projection of the old ones
    (so its embeddings are the normalised projections of the old embeddings).

    Raises:
        ConfigError: the model does not end in a Linear ``embed`` and a BatchNorm1d ``bn``
            of the projection's input width.
    """
    embed, bn = getattr(model, "embed", None), getattr(model, "bn", None)
    if not isinstance(embed, nn.Linear) or not isinstance(bn, nn.BatchNorm1d):
        raise ConfigError(f"{type(model).__name__} does not end in a linear `embed` layer and a BatchNorm1d `bn` "
                          "(the GDC tail): its embedding cannot be reduced")
    if embed.out_features != projection.components.shape[1]:
        raise ConfigError(f"the projection takes {projection.components.shape[1]}-d embeddings, "
                          f"the model gives {embed.out_features}")
    if bn.running_mean is None or bn.running_var is None:
        raise ConfigError(f"{type(model).__name__}'s `bn` keeps no running statistics: "
                          "its eval-mode output is not affine")
    with torch.no_grad():
        scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).double()  # eval bn: scale * (z - mu) + beta
        weight = scale[:, None] * embed.weight.double()
        bias = bn.bias.double() - scale * bn.running_mean.double()
        if embed.bias is not None:
            bias = bias + scale * embed.bias.double()
        p = torch.from_numpy(projection.components)
        new_weight, new_bias = p @ weight, p @ bias
    reduced = cast(EmbeddingBackbone, copy.deepcopy(model).eval())
    reduced.embed = nn.Linear(embed.in_features, projection.dim, bias=False)
    reduced.bn = nn.BatchNorm1d(projection.dim, eps=bn.eps).eval()
    with torch.no_grad():
        reduced.embed.weight.copy_(new_weight.float())
        reduced.bn.weight.fill_(float(np.sqrt(1.0 + bn.eps)))  # exactly undoes the 1 / sqrt(1 + eps) of unit variance
        reduced.bn.bias.copy_(new_bias.float())
    reduced.embedding_dim = projection.dim
    return reduced


def training_embeddings(embedder: Embedder, data: str | Path, *, exclude_pairs: tuple[Path, ...] = (),
                        exclude: tuple[str, ...] = (), cache_dir: Path | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Unit-norm embeddings of every test-time view (and mirror image) of the training identities' images.

    Identities of the pairs files and ``exclude`` are left out, and so are unreadable images;
    an image without a detected face gives its centre crop, as in evaluation. Returns
    ``((M, C) embeddings, counts of identities and images)``.
    """
    from facepp.model.recipe import IdentitySelection, select_training_set

    subset = select_training_set(data, IdentitySelection(exclude_pairs=exclude_pairs, exclude=exclude))
    fitter = embedder.for_dataset(subset.layout)
    crops, ok = fitter.crops_of([s.path for s in subset.samples], cache_dir=cache_dir, progress=True)
    if not ok.any():
        raise DatasetError(f"none of the {len(ok)} training images of {data} could be read")
    embeddings = fitter.view_outputs(crops[ok]).numpy()
    return embeddings.reshape(-1, embeddings.shape[-1]), {"identities": len(subset.identities), "images": int(ok.sum())}


def reduce_checkpoint(source: str | Path, out: str | Path, *, dim: int, data: str | Path,
                      exclude_pairs: tuple[Path, ...] = (), cache_dir: Path | None = None,
                      num_threads: int | None = None) -> dict[str, Any]:
    """Write a ``dim``-d copy of the checkpoint ``source`` to ``out``; returns its ``reduction`` metadata.

    The PCA is fitted on the training identities of ``data``: every identity outside the
    ``exclude_pairs`` files and outside the source model's ``validation_identities``,
    which the reduced model keeps, so ``facepp evaluate --validation`` scores both models
    on the same held-out people. The source's calibrated thresholds do not carry over.

    Raises:
        ConfigError: ``dim`` not in ``[1, source dim)``, or a model without the GDC tail.
        CheckpointError, DatasetError: unusable inputs.
    """
    payload = load_checkpoint(source)
    meta = payload["metadata"]
    source_dim = int(meta.get("embedding_dim", 0))
    if not 1 <= dim < source_dim:
        raise ConfigError(f"--dim must be between 1 and {source_dim - 1} (the source model is {source_dim}-d), got {dim}")
    target = build_backbone(meta["architecture"], embedding_dim=dim, input_size=int(meta["input_size"]))  # refuses a bad dim now
    embedder = Embedder.from_checkpoint(source, num_threads=num_threads)
    validation = tuple(meta.get("validation_identities") or ())
    embeddings, counts = training_embeddings(embedder, data, exclude_pairs=exclude_pairs, exclude=validation,
                                             cache_dir=cache_dir)
    projection = fit_projection(embeddings, dim)
    model = fold_projection(embedder.model, projection)
    reduction = {"source_model": Path(source).name, "source_digest": payload["digest"], "source_dim": source_dim,
                 "dim": dim, "explained_variance": round(projection.explained_variance, 6),
                 "fitted_embeddings": projection.samples, "fitted_views": projection.samples // counts["images"],
                 "dataset": Path(data).name, **counts, "excluded_pairs": [Path(p).name for p in exclude_pairs],
                 "excluded_validation_identities": len(validation)}
    new_meta = {k: v for k, v in meta.items() if k not in (*CALIBRATION_KEYS, "cohort")}
    new_meta.update(embedding_dim=dim, reduction=reduction)
    # The embedder's copy has its convolutions fused with their BatchNorms: keep the source
    # weights, with the new tail.
    tail = {k: v for k, v in model.state_dict().items() if k.startswith(("embed.", "bn."))}
    state = {**{k: v for k, v in payload["model"].items() if not k.startswith(("embed.", "bn."))}, **tail}
    target.load_state_dict(state)
    new_meta["parameters"] = count_parameters(target)
    save_checkpoint(out, model_state=state, metadata=new_meta)
    calibrate = f"--data {data} --validation" if validation else "--data DATA --identities ..."
    logger.info("%d-d -> %d-d: %.2f%% of the second moment of %d embeddings kept; wrote %s (calibrate its threshold: "
                "facepp evaluate --model %s %s --calibrate-far F)", source_dim, dim,
                100 * projection.explained_variance, projection.samples, out, out, calibrate)
    return reduction

