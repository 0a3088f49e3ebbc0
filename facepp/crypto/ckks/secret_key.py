"""CKKS key holder: TERMINAL ONLY (holds the secret key).

The matcher must never import this module (a test checks that
:mod:`facepp.crypto.ckks.matcher` does not pull it in). The key holder
generates the context and keys, exports the public bundle, encrypts probes,
templates and gallery blocks, re-encrypts blocks after deletions and decrypts
scores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
from Pyfhel import Pyfhel, PyCtxt

from facepp.crypto.ckks import messages as msg
from facepp.crypto.ckks import wire
from facepp.crypto.ckks.packing import check_embeddings, diagonal_block, replicate, undiagonal_block
from facepp.crypto.ckks.params import CkksParams
from facepp.crypto.ckks.public_key import (
    BUNDLE_PARTS,
    CkksPublicContext,
    context_from_params,
    new_context,
    pack_params,
    rotation_steps,
    unpack_params,
)
from facepp.errors import ConfigError, KeyMismatchError, ProtocolError

logger = logging.getLogger(__name__)


class CkksKeyHolder:
    """The terminal's CKKS context with its secret key.

    Security: terminal only. Everything it exports except :meth:`to_secret_bytes`
    is safe to send to the matcher.
    """

    def __init__(self, he: Pyfhel, params: CkksParams, public_parts: list[bytes]) -> None:
        """Use :meth:`generate` or :meth:`from_secret_bytes` instead."""
        if he.is_secret_key_empty():
            raise ConfigError("a CkksKeyHolder needs a secret key")
        self._he = he
        self.params = params
        self._public_parts = public_parts
        self.fingerprint = wire.fingerprint_of(public_parts)
        self._public = CkksPublicContext(
            he=he, params=params, fingerprint=self.fingerprint, bundle_bytes=sum(map(len, public_parts))
        )

    @classmethod
    def generate(cls, params: CkksParams | None = None) -> CkksKeyHolder:
        """Create a fresh context and key set (secret, public, relinearisation, rotations 1 and b).

        Args:
            params: CKKS parameters; the documented defaults if ``None``.

        Returns:
            A new key holder.
        """
        params = params or CkksParams()
        he = new_context(params)
        he.keyGen()
        he.relinKeyGen()
        he.rotateKeyGen(rot_steps=rotation_steps(params))
        parts = [he.to_bytes_context(), he.to_bytes_public_key(), he.to_bytes_relin_key(), he.to_bytes_rotate_key()]
        holder = cls(he, params, parts)
        logger.info("generated CKKS keys %s (n=%d, primes %s)", holder.fingerprint_hex[:16], params.poly_degree, params.qi_sizes)
        return holder

    @property
    def fingerprint_hex(self) -> str:
        """Hex fingerprint of the public bundle (safe to log)."""
        return self.fingerprint.hex()

    @property
    def public(self) -> CkksPublicContext:
        """The public view of this context (the same Pyfhel object: terminal use only)."""
        return self._public

    def export_public_bundle(self) -> bytes:
        """The public bundle for the matcher: context, public, relinearisation and rotation keys."""
        return wire.pack(
            wire.Kind.PUBLIC_BUNDLE, fingerprint=self.fingerprint, meta=pack_params(self.params), blobs=self._public_parts
        )

    def to_secret_bytes(self) -> bytes:
        """Serialise the whole key set, secret key included. Terminal storage only."""
        blobs = self._public_parts + [self._he.to_bytes_secret_key()]
        return wire.pack(wire.Kind.SECRET, fingerprint=self.fingerprint, meta=pack_params(self.params), blobs=blobs)

    @classmethod
    def from_secret_bytes(cls, data: bytes) -> CkksKeyHolder:
        """Load a key set written by :meth:`to_secret_bytes`.

        Raises:
            ProtocolError: malformed data.
            KeyMismatchError: wrong kind/version or a fingerprint that does not match the content.
        """
        env = wire.unpack(data, kind=wire.Kind.SECRET, fingerprint=None)
        wire.expect_blobs(env, len(BUNDLE_PARTS) + 1)
        params = unpack_params(env.meta)
        parts = list(env.blobs[:-1])
        if wire.fingerprint_of(parts) != env.fingerprint:
            raise KeyMismatchError("key file fingerprint does not match its content")
        he = context_from_params(params, expected=parts[0])
        loaders = (he.from_bytes_public_key, he.from_bytes_relin_key, he.from_bytes_rotate_key, he.from_bytes_secret_key)
        for loader, blob in zip(loaders, env.blobs[1:]):
            try:
                loader(blob)
            except (RuntimeError, ValueError, TypeError, MemoryError) as exc:
                raise ProtocolError(f"malformed CKKS key file ({type(exc).__name__})") from exc
        return cls(he, params, parts)

    # -- encryption ---------------------------------------------------------------------

    def _encrypt(self, values: npt.NDArray[np.float64]) -> PyCtxt:
        return self._he.encryptFrac(np.ascontiguousarray(values, dtype=np.float64), scale=self.params.scale)

    def encrypt_probe(self, embedding: npt.ArrayLike, *, verification: bool = True) -> bytes:
        """Encrypt a probe as ONE replicated ciphertext.

        Args:
            embedding: ``(d,)`` float, L2-normalised.
            verification: keep all primes (level 0, ~393 KB) so the matcher can
                compute a masked 1:1 score; ``False`` drops one prime (level 1,
                ~262 KB): enough for identification and unmasked verification.

        Returns:
            A PROBE message.

        Raises:
            ConfigError, EncodingOverflowError: invalid embedding.
        """
        x = self._check(embedding)[0]
        ctxt = self._encrypt(replicate(x, slots=self.params.slots))
        if not verification:
            self._he.mod_switch_to_next(ctxt)
        return msg.pack_probe(ctxt, fingerprint=self.fingerprint, dim=x.shape[0])

    def encrypt_template(self, embedding: npt.ArrayLike) -> bytes:
        """Encrypt one template for enrolment into a slot chosen by the matcher.

        Args:
            embedding: ``(d,)`` float, L2-normalised.

        Returns:
            A TEMPLATE message (one replicated ciphertext, level 0).
        """
        x = self._check(embedding)[0]
        return msg.pack_template(self._encrypt(replicate(x, slots=self.params.slots)), fingerprint=self.fingerprint, dim=x.shape[0])

    def encrypt_block(self, embeddings: npt.ArrayLike) -> bytes:
        """Encrypt up to ``slots`` templates as one packed gallery block (bulk enrolment).

        Args:
            embeddings: ``(k, d)`` float, rows L2-normalised, ``1 <= k <= slots``;
                row ``t`` goes to slot ``t``.

        Returns:
            A BLOCK message (``d`` ciphertexts at level 1).
        """
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or not 1 <= x.shape[0] <= self.params.slots:
            raise ConfigError(f"a block holds 1..{self.params.slots} templates as a (k, d) array, got {x.shape}")
        x = self._check(x)
        occupied = np.zeros(self.params.slots, dtype=bool)
        occupied[: x.shape[0]] = True
        return self._block_message(x, occupied)

    def refresh_block(self, block: bytes, *, dim: int, keep_slots: Sequence[int]) -> bytes:
        """Re-encrypt a gallery block, zeroing every slot not in ``keep_slots`` (after deletions).

        Security: the terminal sees the block's templates in memory only.

        Args:
            block: BLOCK message exported by the matcher.
            dim: embedding dimension of the gallery.
            keep_slots: slots of the block's live subjects.

        Returns:
            A fresh BLOCK message whose occupancy is exactly ``keep_slots``.
        """
        occupied_in, diagonals = msg.parse_block(
            self._he, block, fingerprint=self.fingerprint, params=self.params, dim=self.params.check_dim(dim)
        )
        keep = np.zeros(self.params.slots, dtype=bool)
        for slot in keep_slots:
            if not 0 <= slot < self.params.slots:
                raise ProtocolError(f"slot {slot} outside [0, {self.params.slots})")
            keep[slot] = True
        plain = np.stack([self._he.decryptFrac(c) for c in diagonals])
        matrix = undiagonal_block(plain, baby=self.params.baby_for(dim))
        matrix[~keep] = 0.0
        return self._block_message(matrix, keep)

    def _block_message(self, templates: npt.NDArray[np.float64], occupied: npt.NDArray[np.bool_]) -> bytes:
        dim = templates.shape[1]
        diagonals = diagonal_block(templates, slots=self.params.slots, baby=self.params.baby_for(dim))
        cts = []
        for row in diagonals:
            ctxt = self._encrypt(row)
            self._he.mod_switch_to_next(ctxt)  # gallery lives at level 1
            cts.append(ctxt)
        return msg.pack_block(cts, occupied, fingerprint=self.fingerprint, dim=dim, baby=self.params.baby_for(dim))

    def _check(self, embeddings: npt.ArrayLike) -> npt.NDArray[np.float64]:
        arr = np.asarray(embeddings, dtype=np.float64)
        dim = arr.shape[-1] if arr.ndim in (1, 2) else -1
        return check_embeddings(arr, dim=self.params.check_dim(dim))

    # -- decryption ---------------------------------------------------------------------

    def decrypt_scores(
        self, scores: bytes, *, dim: int,
        locations: Callable[[str], Mapping[int, Sequence[tuple[str, int]]]] | None = None,
    ) -> dict[str, float]:
        """Decrypt a scores message into cosine scores per subject id.

        Args:
            scores: SCORES message from the matcher.
            dim: embedding dimension of the gallery.
            locations: for a reply that names blocks (``IDENTIFY_BLOCKS``): the matcher's
                location table of that version, ``{block: [(subject_id, slot), ...]}``.

        Returns:
            ``{subject_id: score}`` in the matcher's order; scores are cosine
            similarities in ``[-1, 1]`` (within ~1e-6).

        Raises:
            ProtocolError, KeyMismatchError: malformed or foreign message.
        """
        index, cts = msg.parse_scores(
            self._he, scores, fingerprint=self.fingerprint, dim=self.params.check_dim(dim),
            score_scale=self._public.score_scale,
        )
        plain = [self._he.decryptFrac(c) for c in cts]
        if index.mode is not msg.ScoreMode.IDENTIFY_BLOCKS:
            return {sid: float(plain[pos][slot]) for sid, pos, slot in index.entries}
        if locations is None or index.version is None:
            raise ProtocolError("these scores name blocks: decrypting them needs the matcher's location table")
        table = locations(index.version)
        out = {}
        for pos, block in enumerate(index.blocks):
            for sid, slot in table.get(block, ()):
                if not 0 <= slot < self.params.slots:
                    raise ProtocolError(f"location table slot {slot} outside [0, {self.params.slots})")
                out[sid] = float(plain[pos][slot])
        return out

    def decrypt_score_slots(self, scores: bytes, *, dim: int) -> list[npt.NDArray[np.float64]]:
        """Every slot of every score ciphertext, ``(slots,)`` float64 each (audits and tests).

        Shows what the terminal could see: for a masked verification, all slots
        but the subject's are ~0.
        """
        _, cts = msg.parse_scores(
            self._he, scores, fingerprint=self.fingerprint, dim=self.params.check_dim(dim),
            score_scale=self._public.score_scale,
        )
        return [np.asarray(self._he.decryptFrac(c), dtype=np.float64) for c in cts]

