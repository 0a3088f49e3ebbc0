"""SQLAlchemy 2.x schema of the matcher's database (changed only through Alembic migrations).

Matcher only. What is stored, and nothing else:

* ``bundle``: the terminal's public CKKS bundle, its fingerprint and the embedding dim (one row).
* ``gallery_blocks``: per packed block, the BLOCK message (``dim`` level-1
  diagonal ciphertexts, as :meth:`EncryptedGallery.export_block`) and the
  live/dirty slot bitmaps, which are authoritative (the bitmap inside the
  BLOCK message is ignored on load).
* ``subjects``: opaque subject id -> (block, slot), and for a template enrolled
  on its own, that template (one level-1 ciphertext) for the fast 1:1 path.
* ``api_keys``: client name, SHA-256 of its API key and its scopes (``webapp.matcher.auth.Scope``).
* ``audit_log``: time, client name, operation, subject id, outcome; never data.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Timezone-aware current time (UTC)."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the matcher schema."""


class BundleRow(Base):
    """The registered public bundle (at most one row, ``id = 1``)."""

    __tablename__ = "bundle"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class BlockRow(Base):
    """One packed gallery block: ``dim`` diagonal ciphertexts plus slot bitmaps."""

    __tablename__ = "gallery_blocks"

    block_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    live: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    dirty: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class SubjectRow(Base):
    """An enrolled opaque subject id and where its template lives."""

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("block_index", "slot", name="uq_subjects_block_slot"),)

    subject_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    block_index: Mapped[int] = mapped_column(ForeignKey("gallery_blocks.block_index"), nullable=False)
    slot: Mapped[int] = mapped_column(Integer, nullable=False)
    template: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class ApiKeyRow(Base):
    """A client allowed to call ``/api/v1``; only the SHA-256 of its key is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    scopes: Mapped[str] = mapped_column(String(64), nullable=False)  #: sorted scope names, space-separated
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class AuditRow(Base):
    """One API call: who, what, on which subject, with which outcome (never the data)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    operation: Mapped[str] = mapped_column(String(32), nullable=False)
    subject_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
