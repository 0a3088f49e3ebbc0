"""Model test helpers: the tiny training configuration."""

from __future__ import annotations

from facepp.model.augment import AugmentConfig
from facepp.model.train import TrainConfig

#: Crop side of the tiny synthetic set.
SIZE = 32


def tiny_config(**overrides: object) -> TrainConfig:
    """A fast 3-epoch configuration for 32-px crops (``overrides`` replace fields)."""
    values: dict[str, object] = dict(
        embedding_dim=16, epochs=3, batch_size=16, lr=3e-3, seed=0, num_threads=1, augment=AugmentConfig(erase=0.0, max_rotate_deg=0.0)
    )
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]
