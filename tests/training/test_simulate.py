"""`facepp simulate` end to end on ORL with a tiny backbone: real processes, real HTTP, real Paillier."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from facepp.cli import main
from facepp.errors import ConfigError, FaceppError
from tests.helpers.net import free_port
from training.simulation.simulate import SimulationConfig, SimulationError, _wait_for, simulate


@pytest.mark.slow
def test_simulate_matches_plaintext_fedavg_and_leaks_nothing(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code = main(["-q", "simulate", "--participants", "2", "--rounds", "2", "--local-epochs", "1", "--data",
                 str(data_root / "orl"), "--from-scratch", "--backbone", "mobilefacenet-tiny", "--input-size", "32",
                 "--workdir", str(tmp_path / "sim"), "--json", str(out), "--fixed-point-twin"])
    assert code == 0
    report = json.loads(out.read_text())
    for key in ("rounds", "participants", "encrypted_accuracy", "plaintext_accuracy", "max_abs_weight_diff",
                "upload_bytes_per_round", "plaintext_bytes_per_round", "encrypted_round_s", "plaintext_round_s",
                "plaintext_leak_found"):
        assert key in report
    assert report["rounds"] == 2 and report["participants"] == 2
    assert report["plaintext_leak_found"] is False and report["contributions_audited"] == 4
    # Round-1 local updates are identical; only fixed-point aggregation differs (weights n/scale, sum >= 1).
    assert report["max_abs_weight_diff"] <= 2 * report["fixed_point_step"]
    # The encrypted protocol's arithmetic in the clear reproduces the encrypted run exactly, through round 2:
    # encryption adds no error; all that differs from float FedAvg is the fixed-point rounding.
    assert report["fixed_point_twin_max_abs_diff"] == 0.0
    assert report["fixed_point_twin_accuracy"] == report["encrypted_accuracy"]
    assert report["upload_bytes_per_round"] > report["plaintext_bytes_per_round"]
    assert report["eval_pairs"] == 900  # all genuine pairs of s31-s40 and as many impostors
    assert (tmp_path / "sim" / "federation" / "participants" / "org1" / "global_model.pt").is_file()


def test_simulate_raises_project_errors(tmp_path: Path) -> None:
    """A used workdir, or a server that dies at start-up, are FaceppErrors (one line at the CLI), naming where to look."""
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "report.json").write_text("{}")
    with pytest.raises(ConfigError, match="not an empty folder"):
        simulate(SimulationConfig(data=tmp_path, workdir=tmp_path / "used"))
    with pytest.raises(ConfigError, match="not an empty folder"):
        simulate(SimulationConfig(data=tmp_path, workdir=tmp_path / "used" / "report.json"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with pytest.raises(SimulationError, match="exited during start-up; see .*server.log") as raised:
        _wait_for(f"http://127.0.0.1:{free_port()}", dead, tmp_path)
    assert isinstance(raised.value, FaceppError)


def test_a_failed_participant_ends_the_wait(tmp_path: Path) -> None:
    """The others would wait for its upload forever: following the rounds stops as soon as one
    participant has failed, whether or not the server answers."""
    import time

    from training.simulation.simulate import _follow

    failed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    waiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    failed.wait()
    try:
        start = time.monotonic()
        _follow(f"http://127.0.0.1:{free_port()}", "no-token", 1, [failed, waiting])
        assert time.monotonic() - start < 20
    finally:
        waiting.kill()
