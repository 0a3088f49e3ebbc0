"""Federated averaging maths: flat weight vectors and sample-weighted contributions.

Pure functions. Aggregation without revealing sample counts: participant k
uploads ``E([w_k * W_k, w_k])`` with ``w_k = n_k / sample_scale``; the server adds
the ciphertexts; a participant decrypts ``[sum w_k W_k, sum w_k]`` and divides.
The server never sees ``n_k``; participants only ever see the sums. Each round's
aggregate is a fresh sum of at most K contributions (never accumulated across
rounds), so the packing plan needs ``max_summands >= K`` only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facepp.crypto.paillier.packing import PackingPlan, decode, encode
from facepp.errors import ConfigError, EncodingOverflowError, ProtocolError


class AggregateRejectedError(ProtocolError):
    """A decrypted aggregate that no set of honest contributions can produce (a poisoned or corrupt round)."""

    code = "aggregate_rejected"


def packing_plan(*, key_bits: int, participants: int) -> PackingPlan:
    """The packing plan of a federation: 18 fractional bits, clip 64, headroom for every participant.

    Contributions are ``w_k * W_k`` with ``w_k <= max_weight = 1`` (see :class:`FederationPlan`);
    trained face models stay well inside 64 (largest seen: BatchNorm running variances ~25).
    The step 2**-18 ~ 3.8e-6 is far below what training perturbs. 27-bit slots at three
    participants: 75 values per 2048-bit ciphertext.
    """
    return PackingPlan(plaintext_bits=key_bits, frac_bits=18, clip=64.0, max_summands=max(2, participants))


@dataclass(frozen=True)
class FederationPlan:
    """What every participant agrees on to encode its contribution and to check each aggregate.

    A contribution is ``[w * W, w]`` with ``w = samples / sample_scale`` in
    ``[1 / sample_scale, max_weight]`` and every model value ``|W_i| <= value_clip``
    (``packing.clip / max_weight``), so ``|w * W_i|`` fits the packing plan. Any sum of
    honest contributions then has a total weight in ``[1 / sample_scale, K * max_weight]``
    and ``|sum_k w_k W_k,i| <= value_clip * total weight``: an aggregate outside these
    bounds holds a contribution no honest participant makes, and is refused.

    Attributes:
        packing: The fixed-point packing plan (see :func:`packing_plan`).
        participants: K, the number of participants of the federation.
        sample_scale: Public upper bound on a participant's sample count.
        max_weight: Largest FedAvg weight a contribution may carry.
    """

    packing: PackingPlan
    participants: int
    sample_scale: float
    max_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.participants < 1 or self.participants > self.packing.max_summands:
            raise ConfigError(f"{self.participants} participants do not fit a plan for {self.packing.max_summands} summands")
        if not (math.isfinite(self.sample_scale) and self.sample_scale > 0):
            raise ConfigError(f"sample_scale must be a positive number, got {self.sample_scale}")
        if not (math.isfinite(self.max_weight) and 1 / self.sample_scale <= self.max_weight <= self.packing.clip):
            raise ConfigError(f"max_weight must be in [1 / sample_scale, {self.packing.clip:g}], got {self.max_weight}")

    @property
    def value_clip(self) -> float:
        """Largest magnitude of a model value in a contribution."""
        return self.packing.clip / self.max_weight

    @property
    def weight_range(self) -> tuple[float, float]:
        """Total weights an aggregate of honest contributions can have."""
        return 1 / self.sample_scale, self.participants * self.max_weight

    def contribution(self, weights: np.ndarray, samples: int) -> np.ndarray:
        """The vector a participant encrypts, checked against the plan.

        Raises:
            EncodingOverflowError: the weight exceeds ``max_weight`` (more samples than the plan
                allows) or a model value exceeds ``value_clip`` (a diverged model).
        """
        vector = weighted_contribution(weights, samples, sample_scale=self.sample_scale)
        if vector[-1] > self.max_weight:
            raise EncodingOverflowError(f"{samples} samples give FedAvg weight {vector[-1]:.4g}, above the plan's "
                                        f"max_weight {self.max_weight:g} (sample_scale {self.sample_scale:g})")
        worst = float(np.max(np.abs(weights), initial=0.0))
        if not worst <= self.value_clip:
            raise EncodingOverflowError(f"a model value of magnitude {worst:.6g} exceeds the plan's bound {self.value_clip:g}")
        return vector

    def average(self, total: np.ndarray) -> np.ndarray:
        """The FedAvg model from a decrypted aggregate, after checking the aggregate's bounds.

        Raises:
            AggregateRejectedError: the total weight is outside :attr:`weight_range`, or a
                weighted sum exceeds ``value_clip`` times the total weight.
        """
        weight = float(total[-1])
        low, high = self.weight_range
        rounding = self.participants * self.packing.max_error(1)  # half a fixed-point step per contribution
        if not low - rounding <= weight <= high + rounding:
            raise AggregateRejectedError(
                f"aggregate refused: total weight {weight:.6g} is outside [{low:.6g}, {high:.6g}] "
                f"(a contribution carried a weight outside [1/sample_scale, max_weight])")
        bound = self.value_clip * (weight + rounding) + rounding
        worst = float(np.max(np.abs(total[:-1]), initial=0.0))
        if worst > bound:
            raise AggregateRejectedError(
                f"aggregate refused: a weighted sum of magnitude {worst:.6g} exceeds {bound:.6g} "
                f"(value bound {self.value_clip:g} x total weight {weight:.6g})")
        return average_from_sum(total)


def weighted_contribution(weights: np.ndarray, samples: int, *, sample_scale: float) -> np.ndarray:
    """The vector a participant encrypts: ``[w * weights, w]`` with ``w = samples / sample_scale``.

    Args:
        weights: (P,) float32 model weights after local training.
        samples: Local training samples (FedAvg weight).
        sample_scale: Public constant shared by all participants (keeps ``w`` near or below 1).

    Returns:
        (P + 1,) float64.
    """
    if samples < 1:
        raise ValueError("a contribution needs at least one training sample")
    w = samples / sample_scale
    return np.concatenate([np.asarray(weights, dtype=np.float64) * w, [w]])


def average_from_sum(total: np.ndarray) -> np.ndarray:
    """The FedAvg model from a decrypted sum of weighted contributions.

    Raises:
        ProtocolError: The summed weight is not positive (corrupt aggregate).
    """
    weight = float(total[-1])
    if not weight > 0:
        raise ProtocolError("aggregate has no positive total weight: corrupt or empty aggregate")
    return (np.asarray(total[:-1], dtype=np.float64) / weight).astype(np.float32)


def fedavg(contributions: Sequence[tuple[np.ndarray, int]], *, sample_scale: float, plan: PackingPlan | None = None) -> np.ndarray:
    """Plaintext reference: the same aggregation without encryption.

    Args:
        plan: None: float64 sums (FedAvg as usually written). A packing plan: the encrypted
            protocol's arithmetic in the clear, each contribution fixed-point encoded and the
            integers summed, so the result equals the decrypted encrypted aggregate bit for bit.
    """
    vectors = [weighted_contribution(w, n, sample_scale=sample_scale) for w, n in contributions]
    if plan is None:
        return average_from_sum(np.sum(vectors, axis=0))
    slots = np.asarray(np.sum([encode(v, plan) for v in vectors], axis=0, dtype=np.uint64))
    return average_from_sum(decode(slots, plan, summands=len(vectors)))
