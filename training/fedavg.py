"""Federated averaging maths: flat weight vectors and sample-weighted contributions.

Pure functions. Aggregation without revealing sample counts: participant k
uploads ``E([w_k * W_k, w_k])`` with ``w_k = n_k / sample_scale``; the server adds
the ciphertexts; a participant decrypts ``[sum w_k W_k, sum w_k]`` and divides.
The server never sees ``n_k``; participants only ever see the sums. Each round's
aggregate is a fresh sum of at most K contributions (never accumulated across
rounds), so the packing plan needs ``max_summands >= K`` only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facepp.crypto.paillier.packing import PackingPlan, decode, encode
from facepp.errors import ProtocolError


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
