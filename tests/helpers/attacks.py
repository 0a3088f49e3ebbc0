"""Attack-lab test helpers: the tiny federation recipe the attacks run against."""

from __future__ import annotations

from attacks.victim import victim_spec
from facepp.model import TrainConfig
from facepp.model.augment import AUGMENT_PRESETS
from training.participant.spec import TrainingSpec
from dataclasses import replace

#: Crop side of the tiny victim.
SIZE = 32


def tiny_spec() -> TrainingSpec:
    """The federation spec of the tiny victim: a seeded random ``mobilefacenet-tiny`` at 32 px, no augmentation."""
    train = TrainConfig(backbone="mobilefacenet-tiny", embedding_dim=16, batch_size=32, lr=1e-3, num_threads=1,
                        augment=AUGMENT_PRESETS["none"])
    return replace(victim_spec(model=None, train=train), input_size=SIZE)
