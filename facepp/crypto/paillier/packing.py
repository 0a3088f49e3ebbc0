"""Fixed-point encoding of float vectors and packing of many values per Paillier plaintext.

Pure numpy/integer maths, no key material: every role may import it.

Bounds (the reason the layout is safe). Let ``f`` be the fractional bits, ``C``
the clip range, ``M`` the maximum number of summed contributions and
``B = ceil(C * 2**f)`` the offset.

* Encoding: a value ``|x| <= C`` becomes ``e = round(x * 2**f) + B``. Since
  ``|round(x * 2**f)| <= B``, ``0 <= e <= 2B``: every slot is non-negative, so
  adding slots never borrows from a neighbour.
* Headroom: the sum of ``K <= M`` encodings lies in ``[0, 2BM]``. A slot is
  ``w = bit_length(2BM)`` bits wide, so ``2BM < 2**w``: a slot sum never carries
  into the next slot.
* Plaintext: ``s = floor((bits(n) - 1) / w)`` slots fill at most ``bits(n) - 1``
  bits, so the packed integer (and every sum of up to ``M`` of them) stays below
  ``n`` and never wraps modulo ``n``.
* Decoding a sum of ``K`` contributions: ``x = (S - K * B) / 2**f``; the error is
  at most ``K * 2**-(f+1)`` (half a quantisation step per contribution).

A value outside ``[-C, C]`` (or NaN/inf) and a plan whose slot would exceed 64
bits raise before anything is encrypted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from facepp.errors import ConfigError, EncodingOverflowError, ProtocolError

MAX_SLOT_BITS = 64


@dataclass(frozen=True)
class PackingPlan:
    """How float values map to fixed-point slots of one Paillier plaintext.

    Attributes:
        plaintext_bits: Bit length of the Paillier modulus n (e.g. 2048).
        frac_bits: Fractional bits of the fixed-point encoding (step ``2**-frac_bits``).
        clip: Largest magnitude a single value may have.
        max_summands: Largest number of encodings that may ever be added together.
    """

    plaintext_bits: int = 2048
    frac_bits: int = 20
    clip: float = 8.0
    max_summands: int = 1024

    def __post_init__(self) -> None:
        if not 0 <= self.frac_bits <= 52:
            raise ConfigError(f"frac_bits must be in [0, 52], got {self.frac_bits}")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ConfigError(f"clip must be a positive finite number, got {self.clip}")
        if self.max_summands < 1:
            raise ConfigError(f"max_summands must be >= 1, got {self.max_summands}")
        if self.slot_bits > MAX_SLOT_BITS:
            raise ConfigError(
                f"a slot needs {self.slot_bits} bits (> {MAX_SLOT_BITS}): lower frac_bits, clip or max_summands"
            )
        if self.slots_per_plaintext < 1:
            raise ConfigError(f"a {self.plaintext_bits}-bit plaintext cannot hold one {self.slot_bits}-bit slot")

    @cached_property
    def offset(self) -> int:
        """The offset B added to every encoding so slots stay non-negative."""
        return math.ceil(self.clip * 2**self.frac_bits)

    @cached_property
    def slot_bits(self) -> int:
        """Bits per slot, with headroom for ``max_summands`` additions."""
        return (2 * self.offset * self.max_summands).bit_length()

    @cached_property
    def slots_per_plaintext(self) -> int:
        """Values packed into one plaintext (and so into one ciphertext)."""
        return (self.plaintext_bits - 1) // self.slot_bits

    def ciphertexts_for(self, count: int) -> int:
        """Number of ciphertexts that hold ``count`` values."""
        return -(-count // self.slots_per_plaintext)

    def max_error(self, summands: int) -> float:
        """Largest decoding error of a sum of ``summands`` encodings."""
        return summands * 2.0 ** -(self.frac_bits + 1)


def encode(values: np.ndarray, plan: PackingPlan, *, saturate: bool = False) -> np.ndarray:
    """Fixed-point encode values into non-negative slots.

    Args:
        values: (N,) floats; any float dtype (float32 model weights usually).
        plan: The packing plan.
        saturate: Clip out-of-range values to ``[-clip, clip]`` instead of raising.

    Returns:
        (N,) uint64 slot values in ``[0, 2 * plan.offset]``.

    Raises:
        EncodingOverflowError: A value is NaN/inf, or outside ``[-clip, clip]``
            while ``saturate`` is False.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise EncodingOverflowError("cannot encode NaN or infinite values")
    if saturate:
        x = np.clip(x, -plan.clip, plan.clip)
    else:
        worst = float(np.max(np.abs(x), initial=0.0))
        if worst > plan.clip:
            raise EncodingOverflowError(
                f"a value of magnitude {worst:.6g} exceeds the clip range {plan.clip:g} of the packing plan"
            )
    return (np.rint(x * 2.0**plan.frac_bits).astype(np.int64) + plan.offset).astype(np.uint64)


