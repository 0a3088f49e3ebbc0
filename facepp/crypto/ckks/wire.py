"""Versioned, fingerprinted wire format of every CKKS object (no secret key here).

Importable by every role. Every object crossing the wire (public bundle, probe,
template, gallery block, scores) is an envelope::

    magic   4 bytes  b"FPCK"
    version u16      WIRE_VERSION
    kind    u8       Kind
    flags   u8       0
    fpr     32 bytes SHA-256 fingerprint of the public bundle (context + keys)
    mlen    u32      length of the kind-specific metadata
    meta    mlen bytes
    count   u32      number of blobs
    count x (u32 length, bytes)

Parsing is strict and happens before any byte reaches Pyfhel/SEAL: wrong magic,
truncation, trailing bytes, oversized lengths or a wrong blob count raise
:class:`ProtocolError`; a wrong version, kind or fingerprint raises
:class:`KeyMismatchError`. Ciphertexts are then loaded through
:func:`load_ciphertext`, which wraps SEAL's own validation and checks level,
size and scale.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from Pyfhel import Pyfhel, PyCtxt

from facepp.errors import KeyMismatchError, ProtocolError

MAGIC = b"FPCK"
WIRE_VERSION = 1
FINGERPRINT_BYTES = 32
_HEADER = struct.Struct("<4sHBB32sI")
HEADER_BYTES = _HEADER.size
_U32 = struct.Struct("<I")
#: Upper bounds that keep a hostile length field from allocating gigabytes.
MAX_META_BYTES = 1 << 20
MAX_BLOB_BYTES = 256 << 20
MAX_BLOBS = 1 << 16
_FINGERPRINT_DOMAIN = b"facepp/ckks/public-bundle/v1"


class Kind(enum.IntEnum):
    """The kinds of CKKS wire objects."""

    PUBLIC_BUNDLE = 1
    PROBE = 2
    TEMPLATE = 3
    BLOCK = 4
    SCORES = 5
    SECRET = 6
    GALLERY = 7


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope: kind, fingerprint, metadata and raw blobs (still unparsed)."""

    kind: Kind
    fingerprint: bytes
    meta: bytes
    blobs: tuple[bytes, ...]


def fingerprint_of(parts: list[bytes]) -> bytes:
    """SHA-256 fingerprint of the public bundle parts (context, public, relin, rotation keys).

    Args:
        parts: the serialised public objects, in a fixed order.

    Returns:
        32 bytes.
    """
    h = hashlib.sha256(_FINGERPRINT_DOMAIN)
    for part in parts:
        h.update(_U32.pack(len(part)))
        h.update(part)
    return h.digest()


def pack(kind: Kind, *, fingerprint: bytes, meta: bytes, blobs: list[bytes]) -> bytes:
    """Serialise an envelope (see the module docstring for the layout)."""
    if len(fingerprint) != FINGERPRINT_BYTES:
        raise ProtocolError(f"fingerprint must be {FINGERPRINT_BYTES} bytes, got {len(fingerprint)}")
    out = [_HEADER.pack(MAGIC, WIRE_VERSION, int(kind), 0, fingerprint, len(meta)), meta, _U32.pack(len(blobs))]
    for blob in blobs:
        out.append(_U32.pack(len(blob)))
        out.append(blob)
    return b"".join(out)


