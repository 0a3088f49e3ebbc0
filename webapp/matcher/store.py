"""Persistence of the matcher's state through SQLAlchemy (matcher only).

Granularity: one row per packed gallery block, so enrolling, replacing or
refreshing writes the one or two blocks it touched, and deleting rewrites only
two small bitmaps. Every change is one transaction. Nothing here interprets a
ciphertext; :mod:`webapp.matcher.service` does (through the public CKKS API).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from facepp.errors import ConflictError, NotFoundError
from webapp.matcher.models import ApiKeyRow, AuditRow, Base, BlockRow, BundleRow, SubjectRow, utcnow

logger = logging.getLogger(__name__)
BUNDLE_ROW_ID = 1


@dataclass(frozen=True)
class StoredBundle:
    """The registered public bundle (``data`` is the terminal's PUBLIC_BUNDLE message)."""

    fingerprint: str
    dim: int
    data: bytes


@dataclass(frozen=True)
class BlockRecord:
    """A block to write: slot bitmaps always, the BLOCK message only when its ciphertexts changed.

    Attributes:
        index: block index.
        live: live-slot bitmap (``S / 8`` bytes, :func:`facepp.crypto.ckks.packing.pack_bitmap`).
        dirty: dirty-slot bitmap.
        data: BLOCK message (``EncryptedGallery.export_block``), or ``None`` to keep the stored one.
    """

    index: int
    live: bytes
    dirty: bytes
    data: bytes | None = None


@dataclass
class GalleryChange:
    """Everything one gallery operation changed, written in one transaction."""

    blocks: list[BlockRecord] = field(default_factory=list)
    upsert_subjects: list[tuple[str, int, int]] = field(default_factory=list)
    templates: dict[str, bytes] = field(default_factory=dict)
    delete_subjects: list[str] = field(default_factory=list)


class MatcherStore:
    """The matcher's database (bundle, blocks, subjects, API keys, audit log).

    Args:
        engine: an engine whose schema is at the newest Alembic revision.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- bundle and gallery -----------------------------------------------------------------

    def bundle(self) -> StoredBundle | None:
        """The registered bundle, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(BundleRow.fingerprint, BundleRow.dim, BundleRow.data)).first()
        return StoredBundle(row.fingerprint, row.dim, bytes(row.data)) if row else None

    def replace_bundle(self, bundle: StoredBundle) -> None:
        """Register ``bundle``, dropping any gallery of a previous bundle (the caller checked it is empty)."""
        with self.engine.begin() as conn:
            conn.execute(delete(SubjectRow))
            conn.execute(delete(BlockRow))
            conn.execute(delete(BundleRow))
            conn.execute(insert(BundleRow).values(id=BUNDLE_ROW_ID, fingerprint=bundle.fingerprint, dim=bundle.dim,
                                                  data=bundle.data, registered_at=utcnow()))

    def subjects(self) -> list[tuple[str, int, int]]:
        """``(subject_id, block, slot)`` of every enrolled subject, by block and slot."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(SubjectRow.subject_id, SubjectRow.block_index, SubjectRow.slot).order_by(
                    SubjectRow.block_index, SubjectRow.slot)
            ).all()
        return [(r.subject_id, r.block_index, r.slot) for r in rows]

    def block_bitmaps(self) -> list[tuple[int, bytes, bytes]]:
        """``(index, live, dirty)`` of every stored block, by index (no ciphertexts)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(BlockRow.block_index, BlockRow.live, BlockRow.dirty).order_by(BlockRow.block_index)).all()
        return [(r.block_index, bytes(r.live), bytes(r.dirty)) for r in rows]

    def block_data(self, index: int) -> bytes:
        """The stored BLOCK message of block ``index``.

        Raises:
            NotFoundError: no such block.
        """
        with self.engine.connect() as conn:
            data = conn.scalar(select(BlockRow.data).where(BlockRow.block_index == index))
        if data is None:
            raise NotFoundError(f"no stored block {index}")
        return bytes(data)

    def apply(self, change: GalleryChange) -> None:
        """Write one gallery operation atomically (blocks first, then subjects)."""
        now = utcnow()
        with self.engine.begin() as conn:
            existing = set(conn.scalars(select(BlockRow.block_index)))
            for block in change.blocks:
                values: dict[str, object] = {"live": block.live, "dirty": block.dirty, "updated_at": now}
                if block.data is not None:
                    values["data"] = block.data
                if block.index in existing:
                    conn.execute(update(BlockRow).where(BlockRow.block_index == block.index).values(**values))
                elif block.data is None:
                    raise ValueError(f"block {block.index} is new: its ciphertexts must be written")
                else:
                    conn.execute(insert(BlockRow).values(block_index=block.index, **values))
            if change.delete_subjects:
                conn.execute(delete(SubjectRow).where(SubjectRow.subject_id.in_(change.delete_subjects)))
            for sid, block_index, slot in change.upsert_subjects:
                row = {"block_index": block_index, "slot": slot, "template": change.templates.get(sid)}
                moved = conn.execute(update(SubjectRow).where(SubjectRow.subject_id == sid).values(**row)).rowcount
                if not moved:
                    conn.execute(insert(SubjectRow).values(subject_id=sid, enrolled_at=now, **row))

    def block_templates(self, index: int) -> list[tuple[int, bytes]]:
        """``(slot, template)`` of the kept templates of block ``index``."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(SubjectRow.slot, SubjectRow.template).where(
                SubjectRow.block_index == index, SubjectRow.template.is_not(None))).all()
        return [(r.slot, bytes(r.template)) for r in rows]

    def stored_block(self, index: int) -> tuple[bytes, list[tuple[int, bytes]]]:
        """Block ``index``'s BLOCK message and kept templates (the engines' loader)."""
        return self.block_data(index), self.block_templates(index)

    def counts(self) -> dict[str, int]:
        """Row count of every table (for tests, health checks and operators)."""
        with self.engine.connect() as conn:
            return {
                table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in Base.metadata.sorted_tables
            }

    # -- API keys ------------------------------------------------------------------------------

    def add_api_key(self, name: str, key_hash: str, scopes: str) -> None:
        """Store a client's key hash and scopes (space-separated names).

        Raises:
            ConflictError: a client of that name exists.
        """
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(ApiKeyRow).values(name=name, key_hash=key_hash, scopes=scopes, created_at=utcnow()))
        except IntegrityError as exc:
            raise ConflictError(f"an API key named {name!r} exists already") from exc

    def client_for_hash(self, key_hash: str) -> tuple[str, str] | None:
        """``(name, scopes)`` of the client whose key hashes to ``key_hash``, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(ApiKeyRow.name, ApiKeyRow.scopes).where(ApiKeyRow.key_hash == key_hash)).first()
        return (row.name, row.scopes) if row else None

    def api_keys(self) -> list[dict[str, object]]:
        """Name, scopes and creation time of every key, by name (never the hashes)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(ApiKeyRow.name, ApiKeyRow.scopes, ApiKeyRow.created_at).order_by(ApiKeyRow.name))
            return [dict(r._mapping) for r in rows]

    def delete_api_key(self, name: str) -> None:
        """Revoke a key.

        Raises:
            NotFoundError: no key of that name.
        """
        with self.engine.begin() as conn:
            if not conn.execute(delete(ApiKeyRow).where(ApiKeyRow.name == name)).rowcount:
                raise NotFoundError(f"no API key named {name!r}")

    # -- audit log -----------------------------------------------------------------------------

    def audit(self, *, client: str | None, operation: str, subject_id: str | None, outcome: str) -> None:
        """Append one audit entry (no payload data, ever)."""
        with self.engine.begin() as conn:
            conn.execute(insert(AuditRow).values(at=utcnow(), client=client, operation=operation[:32],
                                                 subject_id=subject_id, outcome=outcome[:32]))

    def audit_entries(self, limit: int = 1000) -> list[dict[str, object]]:
        """The newest ``limit`` audit entries, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(AuditRow.at, AuditRow.client, AuditRow.operation, AuditRow.subject_id, AuditRow.outcome)
                .order_by(AuditRow.id.desc()).limit(limit)
            ).all()
        return [dict(r._mapping) for r in reversed(rows)]

