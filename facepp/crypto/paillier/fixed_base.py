"""Fixed-base modular exponentiation with a precomputed byte-window table.

Used for fast Paillier randomness (``h_s ** alpha``): the base never changes,
so every power ``base ** (d * 256**i)`` is computed once and an
exponentiation becomes one modular multiplication per exponent byte.
"""

from __future__ import annotations

import gmpy2
from gmpy2 import mpz


class FixedBaseTable:
    """Powers of one base modulo one modulus, for exponents of a fixed byte length.

    Memory: ``exponent_bytes * 256`` residues (about 8 MiB for a 1024-bit
    exponent and a 2048-bit modulus).
    """

    def __init__(self, base: int, modulus: int, *, exponent_bytes: int) -> None:
        self._modulus = mpz(modulus)
        self._rows: list[list[mpz]] = []
        power = mpz(base) % self._modulus
        for _ in range(exponent_bytes):
            row = [mpz(1), power]
            for _ in range(254):
                row.append(row[-1] * power % self._modulus)
            self._rows.append(row)
            power = row[255] * power % self._modulus
        self.exponent_bytes = exponent_bytes

    def pow(self, exponent: bytes) -> mpz:
        """``base ** int.from_bytes(exponent, 'little') mod modulus``.

        Args:
            exponent: Exactly ``exponent_bytes`` bytes, least significant first.
        """
        if len(exponent) != self.exponent_bytes:
            raise ValueError(f"exponent must be {self.exponent_bytes} bytes, got {len(exponent)}")
        acc = mpz(1)
        modulus = self._modulus
        for row, digit in zip(self._rows, exponent):
            if digit:
                acc = gmpy2.f_mod(acc * row[digit], modulus)
        return acc
