"""Database engine and Alembic schema migrations of the matcher.

Matcher only. ``FACEPP_MATCHER_DB`` is a SQLAlchemy URL or a plain path (SQLite,
the zero-set-up default). PostgreSQL: ``postgresql+psycopg://user:pw@host/db``
(psycopg 3).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from facepp.errors import ConfigError

logger = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def database_url(value: str) -> str:
    """A SQLAlchemy URL for ``value``: URLs pass through, a path becomes ``sqlite:///<absolute path>``."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def safe_url(url: str) -> str:
    """``url`` with any password hidden (for logs)."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(value: str) -> Engine:
    """Create the engine; SQLite files get WAL, foreign keys and a busy timeout, and their folder.

    Raises:
        ConfigError: an unparsable URL or an unknown dialect.
    """
    url = database_url(value)
    try:
        parsed = make_url(url)
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        engine = create_engine(parsed, **kwargs)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several types for a bad URL
        raise ConfigError(f"cannot use database {value!r}: {type(exc).__name__}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config(engine: Engine) -> AlembicConfig:
    """An in-memory Alembic config pointing at the bundled migrations (no alembic.ini needed)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (idempotent)."""
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    logger.info("matcher schema at %s (%s)", head_revision(), safe_url(str(engine.url)))


def head_revision() -> str:
    """Newest revision shipped with the code."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:  # pragma: no cover - the package ships migrations
        raise ConfigError("no matcher migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    """Revision the database is at (``None`` when never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Refuse to run on a database that is not at the newest revision.

    Raises:
        ConfigError: the schema is missing or outdated.
    """
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise ConfigError(f"matcher database schema is at {current}, expected {head}: run `facepp-matcher db upgrade`")
