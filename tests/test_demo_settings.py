"""`make demo`'s schedule settings: a bad value is a one-line error before any work starts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("demo", Path(__file__).parents[1] / "scripts" / "demo.py")
assert _spec is not None and _spec.loader is not None
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)


def test_unset_settings_take_the_chosen_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEPP_DEMO_LR", raising=False)
    assert demo.env_number("FACEPP_DEMO_LR", "3e-4", float) == 3e-4
    monkeypatch.setenv("FACEPP_DEMO_ROUNDS", "5")
    assert demo.env_number("FACEPP_DEMO_ROUNDS", "3", int) == 5


@pytest.mark.parametrize(("value", "kind"), [("abc", float), ("0", float), ("-1e-3", float), ("2.5", int), ("", int)])
def test_a_bad_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str, kind: type) -> None:
    monkeypatch.setenv("FACEPP_DEMO_SETTING", value)
    with pytest.raises(SystemExit, match="FACEPP_DEMO_SETTING=.*expected a positive"):
        demo.env_number("FACEPP_DEMO_SETTING", "3", kind)
