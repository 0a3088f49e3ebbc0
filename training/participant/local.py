"""A participant's local training: the shared backbone with a private margin head.

Key-holder side (plaintext model). Only the backbone is federated: the margin
head holds one class centre per local identity, which would reveal who a
participant's subjects are, so it never leaves the participant (as in
federated face recognition practice, e.g. FedFace). Head and optimizer state
persist across rounds (and across a crash, in ``state_path``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facepp.io import atomic_write_bytes
from facepp.model import TrainConfig, build_backbone, build_head, save_checkpoint, train_one_epoch
from facepp.model.backbone import for_training
from facepp.model.train import imprint_head, init_model, model_metadata
from facepp.vision.align import PreprocessConfig
from training.participant.client import LocalTrainer, LocalUpdate
from training.participant.privacy import PrivateTrainer
from training.participant.spec import TrainingSpec

log = logging.getLogger(__name__)


def federated_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The floating-point tensors the federation averages (parameters and BN statistics)."""
    return [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]


def flat_weights(model: nn.Module) -> np.ndarray:
    """(P,) float32 concatenation of :func:`federated_tensors`."""
    return torch.cat([v.detach().reshape(-1).float() for _, v in federated_tensors(model)]).numpy().copy()


def load_flat_weights(model: nn.Module, vector: np.ndarray) -> None:
    """Inverse of :func:`flat_weights` (in place).

    Raises:
        ValueError: ``vector`` has the wrong length for this model.
    """
    tensors = federated_tensors(model)
    total = sum(v.numel() for _, v in tensors)
    if vector.size != total:
        raise ValueError(f"weight vector has {vector.size} values, the model needs {total}")
    offset = 0
    with torch.no_grad():
        for name, v in tensors:
            v.copy_(torch.from_numpy(np.asarray(vector[offset : offset + v.numel()], dtype=np.float32)).reshape(v.shape))
            if name.endswith("running_var"):  # DP noise can push an averaged variance below 0
                v.clamp_(min=0.0)
            offset += v.numel()


def build_model(config: TrainConfig, input_size: int) -> nn.Module:
    torch.manual_seed(config.seed)
    return build_backbone(config.backbone, embedding_dim=config.embedding_dim, input_size=input_size, dropout=config.dropout)


def initial_weights(config: TrainConfig, input_size: int, init: Path | None = None) -> np.ndarray:
    """(P,) float32 weights a federation starts from: ``init``'s backbone, or seeded random ones.

    Raises:
        CheckpointError: ``init`` is unreadable or of another architecture or size.
    """
    model = build_model(config, input_size)
    if init is not None:
        init_model(model, init, config=config, input_size=input_size)
    return flat_weights(model)


def save_global_model(path: Path, model: nn.Module, *, config: TrainConfig, preprocessing: PreprocessConfig,
                      extra: dict[str, Any]) -> Path:
    """Write the federated backbone as a facepp checkpoint the terminal can load."""
    metadata = {**model_metadata(model, config=config, preprocessing=preprocessing), **extra}
    return save_checkpoint(path, model_state=model.state_dict(), metadata=metadata)


def _round_seed(seed: int, round_: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{round_}".encode()).digest()[:8], "little") & (2**63 - 1)


class FaceTrainer:
    """Trains the shared backbone for ``local_epochs`` per round on local crops.

    With ``imprint`` (a fine-tune), a new private head starts from the class means of the
    first round's global model (see :func:`facepp.model.train.imprint_head`).

    Deterministic given (weights, round, seed): the plaintext FedAvg twin of a
    simulation reproduces exactly the same local updates.
    """

    def __init__(
        self,
        crops: np.ndarray,
        labels: np.ndarray,
        *,
        config: TrainConfig,
        input_size: int,
        total_rounds: int,
        local_epochs: int = 1,
        seed: int = 0,
        state_path: Path | None = None,
        progress: bool = False,
        imprint: bool = False,
    ) -> None:
        self.crops, self.labels = crops, np.asarray(labels, dtype=np.int64)
        self.config = config
        self.total_rounds, self.local_epochs, self.seed = total_rounds, local_epochs, seed
        self.state_path = state_path
        self.progress = progress
        torch.set_num_threads(config.num_threads)
        self.model = for_training(build_model(config, input_size))
        num_classes = int(self.labels.max()) + 1
        self.head = build_head(config.head, embedding_dim=config.embedding_dim, num_classes=num_classes,
                               scale=config.scale, margin=config.margin)
        self.optimizer = torch.optim.AdamW(list(self.model.parameters()) + list(self.head.parameters()),
                                           lr=config.lr, weight_decay=config.weight_decay)
        self.imprint_pending = imprint
        if state_path is not None and state_path.is_file():
            self.imprint_pending = False
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            self.head.load_state_dict(state["head"])
            self.optimizer.load_state_dict(state["optimizer"])
            log.info("resumed private head and optimizer state from %s", state_path.name)

    def train(self, weights: np.ndarray, round_: int) -> LocalUpdate:
        load_flat_weights(self.model, weights)
        if self.imprint_pending:
            imprint_head(self.head, self.model, self.crops, self.labels)
            self.imprint_pending = False
        generator = torch.Generator().manual_seed(_round_seed(self.seed, round_))
        steps = max(1, len(self.labels) // self.config.batch_size)
        start = time.perf_counter()
        loss = acc = 0.0
        for epoch in range(self.local_epochs):

            def progress_fn(step: int, epoch: int = epoch) -> float:
                return (round_ - 1 + (epoch + step / steps) / self.local_epochs) / self.total_rounds

            loss, acc, *_ = train_one_epoch(
                self.model, self.head, self.optimizer, self.crops, self.labels, config=self.config,
                generator=generator, progress_fn=progress_fn, desc=f"round {round_} epoch {epoch + 1}",
            )
        if self.state_path is not None:
            import io

            buffer = io.BytesIO()
            torch.save({"head": self.head.state_dict(), "optimizer": self.optimizer.state_dict()}, buffer)
            atomic_write_bytes(self.state_path, buffer.getvalue(), mode=0o600)
        log.info("round %d: local loss %.4f, accuracy %.3f (%.1f s)", round_, loss, acc, time.perf_counter() - start)
        return LocalUpdate(weights=flat_weights(self.model), samples=len(self.labels),
                           metrics={"local_loss": loss, "local_accuracy": acc})


def local_trainer(
    spec: TrainingSpec,
    crops: np.ndarray,
    labels: np.ndarray,
    index: int,
    *,
    state_path: Path | None = None,
    dp_noise_seed: int | None = None,
) -> LocalTrainer:
    """The trainer participant ``index`` runs: :class:`FaceTrainer`, wrapped for DP when the spec asks.

    Args:
        dp_noise_seed: Reproducible DP noise, for simulations only (see :class:`PrivateTrainer`).
    """
    trainer = FaceTrainer(crops, labels, config=spec.train, input_size=spec.input_size, total_rounds=spec.total_rounds,
                          local_epochs=spec.local_epochs, seed=spec.seed + index, state_path=state_path,
                          imprint=spec.init is not None)
    if spec.dp is None:
        return trainer
    return PrivateTrainer(trainer, spec.dp, sample_scale=spec.sample_scale, noise_seed=dp_noise_seed)
