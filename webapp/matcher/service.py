"""Thread-safe gallery operations of the matcher, persisted per block (matcher only, key-less).

:class:`MatcherService` keeps the slot table (:class:`~webapp.matcher.slots.SlotTable`:
who is in which block and slot) and an engine holding the ciphertexts
(:mod:`webapp.matcher.engine`: in this process, or sharded over Ray actors),
and mirrors both into the :class:`~webapp.matcher.store.MatcherStore`, the
source of truth they are rebuilt from.

Concurrency: a readers-writer lock. Scores (1:1 and 1:N) share it and run in
parallel, on every shard; a mutation (enrol, replace, delete, refresh, a new
bundle) holds it alone while it changes the engine, the slot table and the
database, so a reader sees the gallery before or after a mutation, never half
of one. Each mutation validates first, changes the engine, then the slot table,
then writes the blocks it touched in one transaction; an unexpected failure
reloads everything from the database, so memory never drifts from storage. A
refused request changes nothing.

Security: imports only public CKKS modules; never ``facepp.crypto.ckks.secret_key``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from readerwriterlock.rwlock import RWLockWrite

from facepp.crypto.ckks import messages as msg
from facepp.crypto.ckks import wire
from facepp.crypto.ckks.messages import ScoreMode, ScoresIndex
from facepp.crypto.ckks.params import CkksParams
from facepp.crypto.ckks.public_key import unpack_params
from facepp.crypto.ckks.sizes import message_bytes
from facepp.errors import (ConfigError, ConflictError, FaceppError, ForbiddenError, KeyMismatchError, NotFoundError,
                           ProtocolError)
from webapp.matcher.engine import Engine, open_engine, wants_ray
from webapp.matcher.slots import SlotTable
from webapp.matcher.store import BlockRecord, GalleryChange, MatcherStore, StoredBundle

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundleInfo:
    """What the matcher tells about its registered bundle."""

    fingerprint: str
    dim: int


@dataclass
class _Gallery:
    """The registered bundle's gallery: slot table here, ciphertexts in the engine."""

    fingerprint: bytes
    params: CkksParams
    dim: int
    slots: SlotTable
    engine: Engine


