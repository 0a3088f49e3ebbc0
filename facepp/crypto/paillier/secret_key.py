"""Paillier secret key: key generation, CRT decryption and CRT encryption.

Key holders only (participants of the federation). The parameter server must
never import this module; ``tests/crypto/test_paillier.py`` checks that the
public modules do not pull it in.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import gmpy2
from gmpy2 import mpz

from facepp.crypto.paillier.fixed_base import FixedBaseTable
from facepp.crypto.paillier.public_key import (
    KEY_FILE_VERSION,
    SECRET_KEY_FORMAT,
    SUPPORTED_KEY_BITS,
    PublicKey,
    Randomness,
    djn_exponent_bytes,
    fingerprint_of,
    parse_modulus,
    read_key_document,
)
from facepp.errors import ConfigError, KeyMismatchError, ProtocolError
from facepp.io import atomic_write_bytes, b64_to_int, int_to_b64


@dataclass(frozen=True)
class SecretKey:
    """A Paillier secret key: the primes ``p`` and ``q`` of ``n = p * q``."""

    p: int
    q: int

    @cached_property
    def public_key(self) -> PublicKey:
        return PublicKey(n=self.p * self.q)

    @property
    def fingerprint(self) -> str:
        return self.public_key.fingerprint

    @cached_property
    def _crt(self) -> tuple[mpz, mpz, mpz, mpz, mpz, mpz, mpz]:
        p, q = mpz(self.p), mpz(self.q)
        p2, q2 = p * p, q * q
        g = self.public_key.n + 1
        hp = gmpy2.invert((gmpy2.powmod(g, p - 1, p2) - 1) // p, p)
        hq = gmpy2.invert((gmpy2.powmod(g, q - 1, q2) - 1) // q, q)
        return p, q, p2, q2, hp, hq, gmpy2.invert(q, p)

    def decrypt(self, c: int) -> mpz:
        """Decrypt one ciphertext with the Chinese remainder theorem.

        Returns:
            The plaintext in ``[0, n)``.
        """
        p, q, p2, q2, hp, hq, q_inv = self._crt
        mp = (gmpy2.powmod(c, p - 1, p2) - 1) // p * hp % p
        mq = (gmpy2.powmod(c, q - 1, q2) - 1) // q * hq % q
        return mq + q * ((mp - mq) * q_inv % p)

    def to_json(self) -> str:
        import json

        return json.dumps(
            {
                "format": SECRET_KEY_FORMAT,
                "version": KEY_FILE_VERSION,
                "key_bits": self.public_key.key_bits,
                "fingerprint": self.fingerprint,
                "n": int_to_b64(self.public_key.n),
                "p": int_to_b64(self.p),
                "q": int_to_b64(self.q),
            },
            indent=2,
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the secret key file, readable by its owner only (mode 0600)."""
        return atomic_write_bytes(path, self.to_json().encode(), mode=0o600)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "SecretKey":
        """Read a secret key file written by :meth:`save`.

        Raises:
            KeyMismatchError: The file is a public key file, or ``p * q`` does not
                match its modulus and fingerprint.
            ProtocolError: The file is not a facepp Paillier key file.
        """
        doc = read_key_document(path, expected=SECRET_KEY_FORMAT)
        n = parse_modulus(doc)
        try:
            p, q = b64_to_int(doc["p"]), b64_to_int(doc["q"])
        except (KeyError, ValueError):
            raise ProtocolError(f"{path} has no valid primes 'p' and 'q'") from None
        if p * q != n or p == q:
            raise KeyMismatchError(f"{path}: the primes do not match the modulus (corrupt or edited file)")
        return cls(p=p, q=q)


def generate_keypair(key_bits: int = 2048) -> SecretKey:
    """Generate a Paillier key pair with an exactly ``key_bits``-bit modulus.

    Args:
        key_bits: 2048 (default, ~112-bit security) or 3072 (~128-bit security).

    Returns:
        The secret key; its ``public_key`` is what the parameter server gets.
    """
    if key_bits not in SUPPORTED_KEY_BITS:
        raise ConfigError(f"key_bits must be one of {SUPPORTED_KEY_BITS}, got {key_bits}")
    half = key_bits // 2
    while True:
        p, q = _random_prime(half), _random_prime(half)
        n = p * q
        if p != q and n.bit_length() == key_bits and gmpy2.gcd(n, (p - 1) * (q - 1)) == 1:
            return SecretKey(p=int(p), q=int(q))


def _random_prime(bits: int) -> mpz:
    """A random prime of exactly ``bits`` bits with its two top bits set."""
    start = mpz(secrets.randbits(bits)) | (mpz(3) << (bits - 2)) | 1
    prime = gmpy2.next_prime(start)
    return prime if prime.bit_length() == bits else _random_prime(bits)


class SecretEncryptor:
    """Encrypts with the secret key's CRT shortcut: key holders only.

    Computes the mask modulo ``p**2`` and ``q**2`` separately (half-size moduli)
    and recombines, about 4x faster than working modulo ``n**2``. With
    ``randomness="djn"`` (default) the masks come from fixed-base tables of
    ``h_s mod p**2`` and ``h_s mod q**2`` (see :class:`~facepp.crypto.paillier.public_key.PublicEncryptor`
    for the DJN assumption); ``"full"`` raises a uniform ``r`` to ``n``.
    The ciphertexts are ordinary Paillier ciphertexts modulo ``n**2``.
    """

    def __init__(self, key: SecretKey, *, randomness: Randomness = "djn") -> None:
        if randomness not in ("djn", "full"):
            raise ValueError(f"randomness must be 'djn' or 'full', got {randomness!r}")
        self.key = key
        self.public_key = key.public_key
        p, q = mpz(key.p), mpz(key.q)
        self._p2, self._q2 = p * p, q * q
        self._q2_inv = gmpy2.invert(self._q2, self._p2)
        self._tables: tuple[FixedBaseTable, FixedBaseTable] | None = None
        if randomness == "djn":
            n = self.public_key.n
            y = mpz(secrets.randbelow(n - 2) + 2)
            h = gmpy2.f_mod(-y * y, n)
            nbytes = djn_exponent_bytes(self.public_key.key_bits)
            self._tables = (
                FixedBaseTable(gmpy2.powmod(h, n, self._p2), self._p2, exponent_bytes=nbytes),
                FixedBaseTable(gmpy2.powmod(h, n, self._q2), self._q2, exponent_bytes=nbytes),
            )

    def encrypt(self, m: int) -> mpz:
        """Encrypt one plaintext ``0 <= m < n``."""
        n = self.public_key.n
        if not 0 <= m < n:
            raise ValueError("plaintext outside [0, n)")
        p2, q2 = self._p2, self._q2
        if self._tables is not None:
            alpha = os.urandom(self._tables[0].exponent_bytes)
            rp, rq = self._tables[0].pow(alpha), self._tables[1].pow(alpha)
        else:
            r = mpz(secrets.randbelow(n - 1) + 1)
            rp, rq = gmpy2.powmod(r, n, p2), gmpy2.powmod(r, n, q2)
        gm = 1 + mpz(m) * n
        cp = gmpy2.f_mod(gm * rp, p2)
        cq = gmpy2.f_mod(gm * rq, q2)
        return cq + q2 * gmpy2.f_mod((cp - cq) * self._q2_inv, p2)


def check_same_key(secret: SecretKey, fingerprint: str) -> None:
    """Raise KeyMismatchError unless ``fingerprint`` names this key pair."""
    if fingerprint != fingerprint_of(secret.public_key.n):
        raise KeyMismatchError("the data was encrypted under another Paillier key (fingerprint mismatch)")
