"""Typed CKKS wire messages (probe, template, block, scores) over :mod:`~facepp.crypto.ckks.wire` envelopes.

Importable by every role: building and parsing need the public context only.
Every parser checks the envelope (version, kind, fingerprint), the metadata
(dimension, level, slot count) and each ciphertext (level, size, scale).
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from Pyfhel import Pyfhel, PyCtxt

from facepp.crypto.ckks import wire
from facepp.crypto.ckks.ops import LEVEL_FRESH, LEVEL_GALLERY, LEVEL_SCORES
from facepp.crypto.ckks.packing import pack_bitmap, unpack_bitmap
from facepp.crypto.ckks.params import CkksParams
from facepp.errors import ProtocolError

_PROBE = struct.Struct("<HB")
_TEMPLATE = struct.Struct("<H")
_BLOCK = struct.Struct("<HH")
_SCORES = struct.Struct("<HB")
MAX_SUBJECT_ID = 256
#: SEAL compression of the gallery's level-1 ciphertexts (BLOCK messages, which the matcher
#: stores as they are, and the templates it keeps): zstd makes one about 10% smaller (262 KB ->
#: 235 KB at n = 8192). A ciphertext records its own compression, so uncompressed ones still load.
GALLERY_COMPRESSION = "zstd"


class ScoreMode(enum.IntEnum):
    """How a scores message was computed."""

    IDENTIFY = 1  #: 1:N, every slot of every returned block holds a score
    VERIFY_MASKED = 2  #: 1:1, slots other than the subject's are zeroed by the matcher
    VERIFY = 3  #: 1:1 without the mask (the whole block's scores are revealed)
    IDENTIFY_BLOCKS = 4  #: 1:N naming blocks and a location-table version instead of subject ids


@dataclass(frozen=True)
class ScoresIndex:
    """Plain index of a scores message: which slot of which returned ciphertext is whose.

    Attributes:
        mode: how the scores were computed.
        entries: ``(subject_id, ciphertext position, slot)`` per live subject (empty for ``IDENTIFY_BLOCKS``).
        version: ``IDENTIFY_BLOCKS``: the version of the matcher's location table the scores belong to.
        blocks: ``IDENTIFY_BLOCKS``: the block index of each returned ciphertext.
    """

    mode: ScoreMode
    entries: tuple[tuple[str, int, int], ...] = ()
    version: str | None = None
    blocks: tuple[int, ...] = ()


def check_dim(meta_dim: int, dim: int, what: str) -> None:
    """Refuse a message for another embedding dimension."""
    if meta_dim != dim:
        raise ProtocolError(f"{what} is for dimension {meta_dim}, expected {dim}")


def pack_probe(ctxt: PyCtxt, *, fingerprint: bytes, dim: int) -> bytes:
    """A probe message (one replicated ciphertext, level 0 or 1)."""
    meta = _PROBE.pack(dim, ctxt.mod_level)  # a probe is packed right after encryption: counter is exact
    return wire.pack(wire.Kind.PROBE, fingerprint=fingerprint, meta=meta, blobs=[ctxt.to_bytes()])


def parse_probe(he: Pyfhel, data: bytes, *, fingerprint: bytes, params: CkksParams, dim: int) -> PyCtxt:
    """Parse a probe; level 0 (verification-capable) or 1 (identification only)."""
    env = wire.unpack(data, kind=wire.Kind.PROBE, fingerprint=fingerprint)
    wire.expect_blobs(env, 1)
    meta_dim, level = wire.unpack_meta(env.meta, _PROBE, "probe")
    check_dim(meta_dim, dim, "probe")
    if level not in (LEVEL_FRESH, LEVEL_GALLERY):
        raise ProtocolError(f"probe level must be {LEVEL_FRESH} or {LEVEL_GALLERY}, got {level}")
    return wire.load_ciphertext(he, env.blobs[0], level=level, scale=params.scale, what="probe")


def pack_template(ctxt: PyCtxt, *, fingerprint: bytes, dim: int) -> bytes:
    """A compact enrolment message (one replicated ciphertext at level 0)."""
    return wire.pack(wire.Kind.TEMPLATE, fingerprint=fingerprint, meta=_TEMPLATE.pack(dim), blobs=[ctxt.to_bytes()])


def parse_template(he: Pyfhel, data: bytes, *, fingerprint: bytes, params: CkksParams, dim: int) -> PyCtxt:
    """Parse a compact enrolment message."""
    env = wire.unpack(data, kind=wire.Kind.TEMPLATE, fingerprint=fingerprint)
    wire.expect_blobs(env, 1)
    (meta_dim,) = wire.unpack_meta(env.meta, _TEMPLATE, "template")
    check_dim(meta_dim, dim, "template")
    return wire.load_ciphertext(he, env.blobs[0], level=LEVEL_FRESH, scale=params.scale, what="template")


def pack_block(
    diagonals: Sequence[PyCtxt], occupied: npt.NDArray[np.bool_], *, fingerprint: bytes, dim: int, baby: int,
    compression: str = GALLERY_COMPRESSION,
) -> bytes:
    """A gallery block: occupancy bitmap + ``dim`` diagonal ciphertexts (level 1), serialised with
    SEAL's ``compression`` (``zstd`` or ``none``; :func:`parse_block` reads either)."""
    blobs = [pack_bitmap(occupied)] + [c.to_bytes(compr_mode=compression) for c in diagonals]
    return wire.pack(wire.Kind.BLOCK, fingerprint=fingerprint, meta=_BLOCK.pack(dim, baby), blobs=blobs)


