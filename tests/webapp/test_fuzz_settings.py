"""Fuzzing the settings files: the matcher's and terminal's TOML, the server's federation.json and a
participant's training.json. Any content gives a ConfigError or settings, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.fuzz_targets import assert_robust, settings_samples, settings_target
from facepp.errors import ConfigError
from webapp.matcher.config import MatcherConfig


def test_settings_files() -> None:
    assert_robust(settings_target(settings_samples()), max_examples=400)


@pytest.mark.parametrize("content", [b"\x80", b"matcher = 3\n", b"[matcher]\nport = inf\n", b"[matcher]\nthreads = nan\n"],
                         ids=["not-utf8", "section-not-a-table", "int-infinity", "int-nan"])
def test_settings_found_by_fuzzing_are_config_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "matcher.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError):
        MatcherConfig.load(file=path, env={})
