"""Start-up: threshold resolution, key files (0600, reused), config precedence, opaque ids."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from facepp.errors import ConfigError
from facepp.model.checkpoint import update_metadata
from webapp.terminal.config import TerminalConfig
from webapp.terminal.keystore import TerminalKeys, opaque_subject_id


def offline(tmp_path: Path, checkpoint: Path, **extra: object) -> dict[str, object]:
    return {"checkpoint": str(checkpoint), "instance_dir": str(tmp_path / "inst"), "register_on_start": False,
            "matcher_url": "http://127.0.0.1:9", **extra}


def test_refuses_to_start_without_threshold(tmp_path: Path, checkpoint: Path) -> None:
    from webapp.terminal import create_app

    with pytest.raises(ConfigError, match="no calibrated threshold"):
        create_app(offline(tmp_path, checkpoint))


def test_threshold_from_checkpoint_and_override(tmp_path: Path, checkpoint: Path) -> None:
    from webapp.terminal import create_app

    calibrated = tmp_path / "calibrated.pt"
    calibrated.write_bytes(checkpoint.read_bytes())
    update_metadata(calibrated, {"threshold": 0.42})
    app = create_app(offline(tmp_path, calibrated))
    assert app.extensions["terminal"].threshold == pytest.approx(0.42)
    app = create_app(offline(tmp_path, calibrated, threshold=0.6))
    assert app.extensions["terminal"].threshold == pytest.approx(0.6)


def test_key_files_private_and_reused(tmp_path: Path) -> None:
    first = TerminalKeys.load(tmp_path / "inst")
    assert stat.S_IMODE((tmp_path / "inst").stat().st_mode) == 0o700
    for name in ("ckks_secret.key", "subject_hmac.key", "flask_secret.key"):
        assert stat.S_IMODE((tmp_path / "inst" / name).stat().st_mode) == 0o600
    (tmp_path / "inst" / "subject_hmac.key").chmod(0o644)
    second = TerminalKeys.load(tmp_path / "inst")
    assert second.holder.fingerprint == first.holder.fingerprint and second.hmac_key == first.hmac_key
    assert stat.S_IMODE((tmp_path / "inst" / "subject_hmac.key").stat().st_mode) == 0o600


def test_corrupt_key_file_is_a_clear_error(tmp_path: Path) -> None:
    TerminalKeys.load(tmp_path / "inst")
    (tmp_path / "inst" / "ckks_secret.key").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="not a valid CKKS key file"):
        TerminalKeys.load(tmp_path / "inst")


def test_opaque_ids_hide_names() -> None:
    a = opaque_subject_id(b"k" * 32, "Alice Smith")
    assert len(a) == 32 and a == opaque_subject_id(b"k" * 32, "Alice Smith")
    assert a != opaque_subject_id(b"j" * 32, "Alice Smith") and "alice" not in a.lower()


def test_config_precedence(tmp_path: Path) -> None:
    file = tmp_path / "terminal.toml"
    file.write_text('[terminal]\nport = 9000\nthreshold = 0.3\nmatcher_url = "http://file"\n')
    env = {"FACEPP_TERMINAL_PORT": "9100", "FACEPP_TERMINAL_SECURE_COOKIES": "false"}
    cfg = TerminalConfig.load(file=file, env=env, overrides={"threshold": 0.5, "checkpoint": None})
    assert (cfg.port, cfg.threshold, cfg.matcher_url, cfg.secure_cookies) == (9100, 0.5, "http://file", False)
    assert TerminalConfig.load(env={}).port == 8500
    with pytest.raises(ConfigError, match="unknown terminal setting"):
        TerminalConfig.load(env={}, overrides={"nope": 1})
    with pytest.raises(ConfigError):
        TerminalConfig.load(env={"FACEPP_TERMINAL_PORT": "eighty"})
    with pytest.raises(ConfigError, match="score_decimals"):
        TerminalConfig(score_decimals=12)
    with pytest.raises(ConfigError, match="session_idle_timeout"):
        TerminalConfig(session_idle_timeout=3600, session_lifetime=600)
    with pytest.raises(ConfigError, match="session_idle_timeout"):
        TerminalConfig(session_idle_timeout=0)
    assert (TerminalConfig().session_idle_timeout, TerminalConfig().session_lifetime) == (900, 8 * 3600)
    assert TerminalConfig(api_token="x" * 20).describe()["api_token"] == "***"


def test_matcher_down_is_502_and_records_nothing(tmp_path: Path, checkpoint: Path, orl: Path) -> None:
    from webapp.terminal import create_app

    app = create_app(offline(tmp_path, checkpoint, threshold=0.5, api_token="t" * 20, matcher_timeout=5))
    client = app.test_client()
    face = (orl / "s31" / "1.pgm").read_bytes()
    r = client.post("/api/enroll", data={"subject_id": "x", "image": (io.BytesIO(face), "1.pgm")},
                    headers={"Authorization": "Bearer " + "t" * 20})
    assert r.status_code == 502 and r.json is not None and r.json["code"] == "matcher_unavailable"
    assert app.extensions["terminal"].db.subjects() == []


def test_cli_create_operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from webapp.terminal.cli import main
    from webapp.terminal.db import Database

    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    inst = tmp_path / "inst"
    assert main(["create-operator", "--instance-dir", str(inst), "--username", "bob", "--password-stdin"]) == 0
    assert "created" in capsys.readouterr().out
    db = Database(TerminalConfig(instance_dir=str(inst)).db_url)
    assert db.authenticate("bob", "a long enough password") is not None
    assert db.authenticate("bob", "wrong password") is None and db.authenticate("nobody", "x" * 12) is None
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["create-operator", "--instance-dir", str(inst), "--username", "eve", "--password-stdin"]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("another long password\n"))
    assert main(["create-operator", "--instance-dir", str(inst), "--username", "bob", "--password-stdin"]) == 1


def test_subject_list_is_paged(tmp_path: Path, checkpoint: Path) -> None:
    from webapp.terminal import create_app

    app = create_app(offline(tmp_path, checkpoint, threshold=0.5, secure_cookies=False))
    service = app.extensions["terminal"]
    service.db.create_operator("op", "a long password")
    service.db.add_subjects([(f"p{i:03d}", service.opaque_id(f"p{i:03d}")) for i in range(150)], enrolled_by="test")
    app.config["WTF_CSRF_ENABLED"] = False  # this test is about paging, CSRF has its own tests
    client = app.test_client()
    assert client.post("/login", data={"username": "op", "password": "a long password"}).status_code == 302
    first = client.get("/subjects").get_data(as_text=True)
    assert "150 enrolled; page 1" in first and first.count('class="subject"') == 100 and 'id="next"' in first
    second = client.get("/subjects?page=2").get_data(as_text=True)
    assert second.count('class="subject"') == 50 and 'id="prev"' in second and 'id="next"' not in second
    assert client.get("/subjects?page=abc").status_code == 200


def test_gallery_is_bound_to_the_embedder_that_enrolled_it(tmp_path: Path, checkpoint: Path) -> None:
    from facepp.model import Embedder, load_checkpoint
    from webapp.terminal import create_app

    model = tmp_path / "model.pt"
    model.write_bytes(checkpoint.read_bytes())
    update_metadata(model, {"threshold": 0.4})
    service = create_app(offline(tmp_path, model)).extensions["terminal"]
    service.db.add_subject(name="alice", opaque_id=service.opaque_id("alice"), images=1, enrolled_by="test")

    update_metadata(model, {"threshold": 0.5})  # a new threshold embeds alike: still accepted
    assert create_app(offline(tmp_path, model)).extensions["terminal"].threshold == pytest.approx(0.5)
    before = Embedder.from_checkpoint(model).fingerprint
    inference = load_checkpoint(model)["metadata"]["inference_preprocessing"]
    update_metadata(model, {"inference_preprocessing": {**inference, "tta_scales": [0.9, 1.1]}})
    assert Embedder.from_checkpoint(model).fingerprint != before
    with pytest.raises(ConfigError, match="1 enrolled subjects were embedded by another model"):
        create_app(offline(tmp_path, model))
    service.db.delete_subject("alice")  # an empty gallery may move to the new embedder
    assert create_app(offline(tmp_path, model)).extensions["terminal"].threshold == pytest.approx(0.5)


def test_tls_settings_from_the_file_the_environment_and_flags(tmp_path: Path) -> None:
    from facepp.errors import UsageError

    file = tmp_path / "terminal.toml"
    file.write_text('[terminal]\ntls_cert = "t.pem"\ntrusted_proxies = ["10.0.0.5", "172.18.0.0/16"]\n'
                    'matcher_ca = "ca.pem"\n')
    cfg = TerminalConfig.load(file=file, env={"FACEPP_TERMINAL_TLS_KEY": "t.key"})
    assert (cfg.tls.cert, cfg.tls.key, cfg.tls.mutual) == ("t.pem", "t.key", False)
    assert cfg.trusted_proxies == ("10.0.0.5", "172.18.0.0/16")
    assert cfg.matcher_tls == {"verify": "ca.pem", "cert": None}
    env = TerminalConfig.load(env={"FACEPP_TERMINAL_TRUSTED_PROXIES": "10.0.0.5, 10.0.0.6"})
    assert env.trusted_proxies == ("10.0.0.5", "10.0.0.6") and env.matcher_tls == {"verify": True, "cert": None}
    with pytest.raises(ConfigError, match="trusted proxy 'proxy.example' is not an IP address or network"):
        TerminalConfig.load(env={}, overrides={"trusted_proxies": ("proxy.example",)})
    with pytest.raises(UsageError, match="--matcher-client-cert and --matcher-client-key go together"):
        _ = TerminalConfig.load(env={}, overrides={"matcher_client_cert": "c.pem"}).matcher_tls
    with pytest.raises(UsageError, match="--tls-client-ca .* needs --tls-cert"):
        _ = TerminalConfig.load(env={}, overrides={"tls_client_ca": "ca.pem"}).tls
