"""CKKS parameters for encrypted matching, and their security level.

Importable by every role (terminal and matcher): nothing here touches a key.

Parameter choice (see ``docs/ckks.md``):

* ring degree ``n = 8192`` gives ``n / 2 = 4096`` slots per ciphertext;
* coefficient modulus ``[60, 40, 40, 60]`` bits = 200 bits in total, under the
  218-bit bound of the Homomorphic Encryption Standard (Albrecht et al., 2018,
  table 1, ternary secret, classical 128-bit security) for ``n = 8192``. SEAL
  enforces this bound itself when the context is created with ``sec=128``;
* primes, from the bottom of the chain: ``q0`` (60 bits) holds the decrypted
  scores, ``q1`` (40 bits) is consumed by the rescale after the inner product,
  ``q2`` (40 bits) is consumed by the plaintext 0/1 masks of enrolment and masked
  verification, the last prime (60 bits) is SEAL's key-switching prime;
* scale ``2**40``: key-switching noise (about ``2**18``) then costs about
  ``2**-22`` of precision per rotation, far below the score tolerance ``1e-4``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from facepp.errors import ConfigError

#: Largest total coefficient-modulus bit count for 128-bit classical security,
#: ternary secret (HE Standard, Albrecht et al. 2018, table 1; also SEAL's
#: ``CoeffModulus::MaxBitCount(n, sec_level_type::tc128)``).
HE_STANDARD_MAX_BITS_128: dict[int, int] = {
    1024: 27,
    2048: 54,
    4096: 109,
    8192: 218,
    16384: 438,
    32768: 881,
}

#: Embedding dimensions the packing supports (powers of two dividing the slot count).
MIN_DIM = 8

#: Largest power-of-two rotation key in a public bundle: a 1:1 score's window sum over
#: ``dim`` slots takes ``log2(dim)`` rotations for every ``dim <= 2 * WINDOW_KEY_MAX``.
WINDOW_KEY_MAX = 256


@dataclass(frozen=True)
class CkksParams:
    """Public CKKS parameters shared by the terminal and the matcher.

    Attributes:
        poly_degree: ring degree ``n`` (power of two); ``n / 2`` slots.
        qi_sizes: bit sizes of the coefficient-modulus primes, bottom first; the
            last one is the key-switching (special) prime. Exactly four primes:
            score prime, inner-product rescale prime, mask rescale prime, special.
        scale_bits: ``log2`` of the encoding scale of probes and templates.
        baby_steps: baby-step count ``b`` of the baby-step/giant-step inner
            product (power of two); rotation keys exist for steps ``1`` and ``b``.
    """

    poly_degree: int = 8192
    qi_sizes: tuple[int, ...] = field(default=(60, 40, 40, 60))
    scale_bits: int = 40
    baby_steps: int = 32

    def __post_init__(self) -> None:
        check_params(self)

    @property
    def slots(self) -> int:
        """Number of CKKS slots per ciphertext (``n / 2``)."""
        return self.poly_degree // 2

    @property
    def scale(self) -> float:
        """The encoding scale ``2**scale_bits``."""
        return float(2**self.scale_bits)

    @property
    def total_bits(self) -> int:
        """Total coefficient-modulus bit count (must not exceed the HE standard bound)."""
        return sum(self.qi_sizes)

    def baby_for(self, dim: int) -> int:
        """Baby-step count used for embeddings of ``dim`` coordinates."""
        return min(self.baby_steps, dim)

    def check_dim(self, dim: int) -> int:
        """Validate an embedding dimension for this context.

        Args:
            dim: number of coordinates of an embedding.

        Returns:
            ``dim`` unchanged.

        Raises:
            ConfigError: ``dim`` is not a power of two in ``[8, slots]``.
        """
        if not isinstance(dim, int) or dim < MIN_DIM or dim > self.slots or dim & (dim - 1):
            raise ConfigError(
                f"embedding dimension must be a power of two in [{MIN_DIM}, {self.slots}], got {dim!r}"
            )
        return dim


def check_params(params: CkksParams) -> None:
    """Validate CKKS parameters against the HE standard and the matching layout.

    Raises:
        ConfigError: a parameter is out of range or the modulus exceeds the
            128-bit security bound for the ring degree.
    """
    n = params.poly_degree
    if n not in HE_STANDARD_MAX_BITS_128:
        raise ConfigError(f"poly_degree must be one of {sorted(HE_STANDARD_MAX_BITS_128)}, got {n!r}")
    qi = params.qi_sizes
    if len(qi) != 4 or not all(isinstance(q, int) and 20 <= q <= 60 for q in qi):
        raise ConfigError(f"qi_sizes must be four prime sizes in [20, 60] bits, got {qi!r}")
    bound = HE_STANDARD_MAX_BITS_128[n]
    if params.total_bits > bound:
        raise ConfigError(
            f"coefficient modulus of {params.total_bits} bits exceeds the 128-bit security "
            f"bound of {bound} bits for n={n} (HE standard)"
        )
    s = params.scale_bits
    if not isinstance(s, int) or not 20 <= s <= 50:
        raise ConfigError(f"scale_bits must be in [20, 50], got {s!r}")
    if qi[1] != s or qi[2] != s:
        raise ConfigError(
            f"the two middle primes must have scale_bits={s} bits so rescaling keeps the scale, got {qi!r}"
        )
    # An inner product at scale 2**(2s) needs headroom in q0*q1, the rescaled
    # score at scale ~2**s needs headroom in q0.
    if qi[0] < s + 10:
        raise ConfigError(f"the first prime needs >= scale_bits + 10 bits, got {qi[0]} for scale 2**{s}")
    b = params.baby_steps
    if not isinstance(b, int) or b < 1 or b & (b - 1) or b > n // 2:
        raise ConfigError(f"baby_steps must be a power of two in [1, {n // 2}], got {b!r}")


def security_bits_ok(params: CkksParams) -> bool:
    """Whether ``params`` meet 128-bit classical security per the HE standard table."""
    return params.total_bits <= HE_STANDARD_MAX_BITS_128.get(params.poly_degree, -math.inf)
