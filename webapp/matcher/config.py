"""Matcher configuration: a frozen dataclass, defaults < TOML file < ``FACEPP_MATCHER_*`` env < CLI.

Importable by the matcher only (nothing secret lives here: the database URL may
hold a password, so it is never logged in full).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from facepp.errors import ConfigError
from facepp.serving import ServerTLS
from webapp.matcher.engine import check_engine
from webapp.settings import LayeredSettings

ENV_PREFIX = "FACEPP_MATCHER_"


@dataclass(frozen=True)
class MatcherConfig(LayeredSettings):
    """Settings of one matcher instance.

    Attributes:
        db: SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``) or a
            plain file path (SQLite). Env ``FACEPP_MATCHER_DB``.
        host: interface to listen on (loopback by default).
        port: TCP port.
        threads: worker threads.
        bundle_fingerprint: optional hex fingerprint pinned out of band; any other
            public bundle is refused (``key_mismatch``).
        auto_migrate: upgrade the schema to the newest Alembic revision at start.
        tls_cert, tls_key: PEM certificate and key to serve HTTPS with (plain HTTP without them).
        tls_client_ca: PEM CA: require client certificates it signed (mutual TLS).
        insecure_http: allow plain HTTP on a non-loopback ``host`` (logged as a warning).
        engine: where the ciphertexts live and are scored: ``auto`` (default: an
            embedded Ray once the gallery has more than one block and the machine
            more than one core), ``local`` (in this process), ``ray`` (embedded Ray)
            or a Ray cluster address (``ray://HOST:PORT``). Env ``FACEPP_MATCHER_ENGINE``.
        shards: Ray actors holding the gallery's blocks (0: one per core of the Ray cluster).
    """

    SECTION: ClassVar[str] = "matcher"
    ENV_PREFIX: ClassVar[str] = ENV_PREFIX

    db: str = "out/matcher/matcher.db"
    host: str = "127.0.0.1"
    port: int = 8600
    threads: int = 4
    bundle_fingerprint: str | None = None
    auto_migrate: bool = True
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    insecure_http: bool = False
    engine: str = "auto"
    shards: int = 0

    def __post_init__(self) -> None:
        if not self.db:
            raise ConfigError("db must be a SQLAlchemy URL or a file path")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        check_engine(self.engine)
        if self.shards < 0:
            raise ConfigError(f"shards must be >= 0 (0: one per core), got {self.shards}")
        fp = self.bundle_fingerprint
        if fp is not None and (len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp)):
            raise ConfigError("bundle_fingerprint must be 64 lower-case hex digits")

    @property
    def tls(self) -> ServerTLS:
        """How ``facepp-matcher serve`` speaks TLS (raises UsageError on an incomplete pair)."""
        return ServerTLS(cert=self.tls_cert, key=self.tls_key, client_ca=self.tls_client_ca,
                         insecure_http=self.insecure_http)

    @property
    def pinned_fingerprint(self) -> bytes | None:
        """The pinned bundle fingerprint as bytes, if any."""
        return bytes.fromhex(self.bundle_fingerprint) if self.bundle_fingerprint else None
