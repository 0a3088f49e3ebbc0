"""Identity-disjoint splits and partitions of identities across participants.

Pure functions over identity names: randomness comes from a seed or an explicit
``numpy.random.Generator``; the output never depends on the input order (names are
sorted first), so every participant computing a split gets the same one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from facepp.data.datasets import natural_key
from facepp.errors import ConfigError

PARTITION_SCHEMES: tuple[str, ...] = ("iid", "dirichlet", "size")


@dataclass(frozen=True)
class IdentitySplit:
    """Disjoint train and test identity names (each in natural order)."""

    train: tuple[str, ...]
    test: tuple[str, ...]


def _seed_from(seed: int, salt: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def split_identities(identities: Sequence[str], *, test_fraction: float = 0.2, seed: int = 0) -> IdentitySplit:
    """Split identity names into disjoint train and test sets, deterministically.

    Args:
        identities: Identity names (order irrelevant, duplicates rejected).
        test_fraction: Fraction of identities in the test set, in (0, 1).
        seed: Seed; the same seed and names always give the same split.

    Returns:
        The split; at least one identity on each side.

    Raises:
        ConfigError: bad fraction, duplicate names or fewer than two identities.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    names = sorted(set(identities), key=natural_key)
    if len(names) != len(identities):
        raise ConfigError("identity names must be unique")
    if len(names) < 2:
        raise ConfigError("splitting needs at least two identities")
    n_test = min(len(names) - 1, max(1, round(test_fraction * len(names))))
    order = _seed_from(seed, "split").permutation(len(names))
    test = {names[k] for k in order[:n_test]}
    return IdentitySplit(
        train=tuple(n for n in names if n not in test), test=tuple(n for n in names if n in test)
    )


def partition_identities(
    identities: Sequence[str],
    n_parts: int,
    *,
    scheme: str = "iid",
    rng: np.random.Generator,
    alpha: float = 0.5,
    image_counts: Mapping[str, int] | None = None,
    min_identities: int = 1,
) -> list[tuple[str, ...]]:
    """Give every identity to exactly one of ``n_parts`` participants.

    Schemes:

    * ``iid``: a random permutation dealt round-robin (sizes differ by at most one);
    * ``dirichlet``: participant shares drawn from Dirichlet(alpha) (smaller alpha = more
      skewed), identities assigned by those shares;
    * ``size``: identities sorted by image count, then cut into ``n_parts`` contiguous runs
      of about equal identity count, so participants differ in images-per-identity (needs
      ``image_counts``; ties broken randomly).

    Every participant gets at least ``min_identities`` identities.

    Args:
        identities: Identity names (unique).
        n_parts: Number of participants, 1 <= n_parts <= len(identities).
        scheme: One of :data:`PARTITION_SCHEMES`.
        rng: Source of randomness.
        alpha: Dirichlet concentration (``dirichlet`` only), > 0.
        image_counts: Images per identity (``size`` only).
        min_identities: Fewest identities per participant (a margin head needs 2).

    Returns:
        ``n_parts`` tuples of names in natural order, pairwise disjoint, covering all names.

    Raises:
        ConfigError: unknown scheme (the message lists the choices) or bad parameters.
    """
    if scheme not in PARTITION_SCHEMES:
        raise ConfigError(f"unknown partition scheme {scheme!r}, expected one of {list(PARTITION_SCHEMES)}")
    names = sorted(set(identities), key=natural_key)
    if len(names) != len(identities):
        raise ConfigError("identity names must be unique")
    if not 1 <= n_parts <= len(names):
        raise ConfigError(f"n_parts must be in [1, {len(names)}], got {n_parts}")
    if n_parts * min_identities > len(names):
        raise ConfigError(f"{len(names)} identities cannot give each of {n_parts} participants {min_identities}")
    if scheme == "iid":
        order = rng.permutation(len(names))
        owner = np.empty(len(names), dtype=np.int64)
        owner[order] = np.arange(len(names)) % n_parts
    elif scheme == "dirichlet":
        if alpha <= 0:
            raise ConfigError(f"alpha must be > 0, got {alpha}")
        owner = _dirichlet_owners(len(names), n_parts, rng=rng, alpha=alpha, minimum=min_identities)
    else:
        if image_counts is None:
            raise ConfigError("the 'size' scheme needs image_counts")
        missing = [n for n in names if n not in image_counts]
        if missing:
            raise ConfigError(f"image_counts lacks {len(missing)} identities")
        counts = np.array([image_counts[n] for n in names], dtype=np.float64)
        order = np.lexsort((rng.random(len(names)), counts))
        owner = np.empty(len(names), dtype=np.int64)
        owner[order] = np.arange(len(names)) * n_parts // len(names)
    return [tuple(names[i] for i in np.flatnonzero(owner == p)) for p in range(n_parts)]


def _dirichlet_owners(n: int, n_parts: int, *, rng: np.random.Generator, alpha: float, minimum: int) -> np.ndarray:
    shares = rng.dirichlet(np.full(n_parts, alpha))
    # ``minimum`` identities each first, the rest by multinomial draw on the shares.
    sizes = np.full(n_parts, minimum, dtype=np.int64) + rng.multinomial(n - n_parts * minimum, shares)
    owner = np.repeat(np.arange(n_parts), sizes)
    return owner[rng.permutation(n)]
