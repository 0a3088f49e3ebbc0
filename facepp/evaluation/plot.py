"""ROC plot to a PNG file (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facepp.evaluation.metrics import candidate_thresholds, equal_error_rate, rates_at, roc_auc, roc_curve


def plot_roc(scores: np.ndarray, labels: np.ndarray, path: str | Path, *, title: str = "",
             cross_impostors: np.ndarray | None = None) -> Path:
    """Draw the ROC curve (linear and log-FAR panels) with AUC and EER.

    Args:
        scores: (N,) similarities.
        labels: (N,) 1 genuine / 0 impostor.
        path: Output PNG.
        title: Plot title prefix.
        cross_impostors: Scores of every cross-identity image pair: the log panel adds the
            genuine pairs against them, which resolves low FARs.

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr, _ = roc_curve(scores, labels)
    auc = roc_auc(scores, labels)
    eer, _ = equal_error_rate(scores, labels)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, log in ((ax1, False), (ax2, True)):
        ax.plot(np.maximum(fpr, 1e-5) if log else fpr, tpr, lw=2, label=f"AUC {auc:.4f}, EER {eer:.3f}")
        ax.set_xlabel("false accept rate" + (" (log)" if log else ""))
        ax.set_ylabel("true accept rate")
        ax.grid(True, alpha=0.3)
        if log and cross_impostors is not None:
            genuine = np.asarray(scores)[np.asarray(labels, bool)]
            both = np.concatenate([genuine, cross_impostors])
            is_genuine = np.concatenate([np.ones(genuine.size, bool), np.zeros(cross_impostors.size, bool)])
            # TAR only changes at genuine scores: those thresholds trace the whole curve
            cross_fpr, cross_tpr = rates_at(both, is_genuine, candidate_thresholds(genuine)[::-1])
            ax.plot(np.maximum(cross_fpr, 1e-5), cross_tpr, lw=2,
                    label=f"against {cross_impostors.size:,} cross-identity pairs")
        if log:
            ax.set_xscale("log")
            ax.set_xlim(1e-4, 1)
        else:
            ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.legend(loc="lower right")
    fig.suptitle(f"{title} ROC ({int(np.sum(labels))} genuine / {int(np.sum(~np.asarray(labels, bool)))} impostor pairs)".strip())
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
