"""The public CKKS bundle (context, public, relinearisation and rotation keys).

Importable by every role; the matcher loads a bundle with
:meth:`CkksPublicContext.from_bundle`. Security: a bundle never contains the
secret key, and a :class:`CkksPublicContext` refuses to hold one (checked at
load time); it exposes no decryption.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

import numpy as np
from Pyfhel import Pyfhel

from facepp.crypto.ckks import wire
from facepp.crypto.ckks.params import WINDOW_KEY_MAX, CkksParams
from facepp.errors import ConfigError, KeyMismatchError, ProtocolError

logger = logging.getLogger(__name__)

_BUNDLE_META = struct.Struct("<IB4BH")
BUNDLE_PARTS = ("context", "public key", "relinearisation key", "rotation keys")


def pack_params(params: CkksParams) -> bytes:
    """Fixed-layout metadata describing ``params``."""
    return _BUNDLE_META.pack(params.poly_degree, params.scale_bits, *params.qi_sizes, params.baby_steps)


def unpack_params(meta: bytes) -> CkksParams:
    """Parse :func:`pack_params` output.

    Raises:
        ProtocolError: wrong length or parameters that fail validation.
    """
    n, scale_bits, q0, q1, q2, q3, baby = wire.unpack_meta(meta, _BUNDLE_META, "public bundle")
    try:
        return CkksParams(poly_degree=n, qi_sizes=(q0, q1, q2, q3), scale_bits=scale_bits, baby_steps=baby)
    except ConfigError as exc:
        raise ProtocolError(f"public bundle carries invalid parameters: {exc}") from exc


def rotation_steps(params: CkksParams) -> list[int]:
    """Rotation steps the matcher needs: 1 (baby steps), ``baby_steps`` (giant steps) and
    every power of two up to :data:`WINDOW_KEY_MAX` (the 1:1 window sum)."""
    powers = {1 << i for i in range(WINDOW_KEY_MAX.bit_length()) if 1 << i <= params.slots // 2}
    return sorted(powers | {params.baby_steps})


@dataclass(frozen=True)
class CkksPublicContext:
    """Public CKKS material: a Pyfhel object with context and public keys, never a secret key.

    Attributes:
        he: Pyfhel object (context, public, relinearisation and rotation keys).
        params: the parameters the bundle declares (checked against the context).
        fingerprint: SHA-256 of the bundle parts; every message must carry it.
        bundle_bytes: size of the bundle in bytes (for reporting).
    """

    he: Pyfhel
    params: CkksParams
    fingerprint: bytes
    bundle_bytes: int

    @property
    def fingerprint_hex(self) -> str:
        """Hex fingerprint (safe to log)."""
        return self.fingerprint.hex()

    @property
    def mask_scale(self) -> float:
        """Scale of 0/1 masks: exactly the mask prime ``q2``, so rescaling keeps the scale."""
        return float(self.he.get_qi()[2])

    @property
    def score_scale(self) -> float:
        """Scale of a score ciphertext: ``scale**2 / q1``."""
        return self.params.scale**2 / float(self.he.get_qi()[1])

    @classmethod
    def from_bundle(cls, data: bytes, *, expected_fingerprint: bytes | None = None) -> CkksPublicContext:
        """Load a public bundle (matcher side).

        Args:
            data: bytes from :meth:`CkksKeyHolder.export_public_bundle` (untrusted).
            expected_fingerprint: if given (pinned out of band), the bundle must match it.

        Returns:
            The public context.

        Raises:
            ProtocolError: malformed bundle or parameters, or SEAL refuses a part.
            KeyMismatchError: wrong version/kind, the header fingerprint does not
                match the content or ``expected_fingerprint``, or the bundle
                carries a secret key.
        """
        env = wire.unpack(data, kind=wire.Kind.PUBLIC_BUNDLE, fingerprint=expected_fingerprint)
        wire.expect_blobs(env, len(BUNDLE_PARTS))
        params = unpack_params(env.meta)
        if wire.fingerprint_of(list(env.blobs)) != env.fingerprint:
            raise KeyMismatchError("public bundle fingerprint does not match its content")
        he = context_from_params(params, expected=env.blobs[0])
        loaders = (he.from_bytes_public_key, he.from_bytes_relin_key, he.from_bytes_rotate_key)
        for name, loader, blob in zip(BUNDLE_PARTS[1:], loaders, env.blobs[1:]):
            try:
                loader(blob)
            except (RuntimeError, ValueError, TypeError, MemoryError) as exc:
                raise ProtocolError(f"public bundle: malformed {name} ({type(exc).__name__})") from exc
        if not he.is_secret_key_empty():
            raise KeyMismatchError("a public bundle must not carry a secret key")
        check_evaluation_keys(he, params)
        logger.info("loaded CKKS public bundle %s (%d bytes)", env.fingerprint.hex()[:16], len(data))
        return cls(he=he, params=params, fingerprint=env.fingerprint, bundle_bytes=len(data))


def check_evaluation_keys(he: Pyfhel, params: CkksParams) -> None:
    """Check the bundle's relinearisation and rotation keys cover every step the matcher uses.

    Encrypts zeros with the public key and relinearises / rotates them once per
    step (a few milliseconds), so a bundle lacking a key fails at load time, not
    in the middle of a query.

    Raises:
        ProtocolError: a required key is missing or unusable.
    """
    zero = he.encryptFrac(np.zeros(params.slots), scale=params.scale)
    try:
        product = he.multiply(zero, zero, True)
        he.relinearize(product)
    except (RuntimeError, ValueError) as exc:
        raise ProtocolError(f"public bundle: unusable relinearisation key ({type(exc).__name__})") from exc
    for step in rotation_steps(params):
        try:
            he.rotate(zero, step, True)
        except (RuntimeError, ValueError) as exc:
            raise ProtocolError(f"public bundle: no rotation key for step {step}") from exc


def new_context(params: CkksParams) -> Pyfhel:
    """A Pyfhel CKKS context (no keys) for ``params``; SEAL enforces 128-bit security."""
    he = Pyfhel()
    he.contextGen(scheme="ckks", n=params.poly_degree, scale=params.scale, qi_sizes=list(params.qi_sizes), sec=128)
    return he


def context_from_params(params: CkksParams, *, expected: bytes) -> Pyfhel:
    """Rebuild the context of ``params`` and check it equals the received serialised context.

    SEAL derives the primes deterministically from ``(n, qi_sizes)``, so an
    honest context serialises to exactly the same bytes. Rebuilding (rather than
    parsing the received context) also gives access to the prime values.

    Raises:
        ProtocolError: the received context is not the context of ``params``.
    """
    he = new_context(params)
    if he.to_bytes_context() != expected:
        raise ProtocolError(
            f"context does not match its declared parameters (n={params.poly_degree}, primes {params.qi_sizes})"
        )
    return he