def unpack(data: bytes, *, kind: Kind, fingerprint: bytes | None) -> Envelope:
    """Parse and check an envelope before anything touches Pyfhel.

    Args:
        data: untrusted bytes.
        kind: the kind the caller expects.
        fingerprint: the expected key fingerprint; ``None`` only for the public
            bundle itself (checked by the caller against its content).

    Returns:
        The parsed :class:`Envelope`.

    Raises:
        ProtocolError: not bytes, bad magic, truncated, oversized or trailing data.
        KeyMismatchError: unsupported version, another kind, another key fingerprint.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    view = memoryview(data)
    if len(view) < _HEADER.size:
        raise ProtocolError(f"truncated CKKS message: {len(view)} bytes, header needs {_HEADER.size}")
    magic, version, kind_raw, flags, fpr, meta_len = _HEADER.unpack_from(view, 0)
    if magic != MAGIC:
        raise ProtocolError("not a facepp CKKS message (bad magic)")
    if version != WIRE_VERSION:
        raise KeyMismatchError(f"unsupported CKKS wire version {version}, expected {WIRE_VERSION}")
    if kind_raw != int(kind):
        got = Kind(kind_raw).name if kind_raw in Kind._value2member_map_ else str(kind_raw)
        raise KeyMismatchError(f"expected a {kind.name} message, got {got}")
    if flags != 0:
        raise ProtocolError(f"unknown flags {flags:#x}")
    if fingerprint is not None and fpr != fingerprint:
        raise KeyMismatchError(
            f"message made under key {fpr.hex()[:16]}..., expected {fingerprint.hex()[:16]}..."
        )
    if meta_len > MAX_META_BYTES:
        raise ProtocolError(f"metadata length {meta_len} exceeds {MAX_META_BYTES}")
    pos = _HEADER.size
    meta = _take(view, pos, meta_len, "metadata")
    pos += meta_len
    (count,) = _U32.unpack(_take(view, pos, _U32.size, "blob count"))
    pos += _U32.size
    if count > MAX_BLOBS:
        raise ProtocolError(f"blob count {count} exceeds {MAX_BLOBS}")
    blobs = []
    for index in range(count):
        (length,) = _U32.unpack(_take(view, pos, _U32.size, f"length of blob {index}"))
        pos += _U32.size
        if length > MAX_BLOB_BYTES:
            raise ProtocolError(f"blob {index} length {length} exceeds {MAX_BLOB_BYTES}")
        blobs.append(_take(view, pos, length, f"blob {index}"))
        pos += length
    if pos != len(view):
        raise ProtocolError(f"{len(view) - pos} trailing bytes after the last blob")
    return Envelope(Kind(kind_raw), bytes(fpr), meta, tuple(blobs))


def _take(view: memoryview, pos: int, length: int, what: str) -> bytes:
    if pos + length > len(view):
        raise ProtocolError(f"truncated CKKS message: {what} needs {length} bytes at offset {pos}, have {len(view) - pos}")
    return bytes(view[pos : pos + length])


def unpack_meta(meta: bytes, fmt: struct.Struct, what: str) -> tuple[Any, ...]:
    """Unpack fixed-layout metadata, refusing a wrong length."""
    if len(meta) != fmt.size:
        raise ProtocolError(f"{what} metadata must be {fmt.size} bytes, got {len(meta)}")
    return fmt.unpack(meta)


def expect_blobs(env: Envelope, count: int) -> None:
    """Refuse an envelope with another number of blobs than ``count``."""
    if len(env.blobs) != count:
        raise ProtocolError(f"{env.kind.name} message must carry {count} blobs, got {len(env.blobs)}")


def load_json(blob: bytes, what: str) -> Any:
    """Decode a small JSON blob, mapping any decoding error to :class:`ProtocolError`."""
    try:
        return json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"{what} is not valid UTF-8 JSON") from exc


def load_ciphertext(he: Pyfhel, blob: bytes, *, level: int, scale: float, what: str) -> PyCtxt:
    """Load one serialised ciphertext and check its shape.

    Args:
        he: a Pyfhel object holding the context (public material suffices).
        blob: SEAL-serialised ciphertext bytes (untrusted).
        level: expected ``mod_level`` (primes dropped from the top of the chain).
        scale: expected scale (relative tolerance 1e-6).
        what: name used in error messages.

    Returns:
        The ciphertext (size 2).

    Raises:
        ProtocolError: SEAL refuses the bytes, or level/size/scale differ.
    """
    ctxt = PyCtxt(pyfhel=he)
    try:
        ctxt.from_bytes(blob)
    except (RuntimeError, ValueError, TypeError, MemoryError) as exc:
        raise ProtocolError(f"{what}: malformed ciphertext ({type(exc).__name__})") from exc
    if ctxt.size() != 2:
        raise ProtocolError(f"{what}: ciphertext must have 2 components, got {ctxt.size()}")
    actual = ciphertext_level(he, ctxt)
    if actual != level:
        raise ProtocolError(f"{what}: ciphertext at modulus level {actual}, expected {level}")
    ctxt.mod_level = level  # Pyfhel does not restore its level counter on load
    if not abs(ctxt.scale - scale) <= 1e-6 * scale:
        raise ProtocolError(f"{what}: ciphertext scale 2**{_log2(ctxt.scale):.2f}, expected 2**{_log2(scale):.2f}")
    return ctxt


def ciphertext_level(he: Pyfhel, ctxt: PyCtxt) -> int:
    """Modulus level of a ciphertext (primes dropped), read from its uncompressed size.

    Pyfhel does not restore ``PyCtxt.mod_level`` when loading bytes, but the
    uncompressed size is ``header + size * primes * n * 8`` bytes.
    """
    n = he.get_poly_modulus_degree()
    data_primes = len(he.qi_sizes) - 1
    raw = ctxt.sizeof_ciphertext("none")
    primes, header = divmod(raw, ctxt.size() * n * 8)
    if header > 4096:
        return -1
    return int(data_primes - primes)


def _log2(x: float) -> float:
    return math.log2(x) if x > 0 else float("nan")