def decode(slots: np.ndarray, plan: PackingPlan, *, summands: int) -> np.ndarray:
    """Decode slot sums of ``summands`` encodings back to floats.

    Args:
        slots: (N,) uint64 slot sums.
        plan: The packing plan they were encoded with.
        summands: How many encodings were added into each slot (1 for a fresh vector).

    Returns:
        (N,) float64 values (the sum of the encoded values).
    """
    centred = slots.astype(np.int64) - np.int64(summands * plan.offset)
    return centred.astype(np.float64) / 2.0**plan.frac_bits


def _row_layout(plan: PackingPlan) -> tuple[int, int]:
    """Bits of packed slots per plaintext and the zero bits padding them to whole bytes."""
    bits = plan.slots_per_plaintext * plan.slot_bits
    return bits, (-bits) % 8


def pack(slots: np.ndarray, plan: PackingPlan) -> list[int]:
    """Pack slot values into plaintext integers, ``slots_per_plaintext`` per integer.

    Slot 0 of each plaintext occupies its most significant bits; the last
    plaintext is padded with zero slots.

    Args:
        slots: (N,) uint64 values, each below ``2**plan.slot_bits``.
        plan: The packing plan.

    Returns:
        ``plan.ciphertexts_for(N)`` non-negative integers below ``2**(plaintext_bits - 1)``.
    """
    s, w = plan.slots_per_plaintext, plan.slot_bits
    count = len(slots)
    rows = plan.ciphertexts_for(count)
    padded = np.zeros(rows * s, dtype=">u8")
    padded[:count] = slots
    bits = np.unpackbits(padded.view(np.uint8).reshape(-1, 8), axis=1)[:, MAX_SLOT_BITS - w :]
    _, pad = _row_layout(plan)
    bits = np.pad(bits.reshape(rows, s * w), ((0, 0), (pad, 0)))
    packed = np.packbits(bits, axis=1)
    return [int.from_bytes(row.tobytes(), "big") for row in packed]


def unpack(plaintexts: list[int], plan: PackingPlan, *, count: int) -> np.ndarray:
    """Inverse of :func:`pack`: split plaintext integers back into ``count`` slot values.

    Raises:
        ProtocolError: The plaintext count does not match ``count``, or a plaintext
            exceeds the slot layout (a corrupt or overflowed aggregate).
    """
    w = plan.slot_bits
    if len(plaintexts) != plan.ciphertexts_for(count):
        raise ProtocolError(f"expected {plan.ciphertexts_for(count)} plaintexts for {count} values, got {len(plaintexts)}")
    bits_used, pad = _row_layout(plan)
    nbytes = (bits_used + pad) // 8
    try:
        raw = b"".join(int(m).to_bytes(nbytes, "big") for m in plaintexts)
    except OverflowError:
        raise ProtocolError("a decrypted plaintext exceeds the slot layout: corrupt or overflowed aggregate") from None
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8).reshape(len(plaintexts), nbytes), axis=1)
    if pad and bits[:, :pad].any():
        raise ProtocolError("a decrypted plaintext exceeds the slot layout: corrupt or overflowed aggregate")
    slot_bits = bits[:, pad:].reshape(-1, w)
    full = np.pad(slot_bits, ((0, 0), (MAX_SLOT_BITS - w, 0)))
    values = np.packbits(full, axis=1).view(">u8").ravel().astype(np.uint64)
    return values[:count]
