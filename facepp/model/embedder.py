"""Inference API: images -> L2-normalised embeddings, from a checkpoint.

For the terminal (web app) and evaluation tooling; holds the plaintext model.
Example::

    embedder = Embedder.from_checkpoint("out/lfw_model.pt")
    vectors = embedder.embed([rgb_image])        # (1, 128) float32, unit norm
    same = embedder.score(vectors[0], other)[0] >= embedder.threshold
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from facepp.data.images import read_image
from facepp.errors import CheckpointError, ConfigError
from facepp.model.backbone import EmbeddingBackbone, build_backbone, for_inference
from facepp.model.checkpoint import load_checkpoint
from facepp.model.cohort import Cohort, cohort_of, s_norm
from facepp.vision.align import AlignedFace, FacePreprocessor, PreprocessConfig, preset_for, to_tensor
from facepp.vision.cache import preprocess_paths

logger = logging.getLogger(__name__)


class Embedder:
    """A trained backbone plus the preprocessing it expects.

    Args:
        model: Backbone mapping (N, 3, S, S) in [-1, 1] to unit-norm (N, dim); the embedder
            keeps an inference copy (BatchNorm folded) and leaves it untouched.
        preprocessing: How raw images are cropped.
        metadata: The checkpoint metadata (thresholds, training summary).
        flip_tta: Also embed the mirror image of every view and sum (more accurate, 2x cost).
            The crop scales summed are ``preprocessing.tta_scales``.
        num_threads: torch CPU threads (None: leave unchanged).
        cohort: The score-normalisation cohort made by this model (:mod:`facepp.model.cohort`);
            with one, the calibrated threshold applies to S-normalised scores.
    """

    def __init__(
        self,
        model: nn.Module,
        preprocessing: PreprocessConfig,
        *,
        metadata: dict[str, Any] | None = None,
        flip_tta: bool = True,
        num_threads: int | None = None,
        cohort: Cohort | None = None,
    ) -> None:
        self.model = for_inference(model)
        self.cohort = cohort
        self.preprocessor = FacePreprocessor(preprocessing)
        self.metadata = dict(metadata or {})
        self.flip_tta = flip_tta
        if num_threads is not None:
            torch.set_num_threads(num_threads)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        preprocessing: PreprocessConfig | None = None,
        flip_tta: bool = True,
        num_threads: int | None = None,
    ) -> Embedder:
        """Load a checkpoint safely (see :func:`facepp.model.checkpoint.load_checkpoint`).

        Args:
            path: Checkpoint file.
            preprocessing: Override the stored inference preprocessing (e.g. ``center`` mode for
                an aligned dataset). Its input size must match the model's.
            flip_tta: Mirror-averaging at inference.
            num_threads: torch CPU threads.

        Raises:
            CheckpointError: missing/corrupt/tampered file or incompatible weights.
            ConfigError: preprocessing input size differs from the model's.
        """
        payload = load_checkpoint(path)
        meta = payload["metadata"]
        try:
            model = build_backbone(meta["architecture"], embedding_dim=int(meta["embedding_dim"]), input_size=int(meta["input_size"]))
            model.load_state_dict(payload["model"])
            stored = PreprocessConfig.from_dict(meta.get("inference_preprocessing") or meta["preprocessing"])
        except (KeyError, RuntimeError, ConfigError, TypeError) as exc:
            raise CheckpointError(f"{Path(path).name}: incompatible checkpoint ({type(exc).__name__}: {exc})") from None
        chosen = preprocessing or stored
        if chosen.input_size != int(meta["input_size"]):
            raise ConfigError(f"preprocessing input_size {chosen.input_size} != model input {meta['input_size']}")
        return cls(model, chosen, metadata=meta, flip_tta=flip_tta, num_threads=num_threads, cohort=cohort_of(payload))

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 hex of what decides the embeddings and their scores: the (inference) weights,
        the preprocessing with its test-time scales, the mirror flag and the cohort, not the
        thresholds. Equal fingerprints embed every image alike and score every pair alike."""
        config = {"preprocessing": self.preprocessor.config.to_dict(), "flip_tta": self.flip_tta}
        h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        if self.cohort is not None:
            h.update(f"cohort|{self.cohort.top_k}|{self.cohort.vectors.shape}\n".encode())
            h.update(self.cohort.vectors.tobytes())
        for name, tensor in sorted(self.model.state_dict().items()):
            h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    @property
    def embedding_dim(self) -> int:
        return int(self.metadata.get("embedding_dim", 0)) or int(getattr(self.model, "embedding_dim", 0))

    @property
    def threshold(self) -> float | None:
        """Decision threshold calibrated on evaluation data (None if never calibrated): on
        cosine similarities, or on S-normalised scores when the model has a cohort."""
        value = self.metadata.get("threshold")
        return None if value is None else float(value)

    def score(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(N,) scores the threshold applies to, between unit embeddings ``a`` and ``b`` ((N, dim)
        or (dim,), rows paired): cosines, S-normalised with each side's cohort stats when the
        model carries a cohort (:mod:`facepp.model.cohort`)."""
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        cosines = np.asarray(np.sum(a * b, axis=1, dtype=np.float64))
        return cosines if self.cohort is None else s_norm(cosines, self.cohort.stats(a), self.cohort.stats(b))

    def align(self, image: np.ndarray) -> AlignedFace:
        """Detect/crop one (H, W, 3) uint8 RGB image (raises NoFaceError / ImageError)."""
        return self.preprocessor.align(image)

    @torch.inference_mode()
    def view_outputs(self, crops: np.ndarray, *, batch_size: int = 256, raw: bool = False) -> torch.Tensor:
        """The network's output for every view of every face, before views are combined.

        Args:
            crops: (N, S, S, 3) uint8 RGB, or (N, K, S, S, 3): K views of each face
                (:attr:`AlignedFace.views`).
            batch_size: Faces per forward pass.
            raw: Un-normalised outputs (``forward_raw``) instead of unit-norm ones.

        Returns:
            (N, V, dim) float32: the K views, then (with ``flip_tta``) their mirror images.
        """
        crops = np.asarray(crops)
        views = crops if crops.ndim == 5 else crops[:, None]
        backbone = cast(EmbeddingBackbone, self.model)
        forward = backbone.forward_raw if raw else backbone
        out = [torch.zeros((0, views.shape[1] * (1 + self.flip_tta), self.embedding_dim))]
        for start in range(0, len(views), batch_size):
            chunk = views[start : start + batch_size]
            n, k = chunk.shape[:2]
            x = to_tensor(chunk.reshape(n * k, *chunk.shape[2:]))
            if self.flip_tta:  # one forward pass over the views and their mirror images
                x = torch.cat([x, torch.flip(x, dims=[3])])
            e = forward(x).reshape(-1, n, k, self.embedding_dim)  # (mirror, face, view, dim)
            out.append(e.permute(1, 0, 2, 3).reshape(n, -1, self.embedding_dim).float())
        return torch.cat(out)

    def embed_crops(self, crops: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Embed already aligned crops: the sum of the unit-norm outputs of every view, normalised.

        Args:
            crops: (N, S, S, 3) uint8 RGB, or (N, K, S, S, 3): K views of each face
                (:attr:`AlignedFace.views`) whose embeddings are summed.
            batch_size: Faces per forward pass.

        Returns:
            (N, dim) float32, L2-normalised.
        """
        summed = self.view_outputs(crops, batch_size=batch_size).sum(dim=1)
        return torch.nn.functional.normalize(summed, dim=1).numpy()

    def for_dataset(self, layout: str, *, mode: str | None = None, tta_scales: Sequence[float] | None = None) -> Embedder:
        """This model with the crops a curated dataset of ``layout`` needs (evaluation, fitting).

        Args:
            layout: Dataset layout (``lfw``, ``orl``, ...), whose preset gives the crop geometry.
            mode: ``landmarks`` / ``detect`` / ``center`` (None: how the model's training crops were made).
            tta_scales: Test-time crop scales (None: this embedder's).

        Every image is kept: one without a detected face falls back to the centre crop.
        """
        config = self.preprocessor.config
        trained_mode = self.metadata.get("preprocessing", {}).get("mode")
        preset = preset_for(layout, input_size=config.input_size, mode=mode or trained_mode)
        fallback = preset.fallback_center or preset.mode != "center"
        scales = tuple(tta_scales) if tta_scales is not None else config.tta_scales
        preset = PreprocessConfig.from_dict({**preset.to_dict(), "tta_scales": scales, "fallback_center": fallback})
        return Embedder(self.model, preset, metadata=self.metadata, flip_tta=self.flip_tta, cohort=self.cohort)

    def crops_of(self, paths: Sequence[Path], *, cache_dir: Path | None = None, progress: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Every test-time view of each image file, each view's crops cached on their own.

        Returns:
            ((N, K, S, S, 3) uint8 crops, (N,) bool ``ok``): a file the preprocessor could
            not handle has ``ok=False`` and black crops.
        """
        detector = self.preprocessor.detector
        views, ok = [], np.ones(len(paths), dtype=bool)
        for view in self.preprocessor.config.views():
            crops, view_ok = preprocess_paths(paths, FacePreprocessor(view, detector), cache_dir=cache_dir, progress=progress)
            views.append(crops)
            ok &= view_ok
        return np.stack(views, axis=1), ok

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Detect, align and embed raw images.

        Args:
            images: (H, W, 3) uint8 RGB arrays.

        Returns:
            (N, dim) float32, L2-normalised.

        Raises:
            NoFaceError: an image holds no detectable face.
            ImageError: an array is not an (H, W, 3) uint8 image.
        """
        crops = np.stack([self.align(image).views for image in images]) if len(images) else np.zeros((0, 1, 1, 3), np.uint8)
        return self.embed_crops(crops)

    def embed_files(self, paths: Sequence[str | Path]) -> np.ndarray:
        """:meth:`embed` on image files (read with the safe decoder; raises ImageError)."""
        return self.embed([read_image(p) for p in paths])

