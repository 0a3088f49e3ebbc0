"""The abuse benchmark end to end at a small size: real services on loopback, its JSON keys, all clean.

The full size (``--quick``: 150 inputs per target and the 1,000-request flood) is a benchmark run,
not a test; this run proves the harness counts what it claims to on every target.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.abuse_bench import main
from facepp.data import data_root

pytestmark = pytest.mark.skipif(not (data_root() / "orl" / "s31" / "1.pgm").is_file(), reason="needs ORL under FACEPP_DATA")


@pytest.mark.slow
def test_abuse_bench_small_run_is_clean(tmp_path: Path) -> None:
    out = tmp_path / "abuse.json"
    assert main(["--examples", "15", "--flood", "150", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    targets = {t["target"]: t for t in result["targets"]}
    assert set(targets) == {"paillier_wire", "ckks_wire", "federation_bodies", "image_decoder", "settings_files",
                            "federation_http", "matcher_http", "abuse_load"}
    assert result["inputs_tried"] == 7 * 15 + 150 == sum(t["inputs_tried"] for t in targets.values())
    assert result["unexpected_exceptions"] == result["server_errors"] == result["state_changes"] == 0
    assert result["concurrent_verifications_ok"] == result["concurrent_verifications"] == 50
    load = result["abuse_load"]
    assert {s: v["requests"] for s, v in load["per_service"].items()} == {"parameter_server": 50, "matcher": 50, "terminal": 50}
    assert load["matcher_audit_rows_added"] == load["matcher_audit_rows_of_the_verifications"] == 50
