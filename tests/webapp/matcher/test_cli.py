"""``facepp-matcher`` end to end in subprocesses: create-api-key, db upgrade, serve (gunicorn)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers.net import free_port
from webapp.matcher.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webapp.matcher.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                          check=False)


def test_create_api_key_serve_and_db_commands(tmp_path: Path) -> None:
    db = tmp_path / "matcher.db"
    created = _cli("create-api-key", "--name", "terminal-1", "--db", str(db))
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("fpm_") and len(key) == 47
    stored = db.read_bytes() + (Path(f"{db}-wal").read_bytes() if Path(f"{db}-wal").exists() else b"")
    assert key.encode() not in stored and hashlib.sha256(key.encode()).hexdigest().encode() in stored

    again = _cli("create-api-key", "--name", "terminal-1", "--db", str(db))
    assert again.returncode == 1 and "exists already" in again.stderr and key not in again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith("facepp-matcher: error: ") and "Traceback" not in again.stderr
    current = _cli("db", "current", env={"FACEPP_MATCHER_DB": str(db)})
    assert current.returncode == 0 and current.stdout.strip() == "0003_subject_templates"
    admin = _cli("create-api-key", "--name", "ops", "--scope", "admin", "--db", str(db)).stdout.strip()
    listed = _cli("list-api-keys", "--db", str(db))
    assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == [["ops", "admin"],
                                                                             ["terminal-1", "enrol score"]]
    assert key not in listed.stdout and admin not in listed.stdout
    bad = _cli("create-api-key", "--name", "x", "--scope", "root", "--db", str(db))
    assert bad.returncode == 2 and "invalid choice" in bad.stderr

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "webapp.matcher.cli", "serve", "--port", str(port),
                               "--db", str(db)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/health", timeout=2).json() == {"status": "ok"}:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "matcher did not start"
            time.sleep(0.2)
        assert requests.get(base + "/subjects", timeout=5).status_code == 401
        answer = requests.get(base + "/subjects", headers={"Authorization": f"Bearer {key}"}, timeout=5)
        assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")  # listing ids is admin's
        answer = requests.get(base + "/subjects", headers={"Authorization": f"Bearer {admin}"}, timeout=5)
        assert (answer.status_code, answer.json()) == (200, {"subjects": []})
        assert _cli("delete-api-key", "--name", "ops", "--db", str(db)).returncode == 0
        assert requests.get(base + "/subjects", headers={"Authorization": f"Bearer {admin}"}, timeout=5).status_code == 401
        gone = _cli("delete-api-key", "--name", "ops", "--db", str(db))
        assert gone.returncode == 1 and "no API key named 'ops'" in gone.stderr
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"matcher on http://127.0.0.1:{port} (plain HTTP" in output and "Booting worker" in output
    assert key not in output, "the key must never be logged"


@pytest.mark.parametrize("argv", [[], ["serve", "--port", "x"], ["create-api-key"], ["db"], ["nope"],
                                  ["delete-api-key"], ["create-api-key", "--name", "a", "--scope", "all"]])
def test_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
