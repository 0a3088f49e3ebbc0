"""Verification metrics (pure numpy), evaluation of checkpoints and threshold calibration."""

from facepp.evaluation.metrics import (
    accuracy_at,
    best_threshold,
    equal_error_rate,
    kfold_accuracy,
    roc_auc,
    roc_curve,
    tar_at_far,
    threshold_at_far,
)

__all__ = [
    "accuracy_at",
    "best_threshold",
    "equal_error_rate",
    "kfold_accuracy",
    "roc_auc",
    "roc_curve",
    "tar_at_far",
    "threshold_at_far",
]
