"""Fuzzing the settings files: the matcher's and terminal's TOML, the server's federation.json and a
participant's training.json. Any content gives a ConfigError or settings, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.fuzz_targets import assert_robust, settings_target
from facepp.errors import ConfigError
from training.participant.spec import TrainingSpec
from webapp.matcher.config import MatcherConfig


def samples() -> dict[str, bytes]:
    federation = {"public_key": "public_key.json", "participants": {"a": "0" * 64, "b": "1" * 64}, "total_rounds": 2,
                  "quorum": 2, "round_timeout_s": 60.0, "operator": "2" * 64}
    return {
        "matcher": b'[matcher]\ndb = "sqlite:///m.db"\nport = 8600\nthreads = 4\nauto_migrate = true\n',
        "terminal": b'[terminal]\nmatcher_url = "http://127.0.0.1:8600"\nport = 8700\nscore_decimals = 3\n',
        "federation": json.dumps(federation).encode(),
        "training": TrainingSpec(total_rounds=2, participants=("a", "b")).to_json().encode(),
    }


def test_settings_files() -> None:
    assert_robust(settings_target(samples()), max_examples=400)


@pytest.mark.parametrize("content", [b"\x80", b"matcher = 3\n", b"[matcher]\nport = inf\n", b"[matcher]\nthreads = nan\n"],
                         ids=["not-utf8", "section-not-a-table", "int-infinity", "int-nan"])
def test_settings_found_by_fuzzing_are_config_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "matcher.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError):
        MatcherConfig.load(file=path, env={})
