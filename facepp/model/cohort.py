"""Adaptive S-norm: cosine scores normalised by each face's similarity to a cohort of strangers.

A raw cosine does not mean the same for every face: a face in a crowded part of the
embedding space scores high against many strangers, so one global threshold is either
too strict for some people or too lax for others, and the low-FAR operating points pay
most. Adaptive S-norm (Sturim & Reynolds, ICASSP 2005; Matejka et al., Interspeech
2017) measures each face's neighbourhood: the mean ``mu`` and standard deviation
``sigma`` of its ``top_k`` highest similarities to a *cohort*, embeddings of people who
are neither enrolled nor probed. A pair ``a, b`` with cosine ``s`` then scores::

    z = ((s - mu_a) / sigma_a + (s - mu_b) / sigma_b) / 2

The cohort is made by the weights that score, so a checkpoint carries it beside them
(:mod:`facepp.model.checkpoint`); a new model (training, fine-tuning, reduction) has
none until :func:`attach_cohort` embeds one. Thresholds calibrated on raw cosines do not
hold for ``z``: attaching a cohort drops them. In the terminal, the probe's side is
computed at each query and the template's at enrolment, both in the trusted process.
Example::

    facepp cohort --data $FACEPP_DATA/lfw --exclude-pairs $FACEPP_DATA/lfw/pairsDevTest.txt --out model.pt
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from facepp.errors import CheckpointError, ConfigError, DatasetError
from facepp.model.checkpoint import CALIBRATION_KEYS, load_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)

DEFAULT_TOP_K = 50
MIN_SIGMA = 1e-6  # a face whose top-k similarities are all equal would divide by zero
_ROWS = 1024  # faces scored against the cohort at once (bounds memory to rows x cohort size)


@dataclass(frozen=True)
class Cohort:
    """Unit-norm cohort embeddings and how many nearest ones describe a face.

    Raises:
        ConfigError: not a non-empty (C, D) array of finite values, or ``top_k`` outside ``1..C``.
    """

    vectors: npt.NDArray[np.float32]
    top_k: int = DEFAULT_TOP_K

    def __post_init__(self) -> None:
        v = np.asarray(self.vectors, dtype=np.float32)
        if v.ndim != 2 or not v.size or not np.isfinite(v).all():
            raise ConfigError(f"a cohort is a non-empty (C, D) array of finite values, got shape {v.shape}")
        if not 1 <= self.top_k <= len(v):
            raise ConfigError(f"cohort top_k must be in 1..{len(v)} (the cohort size), got {self.top_k}")
        object.__setattr__(self, "vectors", v)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def stats(self, embeddings: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(N, 2) mean and standard deviation of each unit embedding's ``top_k`` cohort similarities.

        Raises:
            ConfigError: embeddings of another dimension.
        """
        x = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if x.shape[1] != self.dim:
            raise ConfigError(f"embeddings are {x.shape[1]}-d but the cohort is {self.dim}-d")
        out = np.empty((len(x), 2))
        for start in range(0, len(x), _ROWS):
            sims = x[start:start + _ROWS] @ self.vectors.T
            top = -np.partition(-sims, self.top_k - 1, axis=1)[:, :self.top_k].astype(np.float64)
            out[start:start + _ROWS] = np.stack([top.mean(1), np.maximum(top.std(1), MIN_SIGMA)], axis=1)
        return out


