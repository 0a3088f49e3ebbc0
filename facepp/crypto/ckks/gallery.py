"""The matcher's packed encrypted gallery: MATCHER side, public material only.

Never imports the key holder. Holds an ordered mapping
``subject id -> (block, slot)`` and, per block, ``dim`` diagonal ciphertexts
(see :mod:`facepp.crypto.ckks.packing`). Slots are ``free``, ``live`` or
``dirty`` (deleted or replaced, data still present until the terminal
re-encrypts the block with :meth:`CkksKeyHolder.refresh_block`); dirty slots are
never reused nor reported.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from Pyfhel import PyCtxt

from facepp.crypto.ckks import messages as msg
from facepp.crypto.ckks import ops
from facepp.crypto.ckks import wire
from facepp.crypto.ckks.packing import pack_bitmap, unpack_bitmap
from facepp.crypto.ckks.public_key import CkksPublicContext
from facepp.errors import ConfigError, ProtocolError

logger = logging.getLogger(__name__)
_GALLERY_META = struct.Struct("<HHI")


@dataclass
class GalleryBlock:
    """One packed block: ``dim`` level-1 diagonal ciphertexts and slot states.

    Attributes:
        diagonals: ``dim`` ciphertexts (level 1).
        live: ``(S,)`` bool, slot holds a live subject's template.
        dirty: ``(S,)`` bool, slot holds stale data awaiting a refresh.
    """

    diagonals: list[PyCtxt]
    live: npt.NDArray[np.bool_]
    dirty: npt.NDArray[np.bool_]

    def free_slots(self) -> npt.NDArray[np.intp]:
        """Indices of free slots (neither live nor dirty)."""
        return np.flatnonzero(~(self.live | self.dirty))


class EncryptedGallery:
    """Packed encrypted templates of one embedding dimension (matcher side, key-less).

    Args:
        context: public context loaded from the terminal's bundle.
        dim: embedding dimension (power of two, e.g. 128 or 512).
    """

    def __init__(self, context: CkksPublicContext, *, dim: int) -> None:
        self.context = context
        self.dim = context.params.check_dim(dim)
        self.baby = context.params.baby_for(dim)
        self.slots = context.params.slots
        self.blocks: list[GalleryBlock] = []
        self._subjects: dict[str, tuple[int, int]] = {}

    # -- queries ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._subjects)

    def __contains__(self, subject_id: object) -> bool:
        return subject_id in self._subjects

    def __iter__(self) -> Iterator[str]:
        return iter(self._subjects)

    def location(self, subject_id: str) -> tuple[int, int]:
        """``(block, slot)`` of a subject.

        Raises:
            KeyError: unknown subject.
        """
        if subject_id not in self._subjects:
            raise KeyError(f"unknown subject id {subject_id!r}")
        return self._subjects[subject_id]

    def blocks_needing_refresh(self) -> list[int]:
        """Blocks with dirty slots (send them to the terminal's ``refresh_block``)."""
        return [i for i, b in enumerate(self.blocks) if b.dirty.any()]

    def live_slots(self, block: int) -> list[int]:
        """Slots of the live subjects of ``block``, ascending."""
        return [int(s) for s in np.flatnonzero(self.blocks[block].live)]

    def entries_by_block(self) -> dict[int, list[tuple[str, int]]]:
        """``{block: [(subject_id, slot), ...]}`` for blocks with live subjects, in enrolment order."""
        out: dict[int, list[tuple[str, int]]] = {}
        for sid, (block, slot) in self._subjects.items():
            out.setdefault(block, []).append((sid, slot))
        return out

    @property
    def nbytes(self) -> int:
        """Serialised size of all diagonals (measured once per block)."""
        return sum(len(b.diagonals[0].to_bytes()) * len(b.diagonals) for b in self.blocks)

    # -- updates ------------------------------------------------------------------------

    def add(self, subject_id: str, template: bytes) -> tuple[int, int]:
        """Enrol one subject from a TEMPLATE message into a free slot.

        Costs ``b - 1`` rotations and ``dim`` masked products on the matcher, one
        ciphertext on the wire. A new all-zero block is encrypted (public key) when
        no slot is free.

        Returns:
            ``(block, slot)`` assigned.

        Raises:
            ConfigError: the subject id is already enrolled or invalid.
            ProtocolError, KeyMismatchError: malformed or foreign message.
        """
        self._check_new_id(subject_id)
        he = self.context.he
        ctxt = msg.parse_template(he, template, fingerprint=self.context.fingerprint, params=self.context.params, dim=self.dim)
        block, slot = self._allocate()
        pieces = ops.masked_pieces(
            he, ops.baby_rotations(he, ctxt, baby=self.baby), slot=slot, dim=self.dim,
            slots=self.slots, mask_scale=self.context.mask_scale,
        )
        ops.add_into(he, self.blocks[block].diagonals, pieces)
        self.blocks[block].live[slot] = True
        self._subjects[subject_id] = (block, slot)
        logger.info("enrolled a subject into block %d slot %d (%d subjects)", block, slot, len(self))
        return block, slot

    def add_block(self, block: bytes, subject_ids: Sequence[str]) -> int:
        """Append a bulk-encrypted BLOCK whose slots ``0..k-1`` hold ``subject_ids``.

        Returns:
            The new block index.

        Raises:
            ConfigError: duplicate or already-enrolled subject ids.
            ProtocolError: occupancy bitmap does not match ``subject_ids``.
        """
        ids = list(subject_ids)
        if len(set(ids)) != len(ids):
            raise ConfigError("duplicate subject ids in one block")
        for sid in ids:
            self._check_new_id(sid)
        occupied, diagonals = msg.parse_block(
            self.context.he, block, fingerprint=self.context.fingerprint, params=self.context.params, dim=self.dim
        )
        expected = np.zeros(self.slots, dtype=bool)
        expected[: len(ids)] = True
        if not np.array_equal(occupied, expected):
            raise ProtocolError(f"block occupancy does not match the {len(ids)} subject ids given")
        index = len(self.blocks)
        self.blocks.append(GalleryBlock(diagonals, occupied.copy(), np.zeros(self.slots, dtype=bool)))
        for slot, sid in enumerate(ids):
            self._subjects[sid] = (index, slot)
        logger.info("added block %d with %d subjects", index, len(ids))
        return index

    def replace(self, subject_id: str, template: bytes) -> tuple[int, int]:
        """Replace a subject's template: enrol the new one, mark the old slot dirty.

        Returns:
            The new ``(block, slot)``.

        Raises:
            KeyError: unknown subject.
        """
        old_block, old_slot = self.location(subject_id)
        del self._subjects[subject_id]
        try:
            location = self.add(subject_id, template)
        except BaseException:
            self._subjects[subject_id] = (old_block, old_slot)
            raise
        self._retire(old_block, old_slot)
        return location

    def delete(self, subject_id: str) -> int:
        """Remove a subject; its slot stays dirty until the block is refreshed.

        Returns:
            The block index to refresh through the terminal.

        Raises:
            KeyError: unknown subject.
        """
        block, slot = self.location(subject_id)
        del self._subjects[subject_id]
        self._retire(block, slot)
        return block

    def export_block(self, block: int) -> bytes:
        """A BLOCK message of ``block`` for the terminal's ``refresh_block`` (occupancy = live slots)."""
        b = self.blocks[block]
        return msg.pack_block(b.diagonals, b.live, fingerprint=self.context.fingerprint, dim=self.dim, baby=self.baby)

    def install_block(self, block: int, data: bytes) -> None:
        """Install a refreshed BLOCK: its occupancy must equal the block's live slots; clears dirty slots.

        Raises:
            ProtocolError: occupancy differs from the live slots.
        """
        if not 0 <= block < len(self.blocks):
            raise ConfigError(f"no block {block} (gallery has {len(self.blocks)})")
        occupied, diagonals = msg.parse_block(
            self.context.he, data, fingerprint=self.context.fingerprint, params=self.context.params, dim=self.dim
        )
        b = self.blocks[block]
        if not np.array_equal(occupied, b.live):
            raise ProtocolError("refreshed block occupancy does not match the block's live subjects")
        b.diagonals = diagonals
        b.dirty[:] = False
        logger.info("installed refreshed block %d", block)

    # -- storage ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialise the whole gallery (index, slot states, ciphertexts) for the matcher's storage."""
        index = json.dumps({"subjects": [[sid, b, s] for sid, (b, s) in self._subjects.items()]}).encode()
        blobs = [index]
        for block in self.blocks:
            blobs += [pack_bitmap(block.live), pack_bitmap(block.dirty)] + [c.to_bytes() for c in block.diagonals]
        meta = _GALLERY_META.pack(self.dim, self.baby, len(self.blocks))
        return wire.pack(wire.Kind.GALLERY, fingerprint=self.context.fingerprint, meta=meta, blobs=blobs)

    @classmethod
    def from_bytes(cls, context: CkksPublicContext, data: bytes) -> EncryptedGallery:
        """Load a gallery written by :meth:`to_bytes` under the same public context.

        Raises:
            ProtocolError: malformed data or an index inconsistent with the slot states.
            KeyMismatchError: another key fingerprint, version or kind.
        """
        env = wire.unpack(data, kind=wire.Kind.GALLERY, fingerprint=context.fingerprint)
        dim, baby, n_blocks = wire.unpack_meta(env.meta, _GALLERY_META, "gallery")
        try:
            gallery = cls(context, dim=dim)
        except ConfigError as exc:
            raise ProtocolError(f"gallery: {exc}") from exc
        if baby != gallery.baby:
            raise ProtocolError(f"gallery packed with {baby} baby steps, expected {gallery.baby}")
        per_block = 2 + gallery.dim
        wire.expect_blobs(env, 1 + n_blocks * per_block)
        for b in range(n_blocks):
            blobs = env.blobs[1 + b * per_block : 1 + (b + 1) * per_block]
            if any(len(bits) != gallery.slots // 8 for bits in blobs[:2]):
                raise ProtocolError(f"gallery block {b}: bitmaps must cover {gallery.slots} slots")
            diagonals = [
                wire.load_ciphertext(context.he, blob, level=ops.LEVEL_GALLERY, scale=context.params.scale,
                                     what=f"gallery block {b} diagonal {i}")
                for i, blob in enumerate(blobs[2:])
            ]
            live, dirty = (unpack_bitmap(bits, slots=gallery.slots) for bits in blobs[:2])
            if (live & dirty).any():
                raise ProtocolError(f"gallery block {b}: a slot is both live and dirty")
            gallery.blocks.append(GalleryBlock(diagonals, live, dirty))
        body = wire.load_json(env.blobs[0], "gallery index")
        subjects = body.get("subjects") if isinstance(body, dict) else None
        if not isinstance(subjects, list):
            raise ProtocolError("gallery index must be an object with a 'subjects' list")
        seen = np.zeros((n_blocks, gallery.slots), dtype=bool)
        for entry in subjects:
            if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                    and all(type(v) is int for v in entry[1:])):
                raise ProtocolError("each gallery index entry must be [subject_id, block, slot]")
            sid, b, s = entry
            if not (0 <= b < n_blocks and 0 <= s < gallery.slots) or seen[b, s] or sid in gallery._subjects:
                raise ProtocolError("gallery index entry out of range or duplicated")
            seen[b, s] = True
            gallery._subjects[sid] = (b, s)
        if not all(np.array_equal(seen[b], blk.live) for b, blk in enumerate(gallery.blocks)):
            raise ProtocolError("gallery index does not match the live slots")
        return gallery

    # -- internals ----------------------------------------------------------------------

    def _check_new_id(self, subject_id: str) -> None:
        if not isinstance(subject_id, str) or not 0 < len(subject_id) <= msg.MAX_SUBJECT_ID:
            raise ConfigError(f"subject ids are non-empty strings of at most {msg.MAX_SUBJECT_ID} characters")
        if subject_id in self._subjects:
            raise ConfigError("subject id already enrolled (use replace)")

    def _retire(self, block: int, slot: int) -> None:
        self.blocks[block].live[slot] = False
        self.blocks[block].dirty[slot] = True

    def _allocate(self) -> tuple[int, int]:
        for index, block in enumerate(self.blocks):
            free = block.free_slots()
            if free.size:
                return index, int(free[0])
        self.blocks.append(self._empty_block())
        return len(self.blocks) - 1, 0

    def _empty_block(self) -> GalleryBlock:
        none = np.zeros(self.slots, dtype=bool)
        return GalleryBlock(ops.zero_diagonals(self.context.he, self.context.params, dim=self.dim), none, none.copy())
