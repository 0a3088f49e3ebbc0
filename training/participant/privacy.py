"""Optional client-level differential privacy (DP-FedAvg, McMahan et al., ICLR 2018).

Key-holder side. Off unless the federation spec carries a :class:`DPConfig`.
Each round, a participant clips its model update ``W_local - W_global`` to L2 norm
``clip`` and adds Gaussian noise before encryption. Noise is *distributed*: each
participant adds std ``noise_multiplier * clip / sqrt(min_contributors)``, so any
``min_contributors`` honest uploads sum to at least ``noise_multiplier * clip``, the
std the accountant assumes for the sum (Gaussian mechanism with sensitivity ``clip``:
one participant's whole contribution replaced by a zero update). FedAvg weights are
forced to 1 (every contribution counts the same), since weights derived from private
sample counts would change the sensitivity.

The guarantee is per participant (organisation), against the other participants
who decrypt the aggregate and whoever later sees the model; the server sees only
ciphertexts anyway. Epsilon comes from Opacus's RDP accountant with sampling rate 1
(every participant takes part in every round). Honest-but-curious assumption: a
participant that skips its noise share lowers the real noise.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from facepp.errors import ConfigError
from training.participant.client import LocalTrainer, LocalUpdate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DPConfig:
    """Client-level DP parameters (shared by all participants through the spec).

    Attributes:
        clip: L2 bound on one participant's per-round update.
        noise_multiplier: Std of the noise in the aggregate, in units of ``clip``.
        min_contributors: Uploads that close a round (the quorum); each adds 1/min_contributors of the noise variance.
        delta: The delta of the reported (epsilon, delta) guarantee.
    """

    clip: float
    noise_multiplier: float
    min_contributors: int
    delta: float = 1e-5

    def __post_init__(self) -> None:
        if not (self.clip > 0 and self.noise_multiplier > 0 and self.min_contributors >= 1 and 0 < self.delta < 1):
            raise ConfigError(
                "differential privacy needs clip > 0, noise_multiplier > 0, min_contributors >= 1 and 0 < delta < 1; "
                f"got {self.clip}, {self.noise_multiplier}, {self.min_contributors}, {self.delta}"
            )

    @property
    def noise_std_per_participant(self) -> float:
        return self.noise_multiplier * self.clip / math.sqrt(self.min_contributors)


def epsilon_after(rounds: int, config: DPConfig) -> float:
    """The epsilon spent after ``rounds`` rounds (RDP accountant, sampling rate 1)."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(config.noise_multiplier, 1.0, rounds)]
    return float(accountant.get_epsilon(delta=config.delta))


def privatize(update: np.ndarray, reference: np.ndarray, config: DPConfig, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Clip ``update - reference`` to ``config.clip`` and add this participant's noise share.

    Returns:
        (private weights float32, L2 norm of the update before clipping).
    """
    delta = update.astype(np.float64) - reference.astype(np.float64)
    norm = float(np.linalg.norm(delta))
    delta *= min(1.0, config.clip / norm) if norm > 0 else 1.0
    delta += rng.normal(0.0, config.noise_std_per_participant, size=delta.shape)
    return (reference.astype(np.float64) + delta).astype(np.float32), norm


class PrivateTrainer:
    """Wraps a :class:`LocalTrainer`: every update leaves clipped and noised, with weight 1.

    Args:
        inner: The real local trainer.
        config: DP parameters.
        sample_scale: The federation's public sample scale (the reported count, so the FedAvg weight is 1).
        noise_seed: None (default): fresh OS entropy every round. An integer makes the noise
            reproducible so a simulation's plaintext twin can repeat it; never use one in a real
            federation, where the other participants could then subtract your noise.
    """

    def __init__(self, inner: LocalTrainer, config: DPConfig, *, sample_scale: float, noise_seed: int | None = None) -> None:
        self.inner, self.config, self.sample_scale, self.noise_seed = inner, config, sample_scale, noise_seed

    def train(self, weights: np.ndarray, round_: int) -> LocalUpdate:
        update = self.inner.train(weights, round_)
        rng = np.random.default_rng(None if self.noise_seed is None else [self.noise_seed, round_])
        private, norm = privatize(update.weights, weights, self.config, rng)
        epsilon = epsilon_after(round_, self.config)
        log.info("round %d: update norm %.4g clipped to %.4g; epsilon %.3g at delta %g",
                 round_, norm, self.config.clip, epsilon, self.config.delta)
        # Only epsilon is reported to the server: the inner trainer's loss and accuracy, or the
        # update norm, are functions of the private data that the guarantee does not cover.
        return LocalUpdate(weights=private, samples=int(self.sample_scale), metrics={"dp_epsilon": epsilon})
