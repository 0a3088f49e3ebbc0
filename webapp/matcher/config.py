"""Matcher configuration: a frozen dataclass, defaults < TOML file < ``FACEPP_MATCHER_*`` env < CLI.

Importable by the matcher only (nothing secret lives here: the database URL may
hold a password, so it is never logged in full).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from facepp.errors import ConfigError

ENV_PREFIX = "FACEPP_MATCHER_"
#: Environment variable naming an optional TOML config file.
CONFIG_ENV = "FACEPP_MATCHER_CONFIG"
MiB = 1 << 20


@dataclass(frozen=True)
class MatcherConfig:
    """Settings of one matcher instance.

    Attributes:
        db: SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``) or a
            plain file path (SQLite). Env ``FACEPP_MATCHER_DB``.
        host: interface to listen on (loopback by default).
        port: TCP port.
        threads: waitress worker threads.
        max_message_bytes: largest bundle, template or probe body accepted (413 above).
        max_block_bytes: largest refreshed-block body accepted (a dim-128 block is
            33.6 MB, dim 512 is 134 MB).
        bundle_fingerprint: optional hex fingerprint pinned out of band; any other
            public bundle is refused (``key_mismatch``).
        auto_migrate: upgrade the schema to the newest Alembic revision at start.
    """

    db: str = "out/matcher/matcher.db"
    host: str = "127.0.0.1"
    port: int = 8600
    threads: int = 4
    max_message_bytes: int = 16 * MiB
    max_block_bytes: int = 160 * MiB
    bundle_fingerprint: str | None = None
    auto_migrate: bool = True

    def __post_init__(self) -> None:
        if not self.db:
            raise ConfigError("db must be a SQLAlchemy URL or a file path")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        for name in ("max_message_bytes", "max_block_bytes"):
            if getattr(self, name) < 1024:
                raise ConfigError(f"{name} must be at least 1024 bytes")
        fp = self.bundle_fingerprint
        if fp is not None and (len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp)):
            raise ConfigError("bundle_fingerprint must be 64 lower-case hex digits")

    @property
    def pinned_fingerprint(self) -> bytes | None:
        """The pinned bundle fingerprint as bytes, if any."""
        return bytes.fromhex(self.bundle_fingerprint) if self.bundle_fingerprint else None

    def with_overrides(self, values: Mapping[str, Any]) -> MatcherConfig:
        """A copy with ``values`` (field name -> value; ``None`` values are ignored) applied and coerced."""
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                raise ConfigError(f"unknown matcher setting {name!r}; valid: {', '.join(sorted(known))}")
            if value is not None:
                changes[name] = _coerce(name, value, known[name].type)
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls,
        *,
        file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> MatcherConfig:
        """Defaults < TOML ``file`` (or ``$FACEPP_MATCHER_CONFIG``) < ``FACEPP_MATCHER_*`` env < ``overrides``.

        Raises:
            ConfigError: unreadable file, unknown key or a value of the wrong type.
        """
        env = os.environ if env is None else env
        config = cls()
        path = file or env.get(CONFIG_ENV)
        if path:
            try:
                data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read matcher config {path}: {exc}") from exc
            config = config.with_overrides(data.get("matcher", data))
        from_env = {
            f.name: env[ENV_PREFIX + f.name.upper()] for f in fields(cls) if ENV_PREFIX + f.name.upper() in env
        }
        config = config.with_overrides(from_env)
        return config.with_overrides(overrides or {})


def _coerce(name: str, value: Any, type_: Any) -> Any:
    text = str(type_)
    try:
        if text.startswith("int"):
            if isinstance(value, bool):
                raise ValueError("a boolean is not an integer")
            return int(value)
        if text.startswith("bool"):
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"expected a boolean, got {value!r}")
        return str(value)
    except ValueError as exc:
        raise ConfigError(f"matcher setting {name}: {exc}") from exc
