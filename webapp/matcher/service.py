"""Thread-safe gallery operations of the matcher, persisted per block (matcher only, key-less).

:class:`MatcherService` owns the in-memory :class:`~facepp.crypto.ckks.matcher.CkksMatcher`
and the :class:`~webapp.matcher.store.MatcherStore`. One lock serialises every
gallery mutation and scoring (gunicorn serves requests on several threads;
Pyfhel holds the GIL anyway). Each operation validates first, then changes the
gallery in memory, then writes the blocks it touched in one transaction; if the
write fails the gallery is reloaded from the database, so memory never drifts
from storage. A refused request changes nothing.

Security: imports only the public CKKS modules (``public_key``, ``matcher``,
``gallery``, and the key-less ``wire``/``packing`` helpers for per-block
storage of :mod:`facepp.crypto.ckks`); never ``facepp.crypto.ckks.secret_key``.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from facepp.crypto.ckks import wire
from facepp.crypto.ckks.gallery import EncryptedGallery
from facepp.crypto.ckks.matcher import CkksMatcher
from facepp.crypto.ckks.packing import pack_bitmap
from facepp.crypto.ckks.params import CkksParams
from facepp.crypto.ckks.public_key import CkksPublicContext
from facepp.crypto.ckks.sizes import message_bytes
from facepp.errors import ConfigError, ConflictError, FaceppError, ForbiddenError, NotFoundError, ProtocolError
from webapp.matcher.store import BlockRecord, GalleryChange, MatcherStore, StoredBundle

logger = logging.getLogger(__name__)
T = TypeVar("T")
#: Metadata layout of a GALLERY envelope (dim, baby steps, block count), docs/ckks.md §4.
_GALLERY_META = struct.Struct("<HHI")


@dataclass(frozen=True)
class BundleInfo:
    """What the matcher tells about its registered bundle."""

    fingerprint: str
    dim: int


class MatcherService:
    """The matcher's gallery, persisted block by block.

    Args:
        store: the database.
        pinned_fingerprint: if set, the only public bundle accepted.
    """

    def __init__(self, store: MatcherStore, *, pinned_fingerprint: bytes | None = None) -> None:
        self.store = store
        self.pinned_fingerprint = pinned_fingerprint
        self._lock = threading.RLock()
        self._matcher: CkksMatcher | None = None
        self.reload()

    # -- loading -------------------------------------------------------------------------------

    def reload(self) -> None:
        """(Re)build the in-memory gallery from the database.

        Raises:
            ProtocolError, KeyMismatchError: stored data that no longer parses
                (corruption, or a bundle other than the pinned one).
        """
        with self._lock:
            started = time.perf_counter()
            stored = self.store.bundle()
            if stored is None:
                self._matcher = None
                return
            context = CkksPublicContext.from_bundle(stored.data, expected_fingerprint=self.pinned_fingerprint)
            matcher = CkksMatcher(context, dim=stored.dim)
            matcher.gallery = _load_gallery(context, stored.dim, self.store)
            self._matcher = matcher
            logger.info("loaded gallery: %d subjects in %d blocks under bundle %s (%.2f s)", len(matcher.gallery),
                        len(matcher.gallery.blocks), context.fingerprint_hex[:16], time.perf_counter() - started)

    # -- bundle --------------------------------------------------------------------------------

    def bundle_info(self) -> BundleInfo:
        """Fingerprint and dim of the registered bundle.

        Raises:
            NotFoundError: no bundle registered.
        """
        matcher = self._require_matcher(NotFoundError("no public bundle registered"))
        return BundleInfo(matcher.context.fingerprint_hex, matcher.gallery.dim)

    def body_limit(self, kind: wire.Kind | None) -> int:
        """The largest request body carrying a ``kind`` message (0: the route takes no body).

        Follows from the CKKS parameters (:mod:`facepp.crypto.ckks.sizes`): those of the registered
        bundle and its dim; before any registration the protocol's defaults, and no block exists.
        A new bundle is bounded by the defaults (ring degree 8192).
        """
        if kind is None:
            return 0
        if kind is wire.Kind.PUBLIC_BUNDLE or self._matcher is None:
            return 0 if kind is wire.Kind.BLOCK else message_bytes(kind, CkksParams(), 0)
        return message_bytes(kind, self._matcher.context.params, self._matcher.gallery.dim)

    def register_bundle(self, data: bytes, *, dim: int, replace: bool = False) -> tuple[BundleInfo, bool]:
        """Register the terminal's public bundle; the first one registered is pinned.

        Args:
            replace: replace a registered bundle (or dim) by another; the caller checked the
                ``admin`` scope. Only an empty gallery can be replaced.

        Returns:
            ``(info, created)``: ``created`` is ``False`` when the same bundle and dim were registered already.

        Raises:
            ProtocolError, KeyMismatchError: malformed bundle, bad dim, or not the pinned bundle.
            ConflictError: another bundle (or dim) is registered and ``replace`` is off or the gallery is not empty.
        """
        context = CkksPublicContext.from_bundle(data, expected_fingerprint=self.pinned_fingerprint)
        try:
            matcher = CkksMatcher(context, dim=dim)
        except ConfigError as exc:
            raise ProtocolError(f"dim {dim} does not fit the bundle: {exc}") from exc
        info = BundleInfo(context.fingerprint_hex, dim)
        with self._lock:
            current = self._matcher
            if current is not None:
                if current.context.fingerprint == context.fingerprint and current.gallery.dim == dim:
                    return info, False
                if not replace:
                    raise ConflictError("another public bundle is registered and pinned: replacing it needs an "
                                        "admin key and ?replace=true")
                if len(current.gallery):
                    raise ConflictError("another public bundle is registered and the gallery is not empty")
            self.store.replace_bundle(StoredBundle(info.fingerprint, dim, bytes(data)))
            self._matcher = matcher
        logger.info("registered public bundle %s (dim %d, %d bytes)", info.fingerprint[:16], dim, len(data))
        return info, True

    # -- subjects ------------------------------------------------------------------------------

    def subjects(self) -> list[str]:
        """Enrolled subject ids, sorted."""
        with self._lock:
            return sorted(self._matcher.gallery) if self._matcher else []

    def enrol(self, subject_id: str, template: bytes) -> tuple[int, int]:
        """Enrol a TEMPLATE message; writes the one block it lands in.

        Raises:
            ConflictError: no bundle registered, or the subject exists.
            ProtocolError, KeyMismatchError: malformed or foreign template.
        """
        with self._lock:
            matcher = self._require_matcher()
            if subject_id in matcher.gallery:
                raise ConflictError("subject id already enrolled (PUT replaces)")
            location = self._mutate(lambda: matcher.add(subject_id, template),
                                    lambda loc: GalleryChange(blocks=[self._record(loc[0], data=True)],
                                                              upsert_subjects=[(subject_id, *loc)]))
        return location

    def replace(self, subject_id: str, template: bytes) -> tuple[int, int]:
        """Replace a subject's template (the old slot becomes dirty until its block is refreshed).

        Raises:
            NotFoundError: unknown subject.
            ConflictError: no bundle registered.
            ProtocolError, KeyMismatchError: malformed or foreign template.
        """
        with self._lock:
            matcher = self._require_matcher()
            old_block, _ = self._location(matcher, subject_id)

            def change(loc: tuple[int, int]) -> GalleryChange:
                blocks = [self._record(loc[0], data=True)]
                if old_block != loc[0]:
                    blocks.append(self._record(old_block, data=False))
                return GalleryChange(blocks=blocks, upsert_subjects=[(subject_id, *loc)])

            return self._mutate(lambda: matcher.replace(subject_id, template), change)

    def delete(self, subject_id: str) -> int:
        """Delete a subject (its slot becomes dirty); rewrites only the block's bitmaps.

        Returns:
            The block to refresh.

        Raises:
            NotFoundError: unknown subject.
        """
        with self._lock:
            matcher = self._require_matcher(NotFoundError("unknown subject id"))
            self._location(matcher, subject_id)
            return self._mutate(lambda: matcher.delete(subject_id),
                                lambda block: GalleryChange(blocks=[self._record(block, data=False)],
                                                            delete_subjects=[subject_id]))

    # -- scoring -------------------------------------------------------------------------------

    def score_one(self, subject_id: str, probe: bytes) -> bytes:
        """Masked 1:1 scores (only the claimed subject's slot is non-zero).

        Raises:
            NotFoundError: unknown subject (or no bundle).
            ProtocolError, KeyMismatchError: malformed, foreign or level-1 probe.
        """
        with self._lock:
            matcher = self._require_matcher(NotFoundError("unknown subject id"))
            self._location(matcher, subject_id)
            return matcher.score_one(subject_id, probe, mask=True)

    def identify(self, probe: bytes) -> bytes:
        """1:N scores of every live subject.

        Raises:
            ConflictError: no bundle registered.
            ProtocolError, KeyMismatchError: malformed or foreign probe.
        """
        with self._lock:
            return self._require_matcher().score_all(probe)

    # -- block refresh -------------------------------------------------------------------------

    def stale_blocks(self) -> list[int]:
        """Blocks holding dirty (deleted or replaced) slots."""
        with self._lock:
            return self._matcher.gallery.blocks_needing_refresh() if self._matcher else []

    def export_block(self, index: int, *, stale_only: bool = False) -> bytes:
        """BLOCK message of block ``index`` (occupancy = live slots).

        Args:
            stale_only: refuse a block that holds no dirty slot (an ``enrol`` key exports only
                what it must refresh; ``admin`` exports any block).

        Raises:
            NotFoundError: no such block.
            ForbiddenError: ``stale_only`` and the block is not stale.
        """
        with self._lock:
            matcher = self._require_matcher(NotFoundError("no such block"))
            self._check_block(matcher, index)
            if stale_only and index not in matcher.gallery.blocks_needing_refresh():
                raise ForbiddenError(f"block {index} is not stale: an enrol key exports only stale blocks, "
                                     "any other needs an admin key")
            return matcher.gallery.export_block(index)

    def install_block(self, index: int, data: bytes) -> None:
        """Install a refreshed BLOCK (occupancy must equal the live slots); clears its dirty slots.

        Raises:
            NotFoundError: no such block.
            ProtocolError, KeyMismatchError: malformed, foreign or wrong-occupancy block.
        """
        with self._lock:
            matcher = self._require_matcher(NotFoundError("no such block"))
            self._check_block(matcher, index)
            self._mutate(lambda: matcher.gallery.install_block(index, data),
                         lambda _: GalleryChange(blocks=[self._record(index, data=True)]))

    # -- internals -----------------------------------------------------------------------------

    def _require_matcher(self, error: Exception | None = None) -> CkksMatcher:
        if self._matcher is None:
            raise error or ConflictError("no public bundle registered: PUT /api/v1/bundle first")
        return self._matcher

    @staticmethod
    def _location(matcher: CkksMatcher, subject_id: str) -> tuple[int, int]:
        if subject_id not in matcher.gallery:
            raise NotFoundError("unknown subject id")
        return matcher.gallery.location(subject_id)

    @staticmethod
    def _check_block(matcher: CkksMatcher, index: int) -> None:
        if not 0 <= index < len(matcher.gallery.blocks):
            raise NotFoundError(f"no block {index} (the gallery has {len(matcher.gallery.blocks)})")

    def _record(self, index: int, *, data: bool) -> BlockRecord:
        gallery = self._require_matcher().gallery
        block = gallery.blocks[index]
        return BlockRecord(index, pack_bitmap(block.live), pack_bitmap(block.dirty),
                           gallery.export_block(index) if data else None)

    def _mutate(self, operation: Callable[[], T], change: Callable[[T], GalleryChange]) -> T:
        """Run ``operation`` on the in-memory gallery, then persist ``change(result)``; reload on failure.

        Refusals (:class:`FaceppError`) happen before the gallery changes. Any other
        failure (a SEAL error mid-operation, a database error) may leave memory
        ahead of storage, so the gallery is reloaded from the database.
        """
        try:
            result = operation()
        except FaceppError:
            raise
        except Exception:
            logger.exception("a gallery operation failed unexpectedly: reloading the gallery from the database")
            self.reload()
            raise
        try:
            self.store.apply(change(result))
        except Exception:
            logger.exception("persisting a gallery change failed: reloading the gallery from the database")
            self.reload()
            raise
        return result


def _load_gallery(context: CkksPublicContext, dim: int, store: MatcherStore) -> EncryptedGallery:
    """Rebuild the gallery from per-block rows through :meth:`EncryptedGallery.from_bytes`.

    The stored pieces are assembled into one GALLERY envelope so that the
    engine's own strict loader checks every ciphertext (level, scale) and that
    the subject index matches the live bitmaps.

    Raises:
        ProtocolError, KeyMismatchError: inconsistent or foreign stored data.
    """
    gallery = EncryptedGallery(context, dim=dim)
    blobs: list[bytes] = []
    n_blocks = 0
    for record in store.iter_blocks():
        if record.index != n_blocks:
            raise ProtocolError(f"stored gallery blocks are not contiguous: found {record.index}, expected {n_blocks}")
        env = wire.unpack(record.data or b"", kind=wire.Kind.BLOCK, fingerprint=context.fingerprint)
        wire.expect_blobs(env, dim + 1)
        blobs += [record.live, record.dirty, *env.blobs[1:]]  # the BLOCK's own occupancy bitmap is superseded
        n_blocks += 1
    index = {"subjects": [[sid, block, slot] for sid, block, slot in store.subjects()]}
    blobs.insert(0, json.dumps(index).encode())
    meta = _GALLERY_META.pack(dim, gallery.baby, n_blocks)
    data = wire.pack(wire.Kind.GALLERY, fingerprint=context.fingerprint, meta=meta, blobs=blobs)
    return EncryptedGallery.from_bytes(context, data)