class MatcherService:
    """The matcher's gallery, persisted block by block.

    Args:
        store: the database.
        pinned_fingerprint: if set, the only public bundle accepted.
        engine: ``auto``, ``local``, ``ray`` or a Ray address (:mod:`webapp.matcher.engine`).
        shards: Ray actors (0: one per core).
        load: build the gallery now; ``False``: the caller calls :meth:`reload` later, in the process
            that serves (Ray does not survive a fork).
    """

    def __init__(self, store: MatcherStore, *, pinned_fingerprint: bytes | None = None, engine: str = "auto",
                 shards: int = 0, load: bool = True) -> None:
        self.store = store
        self.pinned_fingerprint = pinned_fingerprint
        self.engine_setting = engine
        self.shards = shards
        self._lock = RWLockWrite()
        self._gallery: _Gallery | None = None
        if load:
            self.reload()

    # -- loading -------------------------------------------------------------------------------

    def reload(self) -> None:
        """(Re)build the slot table and the engine from the database.

        Raises:
            ProtocolError, KeyMismatchError: stored data that no longer parses
                (corruption, or a bundle other than the pinned one).
        """
        with self._lock.gen_wlock():
            self._reload()

    def close(self) -> None:
        """Stop the engine (and an embedded Ray)."""
        with self._lock.gen_wlock():
            if self._gallery is not None:
                self._gallery.engine.close()
            self._gallery = None

    @property
    def engine(self) -> Engine | None:
        """The running engine (``None`` before a bundle is registered)."""
        gallery = self._gallery
        return gallery.engine if gallery else None

    def _reload(self) -> None:
        started = time.perf_counter()
        if self._gallery is not None:
            self._gallery.engine.close()
            self._gallery = None
        stored = self.store.bundle()
        if stored is None:
            return
        fingerprint, params = self._check_bundle(stored.data)
        bitmaps = self.store.block_bitmaps()
        if [index for index, _, _ in bitmaps] != list(range(len(bitmaps))):
            raise ProtocolError("stored gallery blocks are not contiguous")
        table = SlotTable.restore(params.slots, [(live, dirty) for _, live, dirty in bitmaps], self.store.subjects())
        engine = self._open_engine(stored.data, stored.dim, fingerprint, blocks=len(bitmaps))
        try:
            for index in range(len(bitmaps)):
                block, templates = self.store.stored_block(index)
                engine.put_block(index, block)
                for slot, template in templates:
                    engine.put_template(index, slot, template)
        except BaseException:
            engine.close()
            raise
        self._gallery = _Gallery(fingerprint, params, stored.dim, table, engine)
        logger.info("loaded gallery: %d subjects in %d blocks on the %s engine (%d shards) under bundle %s (%.2f s)",
                    len(table), table.blocks, engine.name, engine.shards, fingerprint.hex()[:16],
                    time.perf_counter() - started)

    def _open_engine(self, bundle: bytes, dim: int, fingerprint: bytes, *, blocks: int) -> Engine:
        return open_engine(self.engine_setting, shards=self.shards, blocks=blocks, bundle=bundle, dim=dim,
                           fingerprint=fingerprint, loader=self.store.stored_block)

    def _check_bundle(self, data: bytes) -> tuple[bytes, CkksParams]:
        """The fingerprint and CKKS parameters of a bundle, from its envelope (the engine checks the keys).

        Raises:
            ProtocolError, KeyMismatchError: malformed envelope, content not matching its
                fingerprint, or not the pinned bundle.
        """
        env = wire.unpack(data, kind=wire.Kind.PUBLIC_BUNDLE, fingerprint=self.pinned_fingerprint)
        if wire.fingerprint_of(list(env.blobs)) != env.fingerprint:
            raise KeyMismatchError("public bundle fingerprint does not match its content")
        return env.fingerprint, unpack_params(env.meta)

    # -- bundle --------------------------------------------------------------------------------

    def bundle_info(self) -> BundleInfo:
        """Fingerprint and dim of the registered bundle.

        Raises:
            NotFoundError: no bundle registered.
        """
        gallery = self._require(NotFoundError("no public bundle registered"))
        return BundleInfo(gallery.fingerprint.hex(), gallery.dim)

    def body_limit(self, kind: wire.Kind | None) -> int:
        """The largest request body carrying a ``kind`` message (0: the route takes no body).

        Follows from the CKKS parameters (:mod:`facepp.crypto.ckks.sizes`): those of the registered
        bundle and its dim; before any registration the protocol's defaults, and no block exists.
        A new bundle is bounded by the defaults (ring degree 8192).
        """
        if kind is None:
            return 0
        gallery = self._gallery
        if kind is wire.Kind.PUBLIC_BUNDLE or gallery is None:
            return 0 if kind is wire.Kind.BLOCK else message_bytes(kind, CkksParams(), 0)
        return message_bytes(kind, gallery.params, gallery.dim)

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
        fingerprint, params = self._check_bundle(data)
        info = BundleInfo(fingerprint.hex(), dim)
        with self._lock.gen_wlock():
            current = self._gallery
            if current is not None:
                if current.fingerprint == fingerprint and current.dim == dim:
                    return info, False
                if not replace:
                    raise ConflictError("another public bundle is registered and pinned: replacing it needs an "
                                        "admin key and ?replace=true")
                if len(current.slots):
                    raise ConflictError("another public bundle is registered and the gallery is not empty")
            try:
                engine = self._open_engine(data, dim, fingerprint, blocks=0)
            except ConfigError as exc:
                raise ProtocolError(f"dim {dim} does not fit the bundle: {exc}") from exc
            try:
                self.store.replace_bundle(StoredBundle(info.fingerprint, dim, bytes(data)))
            except BaseException:
                engine.close()
                raise
            if current is not None:
                current.engine.close()
            self._gallery = _Gallery(fingerprint, params, dim, SlotTable(params.slots), engine)
        logger.info("registered public bundle %s (dim %d, %d bytes) on the %s engine", info.fingerprint[:16], dim,
                    len(data), engine.name)
        return info, True

    # -- subjects ------------------------------------------------------------------------------

    def subjects(self) -> list[str]:
        """Enrolled subject ids, sorted."""
        with self._lock.gen_rlock():
            return sorted(self._gallery.slots) if self._gallery else []

    def enrol(self, subject_id: str, template: bytes) -> tuple[int, int]:
        """Enrol a TEMPLATE message; writes the one block it lands in.

        Raises:
            ConflictError: no bundle registered, or the subject exists.
            ProtocolError, KeyMismatchError: malformed or foreign template.
        """
        with self._lock.gen_wlock():
            gallery = self._require()
            if subject_id in gallery.slots:
                raise ConflictError("subject id already enrolled (PUT replaces)")
            location = self._write(gallery, subject_id, template)
            if gallery.engine.name == "local" and wants_ray(self.engine_setting, shards=self.shards,
                                                             blocks=gallery.slots.blocks):
                logger.info("the gallery outgrew one block: moving it to the Ray engine")
                self._reload()
        return location

    def replace(self, subject_id: str, template: bytes) -> tuple[int, int]:
        """Replace a subject's template (the old slot becomes dirty until its block is refreshed).

        Raises:
            NotFoundError: unknown subject.
            ConflictError: no bundle registered.
            ProtocolError, KeyMismatchError: malformed or foreign template.
        """
        with self._lock.gen_wlock():
            gallery = self._require()
            gallery.slots.location(subject_id)
            return self._write(gallery, subject_id, template)

    def delete(self, subject_id: str) -> int:
        """Delete a subject (its slot becomes dirty); rewrites only the block's bitmaps.

        Returns:
            The block to refresh.

        Raises:
            NotFoundError: unknown subject.
        """
        with self._lock.gen_wlock():
            gallery = self._require(NotFoundError("unknown subject id"))
            gallery.slots.location(subject_id)

            def change() -> GalleryChange:
                block, slot = gallery.slots.location(subject_id)
                gallery.engine.drop_template(block, slot)
                gallery.slots.remove(subject_id)
                return GalleryChange(blocks=[BlockRecord(block, *gallery.slots.bitmaps(block))],
                                     delete_subjects=[subject_id])

            return self._mutate(change).blocks[0].index

    # -- scoring -------------------------------------------------------------------------------

    def score_one(self, subject_id: str, probe: bytes) -> bytes:
        """1:1 scores that show the terminal the claimed subject's score only.

        A subject enrolled on its own costs one template's work (every slot of the
        reply holds its score); one enrolled in a bulk block costs one block's
        (the other slots are masked to zero).

        Raises:
            NotFoundError: unknown subject (or no bundle).
            ProtocolError, KeyMismatchError: malformed, foreign or level-1 probe.
        """
        with self._lock.gen_rlock():
            gallery = self._require(NotFoundError("unknown subject id"))
            block, slot = gallery.slots.location(subject_id)
            score = gallery.engine.score_slot(block, slot, probe)
        index = ScoresIndex(mode=ScoreMode.VERIFY_MASKED, entries=((subject_id, 0, slot),))
        return msg.pack_scores([score], index, fingerprint=gallery.fingerprint, dim=gallery.dim)

    def identify(self, probe: bytes) -> bytes:
        """1:N scores of every block holding live subjects, named by block and location-table version.

        The reply carries no subject id: the terminal maps slots to subjects with
        :meth:`locations` of the same version (fetched again only after a change).

        Raises:
            ConflictError: no bundle registered.
            ProtocolError, KeyMismatchError: malformed or foreign probe.
        """
        with self._lock.gen_rlock():
            gallery = self._require()
            version, indices = gallery.slots.version, gallery.slots.live_blocks()
            scores = gallery.engine.score(probe, indices)
        logger.info("scored %d blocks", len(indices))
        index = ScoresIndex(mode=ScoreMode.IDENTIFY_BLOCKS, version=version, blocks=tuple(indices))
        return msg.pack_scores(scores, index, fingerprint=gallery.fingerprint, dim=gallery.dim)

    def locations(self) -> tuple[str, list[tuple[str, int, int]]]:
        """The location table: its version and ``(subject_id, block, slot)`` of every live subject.

        Raises:
            ConflictError: no bundle registered.
        """
        with self._lock.gen_rlock():
            gallery = self._require()
            return gallery.slots.version, gallery.slots.locations()

    # -- block refresh -------------------------------------------------------------------------

    def stale_blocks(self) -> list[int]:
        """Blocks holding dirty (deleted or replaced) slots."""
        with self._lock.gen_rlock():
            return self._gallery.slots.stale_blocks() if self._gallery else []

    def export_block(self, index: int, *, stale_only: bool = False) -> bytes:
        """BLOCK message of block ``index`` (occupancy = live slots).

        Args:
            stale_only: refuse a block that holds no dirty slot (an ``enrol`` key exports only
                what it must refresh; ``admin`` exports any block).

        Raises:
            NotFoundError: no such block.
            ForbiddenError: ``stale_only`` and the block is not stale.
        """
        with self._lock.gen_rlock():
            gallery = self._require(NotFoundError("no such block"))
            self._check_block(gallery, index)
            if stale_only and index not in gallery.slots.stale_blocks():
                raise ForbiddenError(f"block {index} is not stale: an enrol key exports only stale blocks, "
                                     "any other needs an admin key")
            return gallery.engine.export_block(index, gallery.slots.bitmaps(index)[0])

    def install_block(self, index: int, data: bytes) -> None:
        """Install a refreshed BLOCK (occupancy must equal the live slots); clears its dirty slots.

        Raises:
            NotFoundError: no such block.
            ProtocolError, KeyMismatchError: malformed, foreign or wrong-occupancy block.
        """
        with self._lock.gen_wlock():
            gallery = self._require(NotFoundError("no such block"))
            self._check_block(gallery, index)
            env = wire.unpack(data, kind=wire.Kind.BLOCK, fingerprint=gallery.fingerprint)
            live, _ = gallery.slots.bitmaps(index)
            if not env.blobs or env.blobs[0] != live:
                raise ProtocolError("refreshed block occupancy does not match the block's live subjects")

            def change() -> GalleryChange:
                gallery.engine.put_block(index, data)
                gallery.slots.refreshed(index)
                return GalleryChange(blocks=[BlockRecord(index, *gallery.slots.bitmaps(index), data)])

            self._mutate(change)
        logger.info("installed refreshed block %d", index)

    # -- internals -----------------------------------------------------------------------------

    def _require(self, error: Exception | None = None) -> _Gallery:
        if self._gallery is None:
            raise error or ConflictError("no public bundle registered: PUT /api/v1/bundle first")
        return self._gallery

    @staticmethod
    def _check_block(gallery: _Gallery, index: int) -> None:
        if not 0 <= index < gallery.slots.blocks:
            raise NotFoundError(f"no block {index} (the gallery has {gallery.slots.blocks})")

    def _write(self, gallery: _Gallery, subject_id: str, template: bytes) -> tuple[int, int]:
        """Write ``template`` into the next free slot for ``subject_id`` (enrol or replace)."""
        block, slot = gallery.slots.next_free()

        def change() -> GalleryChange:
            data, kept = gallery.engine.write_template(block, slot, template, gallery.slots.live_with(block, slot))
            old = gallery.slots.assign(subject_id, block, slot)
            records = [BlockRecord(block, *gallery.slots.bitmaps(block), data)]
            if old is not None:
                gallery.engine.drop_template(*old)
                if old[0] != block:
                    records.append(BlockRecord(old[0], *gallery.slots.bitmaps(old[0])))
            return GalleryChange(blocks=records, upsert_subjects=[(subject_id, block, slot)],
                                 templates={subject_id: kept})

        self._mutate(change)
        return block, slot

    def _mutate(self, operation: Callable[[], GalleryChange]) -> GalleryChange:
        """Change the engine and slot table (``operation``), then persist what it returns; reload on failure.

        Refusals (:class:`FaceppError`) happen before anything changes. Any other
        failure (a SEAL error mid-operation, a lost shard, a database error) may
        leave memory ahead of storage, so everything is reloaded from the database.
        Call with the write lock held.
        """
        try:
            change = operation()
        except FaceppError:
            raise
        except Exception:
            logger.exception("a gallery operation failed unexpectedly: reloading the gallery from the database")
            self._reload()
            raise
        try:
            self.store.apply(change)
        except Exception:
            logger.exception("persisting a gallery change failed: reloading the gallery from the database")
            self._reload()
            raise
        return change
