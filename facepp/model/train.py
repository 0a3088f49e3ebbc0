"""Centralized plaintext training of an embedding backbone with a margin head.

Participants (and the centralized baseline) import this; it never touches the network.
Training works on preprocessed uint8 crops held in memory (see
:mod:`facepp.vision.cache`), so an epoch costs only the network and a batched
augmentation. The learning rate follows a warm-up + cosine schedule over the
*progress*, the larger of the epoch fraction and the time fraction of
``max_minutes``: a time-limited run still ends with a fully decayed rate.
With ``ema > 0`` the checkpoint holds an exponential moving average of the
weights and BatchNorm statistics (Polyak averaging), the raw weights only for resume.
With teacher ``targets`` and ``distill_weight > 0`` the loss adds an embedding
distillation term (see :mod:`facepp.model.distill`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

import facepp
from facepp.errors import CheckpointError, ConfigError
from facepp.model.augment import AugmentConfig, augment_batch
from facepp.model.backbone import EmbeddingBackbone, build_backbone, count_parameters, for_training
from facepp.model.checkpoint import load_checkpoint, save_checkpoint
from facepp.model.heads import MarginHead, build_head
from facepp.vision.align import DEFAULT_TTA_SCALES, PreprocessConfig, to_tensor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (all JSON-serialisable, stored in the checkpoint)."""

    backbone: str = "mobilefacenet"
    embedding_dim: int = 128
    head: str = "cosface"
    scale: float | None = None
    margin: float | None = None
    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.03
    dropout: float = 0.0
    ema: float = 0.0
    distill_weight: float = 0.0
    freeze_bn: bool = False  # normalise with the start model's BatchNorm statistics and keep them
    max_minutes: float | None = None
    seed: int = 0
    num_threads: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ConfigError(f"need epochs >= 1, batch_size >= 2, lr > 0; got {self.epochs}, {self.batch_size}, {self.lr}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"max_minutes must be > 0, got {self.max_minutes}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")
        if self.distill_weight < 0:
            raise ConfigError(f"distill_weight must be >= 0, got {self.distill_weight}")


@dataclass
class EpochStats:
    """What one epoch achieved, passed to callbacks."""

    epoch: int
    loss: float
    accuracy: float
    lr: float
    elapsed_minutes: float
    progress: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    """Final state of a training run."""

    checkpoint: Path
    epochs_done: int
    minutes: float
    history: list[EpochStats]
    finished: bool


Callback = Callable[[EpochStats, nn.Module], None]


def learning_rate(base: float, progress: float, warmup: float) -> float:
    """Linear warm-up to ``base`` then cosine decay to 0 over ``progress`` in [0, 1]."""
    if progress < warmup:
        return base * max(progress / warmup, 0.01)
    p = min(1.0, (progress - warmup) / max(1e-9, 1.0 - warmup))
    return base * 0.5 * (1.0 + math.cos(math.pi * p))


def train_one_epoch(
    model: nn.Module,
    head: MarginHead,
    optimizer: torch.optim.Optimizer,
    crops: np.ndarray,
    labels: np.ndarray,
    *,
    config: TrainConfig,
    generator: torch.Generator,
    progress_fn: Callable[[int], float],
    desc: str = "train",
    after_step: Callable[[], None] | None = None,
    targets: np.ndarray | None = None,
) -> tuple[float, float, float, float, bool, float]:
    """One pass over the shuffled data (last incomplete batch dropped).

    With ``config.freeze_bn`` every BatchNorm normalises with its running statistics and
    keeps them, as at inference: fine-tuning batches of a few identities would otherwise
    overwrite the start model's statistics (see ``docs/training.md``).

    Args:
        progress_fn: Maps the number of steps done in this epoch to the run progress in [0, 1];
            the epoch stops early when it reaches 1 (time budget spent).
        after_step: Called after every optimizer step (e.g. a weight average update).
        targets: (N, 2, D) unit-norm teacher embeddings of each crop and of its mirror image
            (distillation with ``config.distill_weight``). Each sample is mirrored or not at
            random and matched with the teacher's embedding of that view.

    Returns:
        (mean loss, accuracy on plain cosine logits, last lr, last progress, stopped early,
        mean student-teacher cosine similarity (NaN without targets)).
    """
    distilling = targets is not None and config.distill_weight > 0
    augment = replace(config.augment, flip=0.0) if distilling else config.augment
    model.train()
    if config.freeze_bn:
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.eval()
    head.train()
    n = len(labels)
    order = torch.randperm(n, generator=generator).numpy()
    steps = max(1, n // config.batch_size)
    total_loss = total_correct = total_seen = total_cosine = 0.0
    lr = progress = 0.0
    stopped = False
    bar = tqdm(range(steps), desc=desc, unit="batch", leave=False, mininterval=2.0)
    for step in bar:
        progress = progress_fn(step)
        if progress >= 1.0:
            stopped = True
            break
        lr = learning_rate(config.lr, progress, config.warmup_fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = np.sort(order[step * config.batch_size : (step + 1) * config.batch_size])
        x = to_tensor(crops[idx])
        y = torch.from_numpy(labels[idx]).long()
        if distilling:
            mirrored = torch.rand(len(idx), generator=generator) < 0.5
            x = torch.where(mirrored.view(-1, 1, 1, 1), x.flip(-1), x)
            target = torch.from_numpy(cast(np.ndarray, targets)[idx, mirrored.long().numpy()])
        raw = cast(EmbeddingBackbone, model).forward_raw(augment_batch(x, augment, generator))
        logits, cosine = head(raw, y)
        loss = F.cross_entropy(logits, y)
        if distilling:
            agreement = (F.normalize(raw, dim=1) * target).sum(1)
            loss = loss + config.distill_weight * (1.0 - agreement).mean()
            total_cosine += float(agreement.detach().sum())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        total_loss += loss.item() * len(y)
        total_correct += float((cosine.argmax(1) == y).sum())
        total_seen += len(y)
        bar.set_postfix(loss=f"{total_loss / total_seen:.3f}", acc=f"{total_correct / total_seen:.3f}", lr=f"{lr:.1e}")
    bar.close()
    seen = max(total_seen, 1.0)
    return total_loss / seen, total_correct / seen, lr, progress, stopped, total_cosine / seen if distilling else math.nan


def imprint_head(head: MarginHead, model: nn.Module, crops: np.ndarray, labels: np.ndarray, *, batch_size: int = 256) -> None:
    """Start ``head`` from the class means of ``model``'s embeddings of ``crops`` (see
    :meth:`MarginHead.imprint`); the model runs in eval mode, without augmentation."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        raw = torch.cat([cast(EmbeddingBackbone, model).forward_raw(to_tensor(crops[i : i + batch_size]))
                         for i in range(0, len(crops), batch_size)])
    head.imprint(raw, torch.from_numpy(np.asarray(labels, dtype=np.int64)))
    model.train(was_training)


def fit(
    crops: np.ndarray,
    labels: np.ndarray,
    *,
    config: TrainConfig,
    preprocessing: PreprocessConfig,
    checkpoint_path: str | Path,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    metadata: dict[str, Any] | None = None,
    progress: bool = True,
    init_checkpoint: str | Path | None = None,
    targets: np.ndarray | None = None,
) -> TrainResult:
    """Train a backbone + margin head, checkpointing atomically after every epoch.

    Args:
        crops: (N, S, S, 3) uint8 aligned crops, S = ``preprocessing.input_size``.
        labels: (N,) int class labels in [0, C).
        config: Hyper-parameters.
        preprocessing: How the crops were made (stored for inference).
        checkpoint_path: Where the checkpoint is written (and read from when resuming).
        resume: Continue from ``checkpoint_path`` when it exists.
        callbacks: Called after each epoch with the stats and the backbone.
        metadata: Extra metadata merged into the checkpoint (dataset name, ...).
        progress: Show tqdm bars.
        init_checkpoint: Start from this checkpoint's backbone weights (fine-tuning; the new
            identities' head starts from their mean embeddings, see :func:`imprint_head`).
            Ignored when resuming.
        targets: (N, 2, embedding_dim) teacher embeddings of each crop and its mirror image,
            for distillation (``config.distill_weight > 0``).

    Returns:
        The run summary.

    Raises:
        ConfigError: inconsistent inputs.
        CheckpointError: resuming from an incompatible checkpoint.
    """
    labels = np.asarray(labels, dtype=np.int64)
    size = preprocessing.input_size
    if crops.dtype != np.uint8 or crops.shape[1:] != (size, size, 3) or len(crops) != len(labels):
        raise ConfigError(f"crops must be (N, {size}, {size}, 3) uint8 matching labels, got {crops.dtype} {crops.shape}")
    if targets is not None and targets.shape != (len(labels), 2, config.embedding_dim):
        raise ConfigError(f"teacher targets must be (N, 2, {config.embedding_dim}) for N = {len(labels)}, got {targets.shape}")
    num_classes = int(labels.max()) + 1
    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = for_training(build_backbone(config.backbone, embedding_dim=config.embedding_dim, input_size=size, dropout=config.dropout))
    head = build_head(config.head, embedding_dim=config.embedding_dim, num_classes=num_classes, scale=config.scale, margin=config.margin)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=config.lr, weight_decay=config.weight_decay)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True) if config.ema else None
    checkpoint_path = Path(checkpoint_path)
    start_epoch, elapsed_before, cpu_before, history = 0, 0.0, 0.0, []
    if init_checkpoint is not None and not (resume and checkpoint_path.is_file()):
        init_model(model, init_checkpoint, config=config, input_size=size)
        imprint_head(head, model, crops, labels)
        if ema is not None:
            ema.module.load_state_dict(model.state_dict())
    if resume and checkpoint_path.is_file():
        payload = load_checkpoint(checkpoint_path)
        state = payload.get("train_state")
        if not isinstance(state, dict) or "head" not in payload or "optimizer" not in payload:
            raise CheckpointError(f"{checkpoint_path.name} holds no resume state")
        if payload["metadata"].get("num_classes") != num_classes:
            raise CheckpointError(f"{checkpoint_path.name}: trained on {payload['metadata'].get('num_classes')} classes, data has {num_classes}")
        try:
            model.load_state_dict(payload.get("raw_model", payload["model"]))
            if ema is not None:
                ema.module.load_state_dict(payload["model"])
                ema.n_averaged.fill_(1)
            head.load_state_dict(payload["head"])
            optimizer.load_state_dict(payload["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{checkpoint_path.name}: incompatible weights ({type(exc).__name__})") from None
        generator.set_state(state["generator"])
        start_epoch, elapsed_before = int(state["epoch"]), float(state["elapsed_seconds"])
        cpu_before = float(state.get("cpu_seconds", 0.0))
        logger.info("resuming from epoch %d (%.1f min done)", start_epoch, elapsed_before / 60)
    logger.info(
        "training %s (%d params) + %s head on %d crops, %d classes, input %d",
        config.backbone, count_parameters(model), config.head, len(labels), num_classes, size,
    )
    budget = config.max_minutes * 60 if config.max_minutes else math.inf
    steps_per_epoch = max(1, len(labels) // config.batch_size)
    t0 = time.monotonic() - elapsed_before
    cpu0 = time.process_time() - cpu_before
    finished = False
    epoch = start_epoch
    for epoch in range(start_epoch, config.epochs):

        def progress_fn(step: int, epoch: int = epoch) -> float:
            return max((epoch * steps_per_epoch + step) / (config.epochs * steps_per_epoch), (time.monotonic() - t0) / budget)

        loss, acc, lr, prog, stopped, agreement = train_one_epoch(
            model, head, optimizer, crops, labels, config=config, generator=generator,
            progress_fn=progress_fn, desc=f"epoch {epoch + 1}/{config.epochs}",
            after_step=None if ema is None else lambda: ema.update_parameters(model), targets=targets,
        )
        published = model if ema is None else ema.module
        elapsed = time.monotonic() - t0
        extra = {} if math.isnan(agreement) else {"teacher_cosine": agreement}
        stats = EpochStats(epoch + 1, loss, acc, lr, elapsed / 60, prog, extra)
        for callback in callbacks:
            callback(stats, published)
        history.append(stats)
        logger.info(
            "epoch %d: loss %.4f acc %.4f%s lr %.2e (%.1f min wall, %.1f CPU-min)",
            epoch + 1, loss, acc, "" if math.isnan(agreement) else f" teacher-cos {agreement:.4f}", lr,
            elapsed / 60, (time.process_time() - cpu0) / 60,
        )
        finished = stopped or epoch + 1 == config.epochs
        _save(checkpoint_path, published, head, optimizer, generator, config, preprocessing, num_classes,
              epoch + 1, elapsed, time.process_time() - cpu0, history, finished, metadata or {},
              raw_model=None if ema is None else model)
        if stopped:
            logger.info("time budget of %.1f min reached after epoch %d", config.max_minutes or 0, epoch + 1)
            break
    return TrainResult(checkpoint_path, epoch + 1, (time.monotonic() - t0) / 60, history, finished)


def init_model(model: nn.Module, path: str | Path, *, config: TrainConfig, input_size: int) -> None:
    """Load backbone weights from a checkpoint of the same architecture and sizes.

    Raises:
        CheckpointError: unreadable checkpoint or different architecture / sizes.
    """
    payload = load_checkpoint(path)
    meta = payload["metadata"]
    expected = (config.backbone, config.embedding_dim, input_size)
    found = (meta.get("architecture"), meta.get("embedding_dim"), meta.get("input_size"))
    if found != expected:
        raise CheckpointError(f"{Path(path).name}: (architecture, dim, input) {found} != {expected}")
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{Path(path).name}: incompatible weights ({type(exc).__name__})") from None
    logger.info("initialised the backbone from %s", path)


def model_metadata(model: nn.Module, *, config: TrainConfig, preprocessing: PreprocessConfig) -> dict[str, Any]:
    """What a checkpoint says about its backbone so the terminal can rebuild and feed it.

    Args:
        model: The trained backbone.
        config: Its training configuration (architecture, embedding size, head).
        preprocessing: How its training crops were made. Inference aligns photos by
            landmarks onto the same framing (Haar ``detect`` only for a model trained on
            Haar crops), at the default test-time scales.
    """
    inference = PreprocessConfig.from_dict(
        {**preprocessing.to_dict(), "mode": "detect" if preprocessing.mode == "detect" else "landmarks", "pick": "largest",
         "fallback_center": False, "tta_scales": DEFAULT_TTA_SCALES}
    )
    return {
        "facepp_version": facepp.__version__,
        "architecture": config.backbone,
        "embedding_dim": config.embedding_dim,
        "input_size": preprocessing.input_size,
        "preprocessing": preprocessing.to_dict(),
        "inference_preprocessing": inference.to_dict(),
        "normalisation": "pixels / 127.5 - 1, RGB, (N, 3, S, S)",
        "head": config.head,
        "parameters": count_parameters(model),
        "train_config": asdict(config),
        "thresholds": {},
        "threshold": None,
    }


def _save(
    path: Path, model: nn.Module, head: MarginHead, optimizer: torch.optim.Optimizer, generator: torch.Generator,
    config: TrainConfig, preprocessing: PreprocessConfig, num_classes: int, epoch: int, elapsed: float, cpu: float,
    history: list[EpochStats], finished: bool, extra_metadata: dict[str, Any], raw_model: nn.Module | None = None,
) -> None:
    metadata = model_metadata(model, config=config, preprocessing=preprocessing)
    metadata["num_classes"] = num_classes
    metadata["training"] = {
        "epochs_done": epoch,
        "minutes": round(elapsed / 60, 2),
        "cpu_minutes": round(cpu / 60, 2),
        "finished": finished,
        "final_loss": history[-1].loss,
        "final_train_accuracy": history[-1].accuracy,
    }
    metadata.update(extra_metadata)
    train_state = {"epoch": epoch, "elapsed_seconds": elapsed, "cpu_seconds": cpu, "generator": generator.get_state()}
    extra: dict[str, Any] = {"head": head.state_dict(), "optimizer": optimizer.state_dict(), "train_state": train_state}
    if raw_model is not None:
        extra["raw_model"] = raw_model.state_dict()
    save_checkpoint(path, model_state=model.state_dict(), metadata=metadata, extra=extra)
