"""The terminal's own small database: operators, their sessions and enrolled subject names.

Terminal only. Stores, per subject, the operator-facing name, the opaque id sent
to the matcher, the enrolment time, how many images were averaged and who
enrolled it and, when the model carries a cohort, the two cohort statistics of its
template (adaptive S-norm, :mod:`facepp.model.cohort`); per operator, the username
and a salted password hash (werkzeug scrypt); per open login session, the SHA-256 of
its random id and when it began and was last used; and the fingerprint of the
embedder the gallery was enrolled with. No image, embedding, template or score is
ever stored.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, create_engine, delete, event, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from werkzeug.security import check_password_hash, generate_password_hash

from facepp.errors import ConfigError, ConflictError
from webapp.terminal.errors import BadRequestError

logger = logging.getLogger(__name__)

#: A real hash checked when the username is unknown, so a login takes the same time either way.
_DUMMY_HASH = generate_password_hash("facepp-dummy-password")
MIN_PASSWORD_LENGTH = 10


def utcnow() -> datetime:
    """Timezone-aware current time (UTC)."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the terminal schema."""


class Operator(Base):
    """A person allowed to use the terminal's pages."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(256), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class OperatorSession(Base):
    """An open login session; the cookie carries its random id, the table only the id's SHA-256.

    Deleting the row (logout, expiry) ends the session for every copy of the cookie.
    Times are seconds since the epoch.
    """

    __tablename__ = "operator_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), nullable=False)
    started: Mapped[float] = mapped_column(Float, nullable=False)
    last_seen: Mapped[float] = mapped_column(Float, nullable=False)


class Subject(Base):
    """An enrolled person: name -> opaque matcher id."""

    __tablename__ = "subjects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    opaque_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    images: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    enrolled_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")


class SubjectScoreStats(Base):
    """How crowded a subject's template's neighbourhood is: the mean and standard deviation
    of its ``top_k`` highest similarities to the model's cohort. Two numbers, from which
    the template cannot be rebuilt; they S-normalise its scores (:func:`facepp.model.cohort.s_norm`)."""

    __tablename__ = "subject_score_stats"

    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True)
    mean: Mapped[float] = mapped_column(Float, nullable=False)
    sigma: Mapped[float] = mapped_column(Float, nullable=False)


class Setting(Base):
    """A terminal-wide value, e.g. the fingerprint of the embedder the gallery was enrolled with."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256), nullable=False)


