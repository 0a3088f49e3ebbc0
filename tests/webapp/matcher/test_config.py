"""MatcherConfig: defaults < TOML file < FACEPP_MATCHER_* env < overrides, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepp.errors import ConfigError
from webapp.matcher.config import MatcherConfig
from webapp.matcher.db import database_url


def test_precedence(tmp_path: Path) -> None:
    file = tmp_path / "matcher.toml"
    file.write_text('[matcher]\ndb = "from-file.db"\nport = 9000\nthreads = 2\n', encoding="utf-8")
    env = {"FACEPP_MATCHER_PORT": "9100", "FACEPP_MATCHER_AUTO_MIGRATE": "false"}
    cfg = MatcherConfig.load(file=file, env=env, overrides={"threads": 8, "host": None})
    assert (cfg.db, cfg.port, cfg.threads, cfg.auto_migrate, cfg.host) == ("from-file.db", 9100, 8, False, "127.0.0.1")
    assert MatcherConfig.load(env={"FACEPP_MATCHER_CONFIG": str(file)}).port == 9000
    assert MatcherConfig.load(env={}) == MatcherConfig()


@pytest.mark.parametrize("settings", [
    {"port": "eighty"}, {"port": 70000}, {"threads": 0}, {"auto_migrate": "maybe"}, {"colour": "blue"},
    {"max_message_bytes": 10},  # body bounds follow from the CKKS parameters: no such setting
    {"bundle_fingerprint": "abc"}, {"bundle_fingerprint": "G" * 64}, {"db": ""},
])
def test_bad_settings(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        MatcherConfig().with_overrides(settings)


def test_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("port = [", encoding="utf-8")
    with pytest.raises(ConfigError):
        MatcherConfig.load(file=bad, env={})


def test_database_url(tmp_path: Path) -> None:
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url(str(tmp_path / "m.db")) == f"sqlite:///{tmp_path / 'm.db'}"