def s_norm(scores: npt.ArrayLike, stats_a: npt.ArrayLike, stats_b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Adaptive S-norm of cosine ``scores`` between faces with cohort stats ``stats_a`` and ``stats_b``
    (each (N, 2) or (2,), from :meth:`Cohort.stats`)."""
    s = np.asarray(scores, dtype=np.float64)
    a, b = np.asarray(stats_a, dtype=np.float64), np.asarray(stats_b, dtype=np.float64)
    return 0.5 * ((s - a[..., 0]) / a[..., 1] + (s - b[..., 0]) / b[..., 1])


def cohort_of(payload: dict[str, Any]) -> Cohort | None:
    """The cohort of a loaded checkpoint (:func:`facepp.model.checkpoint.load_checkpoint`), if it has one.

    Raises:
        CheckpointError: a cohort tensor without its metadata record, or an unusable one.
    """
    tensor = payload.get("cohort")
    if tensor is None:
        return None
    record = payload["metadata"].get("cohort")
    if not isinstance(record, dict) or "top_k" not in record:
        raise CheckpointError("the checkpoint holds cohort embeddings but no cohort metadata")
    try:
        cohort = Cohort(tensor.float().numpy(), int(record["top_k"]))
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"unusable cohort: {exc}") from None
    if cohort.dim != int(payload["metadata"].get("embedding_dim", cohort.dim)):
        raise CheckpointError(f"the cohort is {cohort.dim}-d but the model is {payload['metadata']['embedding_dim']}-d")
    return cohort


def one_image_per_identity(paths: list[Path]) -> list[Path]:
    """The first image (in sorted order) of each identity folder: a cohort of distinct people."""
    first: dict[str, Path] = {}
    for path in sorted(paths):
        first.setdefault(path.parent.name, path)
    return [first[name] for name in sorted(first)]


def attach_cohort(source: str | Path, out: str | Path, *, data: str | Path, exclude_pairs: tuple[Path, ...] = (),
                  top_k: int = DEFAULT_TOP_K, cache_dir: Path | None = None, num_threads: int | None = None
                  ) -> dict[str, Any]:
    """Write ``source`` to ``out`` with a cohort: one image of each training identity of ``data``,
    embedded by ``source``'s own inference recipe. Returns the ``cohort`` metadata record.

    The identities of the ``exclude_pairs`` files and the model's ``validation_identities``
    are left out, so neither test nor validation people are in the cohort. The thresholds
    do not carry over: calibrate ``out`` on the validation split.

    Raises:
        ConfigError: ``top_k`` outside ``1..`` cohort size.
        CheckpointError, DatasetError: unusable inputs.
    """
    from facepp.model.embedder import Embedder
    from facepp.model.recipe import IdentitySelection, select_training_set

    payload = load_checkpoint(source)
    meta = payload["metadata"]
    validation = tuple(meta.get("validation_identities") or ())
    subset = select_training_set(data, IdentitySelection(exclude_pairs=exclude_pairs, exclude=validation))
    embedder = Embedder.from_checkpoint(source, num_threads=num_threads).for_dataset(subset.layout)
    paths = one_image_per_identity([s.path for s in subset.samples])
    if not 1 <= top_k <= len(paths):
        raise ConfigError(f"cohort top_k must be in 1..{len(paths)} (the cohort size), got {top_k}")
    crops, ok = embedder.crops_of(paths, cache_dir=cache_dir, progress=True)
    if not ok.any():
        raise DatasetError(f"none of the {len(paths)} cohort images of {data} could be read")
    cohort = Cohort(embedder.embed_crops(crops[ok]), top_k)
    record = {"top_k": top_k, "images": len(cohort.vectors), "identities": len(cohort.vectors),
              "selection": "the first image of each training identity", "dataset": Path(data).name,
              "excluded_pairs": [Path(p).name for p in exclude_pairs],
              "excluded_validation_identities": len(validation), "source_digest": payload["digest"]}
    new_meta = {k: v for k, v in meta.items() if k not in CALIBRATION_KEYS}
    new_meta["cohort"] = record
    save_checkpoint(out, model_state=payload["model"], metadata=new_meta,
                    cohort=torch.from_numpy(cohort.vectors).to(torch.float16))
    calibrate = f"--data {data} --validation" if validation else "--data DATA --identities ..."
    logger.info("cohort of %d people (top %d) attached; wrote %s (calibrate its threshold: facepp evaluate --model %s "
                "%s --cross-impostors --calibrate-far F)", len(cohort.vectors), top_k, out, out, calibrate)
    return record
