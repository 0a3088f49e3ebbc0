"""Byte sizes of the CKKS wire messages, from the parameters alone (any role; no key involved).

The matcher bounds each request body by the message the route carries
(docs/webapp_matcher.md §4), so the bounds follow from :class:`CkksParams` and
the embedding dimension instead of being configured:

* a ciphertext is sent uncompressed (``PyCtxt.to_bytes``): SEAL 4.1's 16-byte
  header and 97 bytes of members, then ``2 x primes x n`` 64-bit coefficients,
  where ``primes`` counts the data primes left at its level
  (:func:`facepp.crypto.ckks.wire.ciphertext_level` reads the level back from this size);
* TEMPLATE and PROBE messages carry one level-0 ciphertext, so their sizes are exact;
* BLOCK messages carry an occupancy bitmap plus ``dim`` level-1 ciphertexts, which
  SEAL zstd-compresses (:data:`facepp.crypto.ckks.messages.GALLERY_COMPRESSION`), so
  only a bound exists: zstd's bound on each ciphertext, which an uncompressed block also meets;
* the PUBLIC_BUNDLE's keys are zstd-compressed by SEAL, so only a bound exists:
  each key-switching key holds ``2 x (data primes + 1) x n`` coefficients (the
  public key one, the relinearisation key one per data prime, each rotation key
  as many), plus up to ``8 n`` bytes of SEAL headers and index tables per part,
  and zstd never outputs more than ``ZSTD_compressBound`` of its input.

``tests/crypto/test_ckks_sizes.py`` checks these against real messages.
"""

from __future__ import annotations

import struct

from facepp.crypto.ckks import wire
from facepp.crypto.ckks.ops import LEVEL_FRESH, LEVEL_GALLERY
from facepp.crypto.ckks.params import CkksParams
from facepp.crypto.ckks.public_key import rotation_steps

#: SEAL 4.1 serialisation of a ciphertext around its coefficients: a 16-byte header, then parms_id (32),
#: is_ntt_form (1), size, degree, modulus count, scale, correction factor (8 each), the coefficient
#: array's own 16-byte header and its 8-byte length.
SEAL_CIPHERTEXT_OVERHEAD = 16 + 32 + 1 + 5 * 8 + 16 + 8
_U32 = struct.Struct("<I").size
#: Metadata sizes of each kind (packed by messages.py and public_key.py; the sizes test catches a drift).
_META = {wire.Kind.PROBE: 3, wire.Kind.TEMPLATE: 2, wire.Kind.BLOCK: 4, wire.Kind.PUBLIC_BUNDLE: 11}


def envelope_bytes(kind: wire.Kind, blobs: list[int]) -> int:
    """Size of an envelope of ``kind`` carrying blobs of these sizes."""
    return wire.HEADER_BYTES + _META[kind] + _U32 + sum(_U32 + b for b in blobs)


def ciphertext_bytes(params: CkksParams, level: int) -> int:
    """Uncompressed size of a 2-component ciphertext at ``level`` (data primes dropped)."""
    primes = len(params.qi_sizes) - 1 - level
    return SEAL_CIPHERTEXT_OVERHEAD + 2 * primes * params.poly_degree * 8


def zstd_bound(size: int) -> int:
    """``ZSTD_compressBound``: the most zstd can output for ``size`` input bytes."""
    return size + (size >> 8) + (((128 << 10) - size) >> 11 if size < (128 << 10) else 0)


def bundle_bound(params: CkksParams) -> int:
    """Upper bound on a PUBLIC_BUNDLE message (context, public, relinearisation and rotation keys)."""
    n, data_primes = params.poly_degree, len(params.qi_sizes) - 1
    key = 2 * (data_primes + 1) * n * 8  # one key-switching key: every prime, special one included
    headroom = 8 * n
    parts = [headroom, key, data_primes * key, len(rotation_steps(params)) * data_primes * key]
    return envelope_bytes(wire.Kind.PUBLIC_BUNDLE, [zstd_bound(p + headroom) for p in parts])


def message_bytes(kind: wire.Kind, params: CkksParams, dim: int) -> int:
    """The largest body of ``kind`` a terminal sends: exact for TEMPLATE and PROBE, a bound for BLOCK and the bundle.

    Raises:
        ValueError: a kind that is never a request body.
    """
    if kind is wire.Kind.PUBLIC_BUNDLE:
        return bundle_bound(params)
    if kind in (wire.Kind.TEMPLATE, wire.Kind.PROBE):  # a level-0 probe is the larger of the two probe kinds
        return envelope_bytes(kind, [ciphertext_bytes(params, LEVEL_FRESH)])
    if kind is wire.Kind.BLOCK:
        return envelope_bytes(kind, [params.slots // 8] + [zstd_bound(ciphertext_bytes(params, LEVEL_GALLERY))] * dim)
    raise ValueError(f"{kind.name} messages are never a request body")
