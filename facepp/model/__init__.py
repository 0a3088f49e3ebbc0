"""Embedding model: backbones, margin heads, training, checkpoints and inference.

Roles holding the plaintext model (participants, terminal) import this; the
parameter server and the matcher never do.
"""

from facepp.model.augment import AugmentConfig, augment_batch
from facepp.model.backbone import BACKBONES, MobileFaceNet, build_backbone, count_parameters
from facepp.model.checkpoint import load_checkpoint, save_checkpoint, update_metadata
from facepp.model.embedder import Embedder
from facepp.model.heads import HEADS, ArcFace, CosFace, MarginHead, build_head
from facepp.model.train import EpochStats, TrainConfig, TrainResult, fit, train_one_epoch

__all__ = [
    "BACKBONES",
    "HEADS",
    "ArcFace",
    "AugmentConfig",
    "CosFace",
    "Embedder",
    "EpochStats",
    "MarginHead",
    "MobileFaceNet",
    "TrainConfig",
    "TrainResult",
    "augment_batch",
    "build_backbone",
    "build_head",
    "count_parameters",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "train_one_epoch",
    "update_metadata",
]
