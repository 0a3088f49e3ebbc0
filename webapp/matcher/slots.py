"""Where each subject's template lives: subject id -> (block, slot), and per-block slot states (matcher only).

The slot table holds no ciphertext: the engine's shards hold those
(:mod:`webapp.matcher.shard`). A slot is *free*, *live* or *dirty* (deleted or
replaced; its data stays in the ciphertexts until the terminal re-encrypts the
block), as in :mod:`facepp.crypto.ckks.gallery`. Not thread-safe by itself:
:class:`~webapp.matcher.service.MatcherService` guards it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from facepp.crypto.ckks.packing import pack_bitmap, unpack_bitmap
from facepp.errors import NotFoundError, ProtocolError

Bitmap = npt.NDArray[np.bool_]


class SlotTable:
    """Slot states of every block and the location of every live subject.

    Args:
        slots: slots per block (``n / 2``).
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.live: list[Bitmap] = []
        self.dirty: list[Bitmap] = []
        self._subjects: dict[str, tuple[int, int]] = {}
        self._epoch = secrets.token_hex(8)
        self._changes = 0

    @classmethod
    def restore(cls, slots: int, bitmaps: Sequence[tuple[bytes, bytes]],
                subjects: Sequence[tuple[str, int, int]]) -> SlotTable:
        """Rebuild from stored ``(live, dirty)`` bitmaps per block and ``(subject, block, slot)`` rows.

        Raises:
            ProtocolError: a bitmap of the wrong size, a slot both live and dirty, or
                subjects that do not match the live slots exactly.
        """
        table = cls(slots)
        for index, (live, dirty) in enumerate(bitmaps):
            if len(live) != slots // 8 or len(dirty) != slots // 8:
                raise ProtocolError(f"stored block {index}: bitmaps must cover {slots} slots")
            live_bits, dirty_bits = unpack_bitmap(live, slots=slots), unpack_bitmap(dirty, slots=slots)
            if (live_bits & dirty_bits).any():
                raise ProtocolError(f"stored block {index}: a slot is both live and dirty")
            table.live.append(live_bits)
            table.dirty.append(dirty_bits)
        seen = [np.zeros(slots, dtype=bool) for _ in bitmaps]
        for sid, block, slot in subjects:
            if not (0 <= block < len(bitmaps) and 0 <= slot < slots) or seen[block][slot] or sid in table._subjects:
                raise ProtocolError("stored subject out of range or duplicated")
            seen[block][slot] = True
            table._subjects[sid] = (block, slot)
        if not all(np.array_equal(s, live) for s, live in zip(seen, table.live)):
            raise ProtocolError("stored subjects do not match the live slots")
        return table

    # -- queries ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._subjects)

    def __contains__(self, subject_id: object) -> bool:
        return subject_id in self._subjects

    def __iter__(self) -> Iterator[str]:
        return iter(self._subjects)

    @property
    def version(self) -> str:
        """Changes whenever a subject's location does (and at every load): names a location table."""
        return f"{self._epoch}-{self._changes}"

    def locations(self) -> list[tuple[str, int, int]]:
        """``(subject_id, block, slot)`` of every live subject."""
        return [(sid, block, slot) for sid, (block, slot) in self._subjects.items()]

    def live_blocks(self) -> list[int]:
        """Blocks holding live subjects, ascending."""
        return [i for i, live in enumerate(self.live) if live.any()]

    @property
    def blocks(self) -> int:
        """Number of blocks (with or without live subjects)."""
        return len(self.live)

    def location(self, subject_id: str) -> tuple[int, int]:
        """``(block, slot)`` of a subject.

        Raises:
            NotFoundError: unknown subject.
        """
        try:
            return self._subjects[subject_id]
        except KeyError:
            raise NotFoundError("unknown subject id") from None

    def stale_blocks(self) -> list[int]:
        """Blocks holding dirty slots."""
        return [i for i, dirty in enumerate(self.dirty) if dirty.any()]

    def bitmaps(self, block: int) -> tuple[bytes, bytes]:
        """Packed ``(live, dirty)`` bitmaps of ``block``."""
        return pack_bitmap(self.live[block]), pack_bitmap(self.dirty[block])

    def live_with(self, block: int, slot: int) -> bytes:
        """Packed live bitmap of ``block`` (possibly new) once ``slot`` is taken."""
        live = self.live[block].copy() if block < len(self.live) else np.zeros(self.slots, dtype=bool)
        live[slot] = True
        return pack_bitmap(live)

    def next_free(self) -> tuple[int, int]:
        """The slot the next enrolment takes: the first free slot, else slot 0 of a new block."""
        for index, (live, dirty) in enumerate(zip(self.live, self.dirty)):
            free = np.flatnonzero(~(live | dirty))
            if free.size:
                return index, int(free[0])
        return len(self.live), 0

    # -- updates (the caller changed the ciphertexts first) -----------------------------------

    def assign(self, subject_id: str, block: int, slot: int) -> tuple[int, int] | None:
        """Make ``slot`` of ``block`` (a free slot or a new block) ``subject_id``'s; returns the slot it leaves."""
        if block == len(self.live):
            self.live.append(np.zeros(self.slots, dtype=bool))
            self.dirty.append(np.zeros(self.slots, dtype=bool))
        old = self._subjects.pop(subject_id, None)
        if old is not None:
            self._retire(*old)
        self.live[block][slot] = True
        self._subjects[subject_id] = (block, slot)
        self._changes += 1
        return old

    def remove(self, subject_id: str) -> int:
        """Remove a subject; its slot becomes dirty. Returns its block."""
        block, slot = self.location(subject_id)
        del self._subjects[subject_id]
        self._retire(block, slot)
        self._changes += 1
        return block

    def refreshed(self, block: int) -> None:
        """Block ``block`` was re-encrypted with only its live slots: clear its dirty slots."""
        self.dirty[block][:] = False

    def _retire(self, block: int, slot: int) -> None:
        self.live[block][slot] = False
        self.dirty[block][slot] = True
