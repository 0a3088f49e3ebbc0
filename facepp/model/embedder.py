"""Inference API: images -> L2-normalised embeddings, from a checkpoint.

For the terminal (web app) and evaluation tooling; holds the plaintext model.
Example::

    embedder = Embedder.from_checkpoint("out/lfw_model.pt")
    vectors = embedder.embed([rgb_image])        # (1, 128) float32, unit norm
    same = float(vectors[0] @ other) >= embedder.threshold
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facepp.data.images import read_image
from facepp.errors import CheckpointError, ConfigError
from facepp.model.backbone import build_backbone, for_inference
from facepp.model.checkpoint import load_checkpoint
from facepp.vision.align import AlignedFace, FacePreprocessor, PreprocessConfig, to_tensor

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

    """

    def __init__(
        self,
        model: nn.Module,
        preprocessing: PreprocessConfig,
        *,
        metadata: dict[str, Any] | None = None,
        flip_tta: bool = True,
        num_threads: int | None = None,
    ) -> None:
        self.model = for_inference(model)
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
        return cls(model, chosen, metadata=meta, flip_tta=flip_tta, num_threads=num_threads)

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 hex of what decides the embeddings: the (inference) weights, the
        preprocessing with its test-time scales and the mirror flag, not the thresholds.
        Equal fingerprints embed every image alike."""
        config = {"preprocessing": self.preprocessor.config.to_dict(), "flip_tta": self.flip_tta}
        h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    @property
    def embedding_dim(self) -> int:
        return int(self.metadata.get("embedding_dim", 0)) or int(getattr(self.model, "embedding_dim", 0))

    @property
    def threshold(self) -> float | None:
        """Cosine-similarity decision threshold calibrated on evaluation data (None if never calibrated)."""
        value = self.metadata.get("threshold")
        return None if value is None else float(value)

    def align(self, image: np.ndarray) -> AlignedFace:
        """Detect/crop one (H, W, 3) uint8 RGB image (raises NoFaceError / ImageError)."""
        return self.preprocessor.align(image)

    @torch.inference_mode()
    def embed_crops(self, crops: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Embed already aligned crops.

        Args:
            crops: (N, S, S, 3) uint8 RGB, or (N, K, S, S, 3): K views of each face
                (:attr:`AlignedFace.views`) whose embeddings are summed.
            batch_size: Faces per forward pass.

        Returns:
            (N, dim) float32, L2-normalised.
        """
        crops = np.asarray(crops)
        views = crops if crops.ndim == 5 else crops[:, None]
        out = []
        for start in range(0, len(views), batch_size):
            chunk = views[start : start + batch_size]
            n, k = chunk.shape[:2]
            x = to_tensor(chunk.reshape(n * k, *chunk.shape[2:]))
            if self.flip_tta:  # one forward pass over the views and their mirror images
                x = torch.cat([x, torch.flip(x, dims=[3])])
            e = self.model(x)
            e = torch.nn.functional.normalize(e.reshape(-1, n, k, e.shape[1]).sum(dim=(0, 2)), dim=1)
            out.append(e.float().numpy())
        if not out:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

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

