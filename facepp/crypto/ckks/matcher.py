"""CKKS matcher: MATCHER side, key-less (public bundle only).

The matcher loads the terminal's public bundle, keeps an
:class:`~facepp.crypto.ckks.gallery.EncryptedGallery` and turns an encrypted
probe into encrypted scores for one subject (1:1) or the whole gallery (1:N).
It never holds a secret key and never imports :mod:`facepp.crypto.ckks.secret_key`.

What the matcher learns: gallery size and layout, which subject a 1:1 query
names, when queries happen and the probe/score sizes; never an embedding or a
score.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from facepp.crypto.ckks import messages as msg
from facepp.crypto.ckks import ops
from facepp.crypto.ckks.gallery import EncryptedGallery
from facepp.crypto.ckks.messages import ScoreMode, ScoresIndex
from facepp.crypto.ckks.public_key import CkksPublicContext

logger = logging.getLogger(__name__)


class CkksMatcher:
    """Encrypted 1:1 and 1:N matching over a packed gallery (matcher side).

    Args:
        context: public context (:meth:`CkksPublicContext.from_bundle`).
        dim: embedding dimension of the gallery.
    """

    def __init__(self, context: CkksPublicContext, *, dim: int) -> None:
        self.context = context
        self.gallery = EncryptedGallery(context, dim=dim)

    @classmethod
    def from_public_bundle(
        cls, bundle: bytes, *, dim: int, expected_fingerprint: bytes | None = None
    ) -> CkksMatcher:
        """Load the terminal's public bundle and start an empty gallery.

        Raises:
            ProtocolError, KeyMismatchError: malformed or unexpected bundle.
        """
        return cls(CkksPublicContext.from_bundle(bundle, expected_fingerprint=expected_fingerprint), dim=dim)

    @property
    def fingerprint(self) -> bytes:
        """Fingerprint every incoming message must carry."""
        return self.context.fingerprint

    # -- gallery updates (delegated) ------------------------------------------------------

    def add(self, subject_id: str, template: bytes) -> tuple[int, int]:
        """See :meth:`EncryptedGallery.add`."""
        return self.gallery.add(subject_id, template)

    def add_block(self, block: bytes, subject_ids: Sequence[str]) -> int:
        """See :meth:`EncryptedGallery.add_block`."""
        return self.gallery.add_block(block, subject_ids)

    def replace(self, subject_id: str, template: bytes) -> tuple[int, int]:
        """See :meth:`EncryptedGallery.replace`."""
        return self.gallery.replace(subject_id, template)

    def delete(self, subject_id: str) -> int:
        """See :meth:`EncryptedGallery.delete`."""
        return self.gallery.delete(subject_id)

    # -- scoring --------------------------------------------------------------------------

    def score_all(self, probe: bytes) -> bytes:
        """1:N: encrypted scores of every live subject.

        Cost: ``b - 1`` probe rotations per query, then per block ``dim``
        ciphertext products and ``2 (dim / b - 1) + 1`` key switches.

        Args:
            probe: PROBE message (level 0 or 1).

        Returns:
            SCORES message, one ciphertext per block holding live subjects.

        Raises:
            ProtocolError, KeyMismatchError: malformed or foreign probe.
        """
        g = self.gallery
        he = self.context.he
        ctxt = msg.parse_probe(he, probe, fingerprint=self.fingerprint, params=self.context.params, dim=g.dim)
        operands = ops.identify_operands(he, ctxt, dim=g.dim, baby=g.baby)
        cts = []
        entries: list[tuple[str, int, int]] = []
        by_block = g.entries_by_block()
        for index, block in enumerate(g.blocks):
            live = by_block.get(index)
            if not live:
                continue
            cts.append(ops.inner_products(he, block.diagonals, operands, baby=g.baby))
            entries.extend((sid, len(cts) - 1, slot) for sid, slot in live)
        logger.info("scored %d subjects in %d blocks", len(entries), len(cts))
        index_ = ScoresIndex(mode=ScoreMode.IDENTIFY, entries=tuple(entries))
        return msg.pack_scores(cts, index_, fingerprint=self.fingerprint, dim=g.dim)

    def score_one(self, subject_id: str, probe: bytes, *, mask: bool = True) -> bytes:
        """1:1: the encrypted score of one subject.

        Args:
            subject_id: the claimed identity.
            probe: PROBE message; level 0 (``encrypt_probe(..., verification=True)``)
                when ``mask`` is on.
            mask: zero every other slot of the returned ciphertext with plaintext
                0/1 masks, so the terminal learns only this subject's score
                (costs ``dim`` extra plaintext products and rescales).

        Returns:
            SCORES message with one ciphertext.

        Raises:
            KeyError: unknown subject.
            ProtocolError, KeyMismatchError: malformed or foreign probe, or a
                level-1 probe with ``mask=True``.
        """
        g = self.gallery
        he = self.context.he
        block_index, slot = g.location(subject_id)
        ctxt = msg.parse_probe(he, probe, fingerprint=self.fingerprint, params=self.context.params, dim=g.dim)
        block = g.blocks[block_index]
        if mask:
            operands = ops.verify_operands(he, ctxt, slot=slot, dim=g.dim, baby=g.baby, slots=g.slots,
                                           mask_scale=self.context.mask_scale)
        else:
            operands = ops.identify_operands(he, ctxt, dim=g.dim, baby=g.baby)
        scores = ops.inner_products(he, block.diagonals, operands, baby=g.baby)
        mode = ScoreMode.VERIFY_MASKED if mask else ScoreMode.VERIFY
        index = ScoresIndex(mode=mode, entries=((subject_id, 0, slot),))
        return msg.pack_scores([scores], index, fingerprint=self.fingerprint, dim=g.dim)