def parse_block(
    he: Pyfhel, data: bytes, *, fingerprint: bytes, params: CkksParams, dim: int
) -> tuple[npt.NDArray[np.bool_], list[PyCtxt]]:
    """Parse a gallery block into (occupancy ``(S,)`` bool, ``dim`` ciphertexts)."""
    env = wire.unpack(data, kind=wire.Kind.BLOCK, fingerprint=fingerprint)
    meta_dim, baby = wire.unpack_meta(env.meta, _BLOCK, "block")
    check_dim(meta_dim, dim, "block")
    if baby != params.baby_for(dim):
        raise ProtocolError(f"block packed with {baby} baby steps, expected {params.baby_for(dim)}")
    wire.expect_blobs(env, dim + 1)
    if len(env.blobs[0]) != params.slots // 8:
        raise ProtocolError(f"block bitmap must cover {params.slots} slots, got {8 * len(env.blobs[0])}")
    occupied = unpack_bitmap(env.blobs[0], slots=params.slots)
    diagonals = [
        wire.load_ciphertext(he, blob, level=LEVEL_GALLERY, scale=params.scale, what=f"block diagonal {i}")
        for i, blob in enumerate(env.blobs[1:])
    ]
    return occupied, diagonals


def pack_scores(
    ciphertexts: Sequence[PyCtxt | bytes], index: ScoresIndex, *, fingerprint: bytes, dim: int
) -> bytes:
    """A scores message: a JSON index blob then one level-2 ciphertext (or its bytes) per returned block."""
    doc: dict[str, object] = ({"version": index.version, "blocks": list(index.blocks)}
                              if index.mode is ScoreMode.IDENTIFY_BLOCKS else {"entries": [list(e) for e in index.entries]})
    body = json.dumps(doc, separators=(",", ":")).encode()
    blobs = [body] + [c if isinstance(c, bytes) else c.to_bytes() for c in ciphertexts]
    meta = _SCORES.pack(dim, int(index.mode))
    return wire.pack(wire.Kind.SCORES, fingerprint=fingerprint, meta=meta, blobs=blobs)


def parse_scores(
    he: Pyfhel, data: bytes, *, fingerprint: bytes, dim: int, score_scale: float
) -> tuple[ScoresIndex, list[PyCtxt]]:
    """Parse a scores message into its index and ciphertexts (level 2)."""
    env = wire.unpack(data, kind=wire.Kind.SCORES, fingerprint=fingerprint)
    meta_dim, mode_raw = wire.unpack_meta(env.meta, _SCORES, "scores")
    check_dim(meta_dim, dim, "scores")
    if mode_raw not in ScoreMode._value2member_map_:
        raise ProtocolError(f"unknown score mode {mode_raw}")
    if not env.blobs:
        raise ProtocolError("scores message carries no index")
    body = wire.load_json(env.blobs[0], "scores index")
    ciphertexts = [
        wire.load_ciphertext(he, blob, level=LEVEL_SCORES, scale=score_scale, what=f"scores {i}")
        for i, blob in enumerate(env.blobs[1:])
    ]
    mode = ScoreMode(mode_raw)
    if mode is ScoreMode.IDENTIFY_BLOCKS:
        version, blocks = _parse_blocks(body, n_ciphertexts=len(ciphertexts))
        return ScoresIndex(mode=mode, version=version, blocks=blocks), ciphertexts
    entries = _parse_entries(body, n_ciphertexts=len(ciphertexts), slots=he.get_nSlots())
    if mode is not ScoreMode.IDENTIFY and (len(entries) != 1 or len(ciphertexts) != 1):
        raise ProtocolError("a verification scores message must hold exactly one subject and one ciphertext")
    return ScoresIndex(mode=mode, entries=entries), ciphertexts


def _parse_blocks(body: object, *, n_ciphertexts: int) -> tuple[str, tuple[int, ...]]:
    if not isinstance(body, dict) or set(body) != {"version", "blocks"}:
        raise ProtocolError("a block scores index must be an object with 'version' and 'blocks'")
    version, blocks = body["version"], body["blocks"]
    if not isinstance(version, str) or not 0 < len(version) <= MAX_SUBJECT_ID:
        raise ProtocolError("a block scores index needs a non-empty version string")
    if (not isinstance(blocks, list) or len(blocks) != n_ciphertexts or len(set(blocks)) != len(blocks)
            or not all(type(b) is int and b >= 0 for b in blocks)):
        raise ProtocolError("a block scores index needs one distinct block index per ciphertext")
    return version, tuple(blocks)


def _parse_entries(body: object, *, n_ciphertexts: int, slots: int) -> tuple[tuple[str, int, int], ...]:
    if not isinstance(body, dict) or set(body) != {"entries"} or not isinstance(body["entries"], list):
        raise ProtocolError("scores index must be an object with one 'entries' list")
    out = []
    seen: set[str] = set()
    for entry in body["entries"]:
        if (
            not isinstance(entry, list)
            or len(entry) != 3
            or not isinstance(entry[0], str)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in entry[1:])
        ):
            raise ProtocolError("each scores entry must be [subject_id, ciphertext, slot]")
        sid, pos, slot = entry
        if not 0 < len(sid) <= MAX_SUBJECT_ID or sid in seen:
            raise ProtocolError("scores entry with an empty, oversized or duplicate subject id")
        if not (0 <= pos < n_ciphertexts and 0 <= slot < slots):
            raise ProtocolError("scores entry points outside the returned ciphertexts")
        seen.add(sid)
        out.append((sid, pos, slot))
    return tuple(out)
