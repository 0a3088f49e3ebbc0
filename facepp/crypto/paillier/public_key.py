"""Paillier public key: encryption and homomorphic addition. No secret key here.

Safe for every role, including the untrusted parameter server, which must never
import :mod:`facepp.crypto.paillier.secret_key`.

Standard Paillier with ``g = n + 1``: ``E(m) = (1 + m*n) * r**n mod n**2``, so
any standard implementation holding the same ``p, q`` decrypts our ciphertexts.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import gmpy2
from gmpy2 import mpz

from facepp.crypto.paillier.fixed_base import FixedBaseTable
from facepp.errors import KeyMismatchError, ProtocolError
from facepp.io import atomic_write_bytes, b64_to_int, int_to_b64

PUBLIC_KEY_FORMAT = "facepp-paillier-public-key"
SECRET_KEY_FORMAT = "facepp-paillier-secret-key"
KEY_FILE_VERSION = 1
SUPPORTED_KEY_BITS = (2048, 3072)
Randomness = Literal["djn", "full"]


def fingerprint_of(n: int) -> str:
    """SHA-256 of the modulus' big-endian bytes, hex: names a key pair everywhere."""
    return hashlib.sha256(int(n).to_bytes((int(n).bit_length() + 7) // 8, "big")).hexdigest()


@dataclass(frozen=True)
class PublicKey:
    """A Paillier public key (the modulus ``n``; ``g = n + 1`` implied)."""

    n: int

    @cached_property
    def nsquare(self) -> mpz:
        return mpz(self.n) * self.n

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint_of(self.n)

    @property
    def key_bits(self) -> int:
        return int(self.n).bit_length()

    @property
    def ciphertext_bytes(self) -> int:
        """Fixed byte length of one serialised ciphertext (``n**2`` rounded up to bytes)."""
        return (int(self.nsquare).bit_length() + 7) // 8

    def raw_add(self, a: int, b: int) -> mpz:
        """Homomorphic addition of two ciphertexts: ``E(x) * E(y) = E(x + y)``."""
        return gmpy2.f_mod(mpz(a) * b, self.nsquare)

    def check_ciphertext(self, c: int) -> None:
        """Raise ProtocolError unless ``c`` is a valid ciphertext: in ``[1, n**2)`` and invertible."""
        if not 0 < c < self.nsquare:
            raise ProtocolError("a ciphertext lies outside [1, n^2)")
        if gmpy2.gcd(c, self.n) != 1:
            raise ProtocolError("a ciphertext is not invertible modulo n^2")

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": PUBLIC_KEY_FORMAT,
                "version": KEY_FILE_VERSION,
                "key_bits": self.key_bits,
                "fingerprint": self.fingerprint,
                "n": int_to_b64(self.n),
            },
            indent=2,
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the public key file (world-readable; it holds no secret)."""
        return atomic_write_bytes(path, self.to_json().encode(), mode=0o644)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "PublicKey":
        """Read a public key file written by :meth:`save`.

        Raises:
            KeyMismatchError: The file is a secret key file, or its fingerprint is wrong.
            ProtocolError: The file is not a facepp Paillier key file.
        """
        doc = read_key_document(path, expected=PUBLIC_KEY_FORMAT)
        return cls(n=parse_modulus(doc))


def read_key_document(path: str | os.PathLike[str], *, expected: str) -> dict[str, Any]:
    """Parse a key file and check its format, version and fingerprint field."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"cannot read a Paillier key file at {path}: {exc.__class__.__name__}") from None
    if not isinstance(doc, dict) or doc.get("format") not in (PUBLIC_KEY_FORMAT, SECRET_KEY_FORMAT):
        raise ProtocolError(f"{path} is not a facepp Paillier key file")
    if doc["format"] != expected:
        got = "secret" if doc["format"] == SECRET_KEY_FORMAT else "public"
        want = "secret" if expected == SECRET_KEY_FORMAT else "public"
        raise KeyMismatchError(f"{path} is a Paillier {got} key file, but a {want} key file is expected here")
    if doc.get("version") != KEY_FILE_VERSION:
        raise ProtocolError(f"unsupported key file version {doc.get('version')!r} (expected {KEY_FILE_VERSION})")
    return doc


def parse_modulus(doc: dict[str, Any]) -> int:
    """The modulus of a key document, checked against its stored fingerprint."""
    try:
        n = b64_to_int(doc["n"])
    except (KeyError, ValueError):
        raise ProtocolError("key file has no valid modulus 'n'") from None
    if n.bit_length() not in SUPPORTED_KEY_BITS:
        raise ProtocolError(f"key modulus has {n.bit_length()} bits; supported: {SUPPORTED_KEY_BITS}")
    if doc.get("fingerprint") != fingerprint_of(n):
        raise KeyMismatchError("key file fingerprint does not match its modulus (corrupt or edited file)")
    return n


class PublicEncryptor:
    """Encrypts plaintext integers with the public key only (Damgard-Jurik-Nielsen randomness).

    With ``randomness="djn"`` (default) the mask ``r**n`` is replaced by
    ``h_s ** alpha`` where ``h_s = (-y**2)**n mod n**2`` is fixed per encryptor and
    ``alpha`` is a fresh uniform exponent of ``ceil(bits(n) / 2)`` bits, computed
    with a precomputed fixed-base table. Security rests on the DJN assumption
    (Damgard, Jurik, Nielsen, "A generalization of Paillier's public-key system
    with applications", 2010, sec. 4.1): ``h_s ** alpha`` for short ``alpha`` is
    indistinguishable from a random ``n``-th residue. ``randomness="full"``
    computes ``r**n`` for a uniform ``r`` (no extra assumption, several times slower).
    """

    def __init__(self, key: PublicKey, *, randomness: Randomness = "djn") -> None:
        self.key = key
        self.randomness = randomness
        self._table: FixedBaseTable | None = None
        if randomness == "djn":
            y = mpz(secrets.randbelow(key.n - 2) + 2)
            h = gmpy2.f_mod(-y * y, key.n)
            hs = gmpy2.powmod(h, key.n, key.nsquare)
            self._table = FixedBaseTable(hs, key.nsquare, exponent_bytes=djn_exponent_bytes(key.key_bits))
        elif randomness != "full":
            raise ValueError(f"randomness must be 'djn' or 'full', got {randomness!r}")

    def mask(self) -> mpz:
        """A fresh random n-th residue modulo ``n**2``."""
        if self._table is not None:
            return self._table.pow(os.urandom(self._table.exponent_bytes))
        r = mpz(secrets.randbelow(self.key.n - 1) + 1)
        return gmpy2.powmod(r, self.key.n, self.key.nsquare)

    def encrypt(self, m: int) -> mpz:
        """Encrypt one plaintext ``0 <= m < n``."""
        if not 0 <= m < self.key.n:
            raise ValueError("plaintext outside [0, n)")
        return gmpy2.f_mod((1 + mpz(m) * self.key.n) * self.mask(), self.key.nsquare)


def djn_exponent_bytes(key_bits: int) -> int:
    """Bytes of the short DJN exponent: ``ceil(key_bits / 2)`` bits."""
    return (key_bits // 2 + 7) // 8
