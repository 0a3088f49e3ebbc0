"""One shard of the packed encrypted gallery: some blocks' ciphertexts under the public bundle (matcher only).

A :class:`GalleryShard` holds the terminal's public bundle, the diagonal
ciphertexts of the blocks given to it, by block index, and, for templates
enrolled one by one, the template ciphertext itself by ``(block, slot)``: a 1:1
on such a slot costs one template's work (:func:`facepp.crypto.ckks.ops.single_score`)
instead of one block's. It knows no subject id and no slot state:
:mod:`webapp.matcher.slots` keeps those. The in-process
engine runs one shard; the Ray engine runs one shard per actor
(:mod:`webapp.matcher.ray_engine`). Everything crosses the shard's boundary
as bytes (wire messages in, serialised ciphertexts out), so a shard works the
same in this process or on another machine.

Concurrency: a block is replaced, never changed in place (copy-on-write), so a
score running in another thread reads either the old or the new block whole.

Security: key-less; the bundle is loaded with
:meth:`CkksPublicContext.from_bundle`, which refuses a secret key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from Pyfhel import PyCtxt

from facepp.crypto.ckks import messages as msg
from facepp.crypto.ckks import ops, wire
from facepp.crypto.ckks.packing import unpack_bitmap
from facepp.crypto.ckks.public_key import CkksPublicContext
from facepp.errors import NotFoundError, ProtocolError

logger = logging.getLogger(__name__)


class GalleryShard:
    """Blocks of diagonal ciphertexts by index, and the homomorphic work on them.

    Args:
        bundle: the terminal's PUBLIC_BUNDLE message.
        dim: embedding dimension of the gallery.
        fingerprint: the bundle's fingerprint (the bundle must carry it).
    """

    def __init__(self, bundle: bytes, *, dim: int, fingerprint: bytes) -> None:
        self.context = CkksPublicContext.from_bundle(bundle, expected_fingerprint=fingerprint)
        params = self.context.params
        self.dim = params.check_dim(dim)
        self.baby = params.baby_for(dim)
        self._blocks: dict[int, list[PyCtxt]] = {}
        self._templates: dict[tuple[int, int], PyCtxt] = {}

    def indices(self) -> list[int]:
        """Indices of the blocks held, ascending."""
        return sorted(self._blocks)

    # -- updates ------------------------------------------------------------------------

    def put_block(self, index: int, block: bytes) -> None:
        """Hold (or replace) block ``index`` from a BLOCK message (its occupancy bitmap is not used).

        Raises:
            ProtocolError, KeyMismatchError: malformed or foreign block.
        """
        _, diagonals = msg.parse_block(self.context.he, block, fingerprint=self.context.fingerprint,
                                       params=self.context.params, dim=self.dim)
        self._blocks[index] = diagonals

    def drop_block(self, index: int) -> None:
        """Forget block ``index`` (no error if absent)."""
        self._blocks.pop(index, None)

    def put_template(self, index: int, slot: int, template: bytes) -> None:
        """Hold the level-1 template ciphertext of ``slot`` of block ``index`` (fast 1:1).

        Raises:
            ProtocolError: not a level-1 ciphertext at the gallery's scale.
        """
        self._templates[index, slot] = wire.load_ciphertext(self.context.he, template, level=ops.LEVEL_GALLERY,
                                                            scale=self.context.params.scale, what="template")

    def drop_template(self, index: int, slot: int) -> None:
        """Forget the template of ``slot`` of block ``index`` (no error if absent)."""
        self._templates.pop((index, slot), None)

    def write_template(self, index: int, slot: int, template: bytes, live: bytes) -> tuple[bytes, bytes]:
        """Write a TEMPLATE message into ``slot`` of block ``index`` (a new block starts as zeros), and keep it.

        The slot must be free (zero): the caller's slot table guarantees it.

        Returns:
            The changed block as a BLOCK message with occupancy ``live``, and the
            template at level 1 (both for the database).

        Raises:
            ProtocolError, KeyMismatchError: malformed or foreign template (nothing changes then).
        """
        he, params = self.context.he, self.context.params
        ctxt = msg.parse_template(he, template, fingerprint=self.context.fingerprint, params=params, dim=self.dim)
        pieces = ops.masked_pieces(he, ops.baby_rotations(he, ctxt, baby=self.baby), slot=slot, dim=self.dim,
                                   slots=params.slots, mask_scale=self.context.mask_scale)
        current = self._blocks.get(index) or ops.zero_diagonals(he, params, dim=self.dim)
        self._blocks[index] = [he.add(d, p, True) for d, p in zip(current, pieces, strict=True)]
        he.mod_switch_to_next(ctxt)
        self._templates[index, slot] = ctxt
        return self.export_block(index, live), ctxt.to_bytes(compr_mode=msg.GALLERY_COMPRESSION)

    def export_block(self, index: int, live: bytes) -> bytes:
        """BLOCK message of block ``index`` with occupancy ``live`` (a packed slot bitmap)."""
        occupied = unpack_bitmap(live, slots=self.context.params.slots)
        return msg.pack_block(self._block(index), occupied, fingerprint=self.context.fingerprint, dim=self.dim,
                              baby=self.baby)

    # -- scoring --------------------------------------------------------------------------

    def score(self, probe: bytes, indices: Sequence[int]) -> list[bytes]:
        """1:N partial scores: one level-2 ciphertext (serialised) per block of ``indices``, in that order.

        Raises:
            ProtocolError, KeyMismatchError: malformed or foreign probe.
            NotFoundError: a block this shard does not hold.
        """
        blocks = [self._block(i) for i in indices]
        if not blocks:
            return []
        he = self.context.he
        ctxt = msg.parse_probe(he, probe, fingerprint=self.context.fingerprint, params=self.context.params,
                               dim=self.dim)
        operands = ops.identify_operands(he, ctxt, dim=self.dim, baby=self.baby)
        return [ops.inner_products(he, diagonals, operands, baby=self.baby).to_bytes() for diagonals in blocks]

    def score_slot(self, index: int, slot: int, probe: bytes) -> bytes:
        """1:1 on ``slot``: a level-2 ciphertext (serialised) that shows the terminal that slot's score only.

        With the slot's template held, every slot of the result holds its score
        (one product and ``window_sum``); otherwise the block is scored with the
        probe masked to ``slot`` (zero in every other slot; needs a level-0 probe).

        Raises:
            ProtocolError, KeyMismatchError: malformed, foreign or level-1 probe.
            NotFoundError: a block this shard does not hold.
        """
        diagonals = self._block(index)
        he, params = self.context.he, self.context.params
        ctxt = msg.parse_probe(he, probe, fingerprint=self.context.fingerprint, params=params, dim=self.dim)
        if ctxt.mod_level != ops.LEVEL_FRESH:  # one contract for both paths: the terminal cannot tell them apart
            raise ProtocolError("a verification needs a level-0 probe (encrypt_probe(verification=True))")
        template = self._templates.get((index, slot))
        if template is not None:
            he.mod_switch_to_next(ctxt)
            return ops.single_score(he, template, ctxt, dim=self.dim).to_bytes()
        operands = ops.verify_operands(he, ctxt, slot=slot, dim=self.dim, baby=self.baby, slots=params.slots,
                                       mask_scale=self.context.mask_scale)
        return ops.inner_products(he, diagonals, operands, baby=self.baby).to_bytes()

    def _block(self, index: int) -> list[PyCtxt]:
        try:
            return self._blocks[index]
        except KeyError:
            raise NotFoundError(f"this shard holds no block {index}") from None