class Database:
    """Engine + session factory; the schema is created on first use.

    Args:
        url: SQLAlchemy URL (SQLite file by default).
    """

    def __init__(self, url: str) -> None:
        connect_args = {"check_same_thread": False, "timeout": 30} if url.startswith("sqlite") else {}
        self.engine: Engine = create_engine(url, connect_args=connect_args)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def bind_embedder(self, fingerprint: str) -> None:
        """Tie the enrolled templates to the embedder that made them.

        A template only matches embeddings from the same weights and inference recipe
        (crop scales, mirror views); another model would silently fail to recognise
        anyone. The first start records the fingerprint; a later start with another
        embedder is refused while subjects are enrolled, and re-binds when none are.

        Raises:
            ConfigError: subjects are enrolled with another embedder.
        """
        enrolled = self.count_subjects()
        with self.session() as s:
            row = s.get(Setting, "embedder")
            if row is not None and row.value != fingerprint and enrolled:
                raise ConfigError(
                    f"the {enrolled} enrolled subjects were embedded by another model or inference recipe "
                    f"(embedder {row.value[:16]}, this checkpoint {fingerprint[:16]}): start with the checkpoint "
                    "they were enrolled with, or use a new database and enrol them again"
                )
            if row is None and enrolled:
                logger.warning("%d subjects predate embedder tracking: assuming embedder %s", enrolled, fingerprint[:16])
            s.merge(Setting(key="embedder", value=fingerprint))

    # -- operators ------------------------------------------------------------------------

    def create_operator(self, username: str, password: str) -> Operator:
        """Add an operator with a hashed password.

        Raises:
            BadRequestError: empty username or a password shorter than 10 characters.
            ConflictError: the username exists.
        """
        username = username.strip()
        if not username or len(username) > 64:
            raise BadRequestError("username must be 1-64 characters")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise BadRequestError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
        try:
            with self.session() as s:
                operator = Operator(username=username, password_hash=generate_password_hash(password))
                s.add(operator)
        except IntegrityError:
            raise ConflictError(f"operator {username!r} already exists") from None
        logger.info("created operator %s", username)
        return operator

    def authenticate(self, username: str, password: str) -> Operator | None:
        """The operator when the password matches, else None (constant work either way)."""
        with self.session() as s:
            operator = s.scalars(select(Operator).where(Operator.username == username.strip())).first()
        if operator is None:
            check_password_hash(_DUMMY_HASH, password)
            return None
        return operator if check_password_hash(operator.password_hash, password) else None

    # -- login sessions -------------------------------------------------------------------

    def open_session(self, operator_id: int) -> str:
        """Start a login session for the operator; returns its random id (for the cookie only)."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        with self.session() as s:
            s.add(OperatorSession(id_hash=_digest(session_id), operator_id=operator_id, started=now, last_seen=now))
        return session_id

    def session_operator(self, session_id: str, *, idle_timeout: float, lifetime: float) -> Operator | None:
        """The operator of a live session, marking it used now; None for an unknown, ended or expired one.

        A session expires ``idle_timeout`` seconds after its last use and ``lifetime`` seconds after it began;
        expired sessions are deleted here.
        """
        now = time.time()
        with self.session() as s:
            s.execute(delete(OperatorSession).where(or_(OperatorSession.last_seen < now - idle_timeout,
                                                        OperatorSession.started < now - lifetime)))
            row = s.get(OperatorSession, _digest(session_id))
            if row is None:
                return None
            row.last_seen = now
            return s.get(Operator, row.operator_id)

    def close_session(self, session_id: str) -> None:
        """End a session: every copy of its cookie stops working."""
        with self.session() as s:
            s.execute(delete(OperatorSession).where(OperatorSession.id_hash == _digest(session_id)))

    # -- subjects -------------------------------------------------------------------------

    def subject(self, name: str) -> Subject | None:
        """The subject enrolled under ``name``, or None."""
        with self.session() as s:
            return s.scalars(select(Subject).where(Subject.name == name)).first()

    def subjects(self, *, offset: int = 0, limit: int | None = None) -> list[Subject]:
        """Subjects by name (all of them, or the page ``offset``..``offset + limit``)."""
        with self.session() as s:
            query = select(Subject).order_by(Subject.name).offset(offset)
            return list(s.scalars(query if limit is None else query.limit(limit)))

    def count_subjects(self) -> int:
        """How many subjects are enrolled."""
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(Subject)) or 0)

    def names_by_opaque_id(self) -> dict[str, str]:
        """``{opaque_id: name}`` of every subject."""
        with self.session() as s:
            return {row.opaque_id: row.name for row in s.execute(select(Subject.opaque_id, Subject.name))}

    def add_subject(self, *, name: str, opaque_id: str, images: int, enrolled_by: str,
                    stats: tuple[float, float] | None = None) -> Subject:
        """Record an enrolment, with its template's cohort ``(mean, sigma)`` when the model has a cohort.

        Raises:
            ConflictError: the name (or its opaque id) is already enrolled.
        """
        try:
            with self.session() as s:
                subject = Subject(name=name, opaque_id=opaque_id, images=images, enrolled_by=enrolled_by)
                s.add(subject)
                if stats is not None:
                    s.flush()
                    s.add(SubjectScoreStats(subject_id=subject.id, mean=float(stats[0]), sigma=float(stats[1])))
        except IntegrityError:
            raise ConflictError(f"subject {name!r} is already enrolled") from None
        return subject

    def add_subjects(self, rows: list[tuple[str, str]], *, enrolled_by: str,
                     stats: list[tuple[float, float]] | None = None) -> None:
        """Record many ``(name, opaque_id)`` enrolments (and their cohort stats) in one transaction (bulk enrolment)."""
        try:
            with self.session() as s:
                subjects = [Subject(name=n, opaque_id=o, images=1, enrolled_by=enrolled_by) for n, o in rows]
                s.add_all(subjects)
                if stats is not None:
                    s.flush()
                    s.add_all(SubjectScoreStats(subject_id=subject.id, mean=float(m), sigma=float(sd))
                              for subject, (m, sd) in zip(subjects, stats, strict=True))
        except IntegrityError:
            raise ConflictError("a subject of the batch is already enrolled") from None

    def score_stats(self, opaque_ids: list[str] | None = None) -> dict[str, tuple[float, float]]:
        """``{opaque_id: (mean, sigma)}`` of the given subjects (None: all) that have cohort stats."""
        query = select(Subject.opaque_id, SubjectScoreStats.mean, SubjectScoreStats.sigma).join(
            SubjectScoreStats, SubjectScoreStats.subject_id == Subject.id)
        if opaque_ids is not None:
            query = query.where(Subject.opaque_id.in_(opaque_ids))
        with self.session() as s:
            return {o: (m, sd) for o, m, sd in s.execute(query)}

    def delete_subject(self, name: str) -> bool:
        """Remove a subject's row and its cohort stats; False if there was none."""
        with self.session() as s:
            row = s.scalars(select(Subject).where(Subject.name == name)).first()
            if row is None:
                return False
            s.execute(delete(SubjectScoreStats).where(SubjectScoreStats.subject_id == row.id))
            s.delete(row)
        return True


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
