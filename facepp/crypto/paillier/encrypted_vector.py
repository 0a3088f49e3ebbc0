"""Packed Paillier-encrypted vectors: the wire format and homomorphic addition.

Public-key only: this is what the untrusted parameter server uses to parse
uploads and add them. It must not import :mod:`facepp.crypto.paillier.secret_key`.

Wire format, version 1 (all integers big-endian)::

    magic         4 bytes  b"FPPE"
    version       u8       1
    fingerprint   32 bytes SHA-256 of the modulus n
    frac_bits     u8       \\
    clip          f64       | the packing plan
    max_summands  u32       |
    key_bits      u16      /
    slot_bits     u8       derived from the plan; checked
    slots         u16      values per ciphertext; checked
    summands      u32      encodings added into each slot so far
    count         u64      number of values
    ct_bytes      u16      bytes per ciphertext (n^2 rounded up to bytes)
    body          ceil(count / slots) * ct_bytes bytes of ciphertexts
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import gmpy2
from gmpy2 import mpz

from facepp.crypto.paillier.packing import PackingPlan
from facepp.crypto.paillier.public_key import PublicKey
from facepp.errors import ConfigError, EncodingOverflowError, KeyMismatchError, ProtocolError

MAGIC = b"FPPE"
WIRE_VERSION = 1
_HEADER = struct.Struct(">4sB32sBdIHBHIQH")
HEADER_BYTES = _HEADER.size


@dataclass(frozen=True)
class EncryptedVector:
    """A float vector, fixed-point encoded, packed and Paillier-encrypted.

    Attributes:
        fingerprint: Hex SHA-256 of the modulus it was encrypted under.
        plan: The packing plan of every ciphertext.
        count: Number of values.
        summands: How many encodings each slot holds (1 for a fresh vector).
        ciphertexts: ``plan.ciphertexts_for(count)`` ciphertexts modulo ``n**2``.
    """

    fingerprint: str
    plan: PackingPlan
    count: int
    summands: int
    ciphertexts: tuple[mpz, ...]

    def to_bytes(self) -> bytes:
        """Serialise to the version-1 wire format."""
        ct_bytes = (2 * self.plan.plaintext_bits + 7) // 8
        header = _HEADER.pack(
            MAGIC,
            WIRE_VERSION,
            bytes.fromhex(self.fingerprint),
            self.plan.frac_bits,
            self.plan.clip,
            self.plan.max_summands,
            self.plan.plaintext_bits,
            self.plan.slot_bits,
            self.plan.slots_per_plaintext,
            self.summands,
            self.count,
            ct_bytes,
        )
        return header + b"".join(int(c).to_bytes(ct_bytes, "big") for c in self.ciphertexts)

    @classmethod
    def from_bytes(cls, data: bytes, key: PublicKey, *, expected_count: int | None = None) -> "EncryptedVector":
        """Parse and validate untrusted bytes.

        Args:
            data: The serialised vector.
            key: The public key the vector must be encrypted under.
            expected_count: If given, the exact number of values required.

        Raises:
            KeyMismatchError: Encrypted under another key.
            ProtocolError: Truncated or malformed bytes, an unknown version, an
                inconsistent layout, a wrong length or an invalid ciphertext.
        """
        if len(data) < HEADER_BYTES:
            raise ProtocolError(f"encrypted vector truncated: {len(data)} bytes, the header alone is {HEADER_BYTES}")
        (magic, version, fingerprint, frac_bits, clip, max_summands, key_bits,
         slot_bits, slots, summands, count, ct_bytes) = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise ProtocolError("not a facepp encrypted vector (bad magic bytes)")
        if version != WIRE_VERSION:
            raise ProtocolError(f"unsupported encrypted-vector version {version} (expected {WIRE_VERSION})")
        if fingerprint.hex() != key.fingerprint:
            raise KeyMismatchError("encrypted vector was made under another Paillier key (fingerprint mismatch)")
        if key_bits != key.key_bits or ct_bytes != key.ciphertext_bytes:
            raise ProtocolError(f"layout for a {key_bits}-bit key does not fit this {key.key_bits}-bit key")
        try:
            plan = PackingPlan(plaintext_bits=key_bits, frac_bits=frac_bits, clip=clip, max_summands=max_summands)
        except ConfigError as exc:
            raise ProtocolError(f"invalid packing plan in header: {exc}") from None
        if (slot_bits, slots) != (plan.slot_bits, plan.slots_per_plaintext):
            raise ProtocolError("slot layout in header is inconsistent with its packing plan")
        if not 1 <= summands <= max_summands:
            raise ProtocolError(f"summands {summands} outside [1, {max_summands}]")
        if count < 1 or (expected_count is not None and count != expected_count):
            raise ProtocolError(f"wrong length: {count} values, expected {expected_count or 'at least 1'}")
        n_ct = plan.ciphertexts_for(count)
        body = memoryview(data)[HEADER_BYTES:]
        if len(body) != n_ct * ct_bytes:
            raise ProtocolError(f"expected {n_ct * ct_bytes} bytes of ciphertexts for {count} values, got {len(body)}")
        ciphertexts = tuple(
            mpz(int.from_bytes(body[i * ct_bytes : (i + 1) * ct_bytes], "big")) for i in range(n_ct)
        )
        for c in ciphertexts:
            key.check_ciphertext(c)
        return cls(fingerprint=key.fingerprint, plan=plan, count=count, summands=summands, ciphertexts=ciphertexts)


def add_encrypted(key: PublicKey, vectors: Sequence[EncryptedVector]) -> EncryptedVector:
    """Homomorphically add encrypted vectors slot by slot (no secret key needed).

    Raises:
        KeyMismatchError: A vector is under another key.
        ProtocolError: The vectors differ in plan or length.
        EncodingOverflowError: The sum would hold more than ``max_summands``
            encodings per slot (it could carry into the neighbouring slot).
    """
    if not vectors:
        raise ValueError("nothing to add")
    first = vectors[0]
    for v in vectors:
        if v.fingerprint != key.fingerprint:
            raise KeyMismatchError("cannot add vectors encrypted under another Paillier key")
        if v.plan != first.plan or v.count != first.count:
            raise ProtocolError("cannot add vectors with different packing plans or lengths")
    summands = sum(v.summands for v in vectors)
    if summands > first.plan.max_summands:
        raise EncodingOverflowError(
            f"adding these vectors gives {summands} summands per slot; the plan allows {first.plan.max_summands}"
        )
    nsquare = key.nsquare
    total = list(first.ciphertexts)
    for v in vectors[1:]:
        total = [gmpy2.f_mod(a * b, nsquare) for a, b in zip(total, v.ciphertexts)]
    return EncryptedVector(
        fingerprint=key.fingerprint, plan=first.plan, count=first.count, summands=summands, ciphertexts=tuple(total)
    )
