"""Every console script follows one convention (facepp.console): exit 0 ok, 1 a project error as one
line on stderr, 2 usage; the same -v/-q flags; never a traceback for bad input."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest

from facepp.console import log_level

#: Console script -> module holding ``build_parser`` and ``main`` (must match pyproject's [project.scripts]).
SCRIPTS = {
    "facepp": "facepp.cli",
    "facepp-federation": "training.cli",
    "facepp-server": "training.server.cli",
    "facepp-participant": "training.participant.cli",
    "facepp-matcher": "webapp.matcher.cli",
    "facepp-terminal": "webapp.terminal.cli",
}


def _main(script: str) -> Callable[[list[str]], int]:
    return importlib.import_module(SCRIPTS[script]).main  # type: ignore[no-any-return]


def test_every_console_script_is_listed_here() -> None:
    installed = {ep.name: ep.value for ep in entry_points(group="console_scripts") if ep.name.startswith("facepp")}
    assert installed == {name: f"{module}:main" for name, module in SCRIPTS.items()}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_script_takes_the_same_verbosity_flags(script: str) -> None:
    parser: argparse.ArgumentParser = importlib.import_module(SCRIPTS[script]).build_parser()
    help_text = parser.format_help()
    assert "-v, --verbose" in help_text and "-q, --quiet" in help_text


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_usage_error_exits_2(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(script)(["--no-such-flag"]) == 2
    assert "usage:" in capsys.readouterr().err


def _bad_inputs(tmp: Path) -> dict[str, list[str]]:
    """One bad-input command line per script (each must fail with a project error)."""
    (tmp / "full").mkdir()
    (tmp / "full" / "file").write_text("x")
    (tmp / "fed" / "server").mkdir(parents=True)
    (tmp / "fed" / "server" / "federation.json").write_text("{}")
    return {
        "facepp": ["embed", "--model", str(tmp / "missing.pt"), str(tmp / "missing.jpg")],
        "facepp-federation": ["--dir", str(tmp / "fed"), "--participants", "a,b", "--rounds", "1"],
        "facepp-server": ["--federation", str(tmp / "missing.json"), "--state", str(tmp / "state")],
        "facepp-participant": ["--dir", str(tmp / "nobody"), "--server", "http://127.0.0.1:9", "--data", str(tmp)],
        "facepp-matcher": ["serve", "--config", str(tmp / "missing.toml")],
        "facepp-terminal": ["serve", "--config", str(tmp / "missing.toml")],
    }


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_project_error_is_one_line_and_exit_1(script: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(script)(_bad_inputs(tmp_path)[script]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{script}: error: ") and "\n" not in err and "Traceback" not in err


def test_simulate_refuses_a_non_empty_workdir_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facepp.cli import main

    (tmp_path / "old-run.txt").write_text("keep me")
    assert main(["simulate", "--workdir", str(tmp_path), "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("facepp: error: workdir ") and "not an empty folder" in err and "\n" not in err
    assert (tmp_path / "old-run.txt").read_text() == "keep me"


def test_an_installed_script_fails_without_a_traceback(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("facepp-server")
    if not script.exists():
        pytest.skip("console scripts are not installed next to this interpreter")
    result = subprocess.run([str(script), *_bad_inputs(tmp_path)["facepp-server"]], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("facepp-server: error: ") and "Traceback" not in result.stderr


def test_simulate_is_registered_through_the_entry_point_group() -> None:
    from facepp.cli import ENTRY_POINT_GROUP, available_commands, registered_commands

    assert [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "simulate"] == [
        "training.simulation.cli:SIMULATE"]
    assert "simulate" in [c.name for c in registered_commands()]
    names = [c.name for c in available_commands()]
    assert names[:3] == ["train", "evaluate", "embed"] and "simulate" in names and len(names) == len(set(names))


def test_a_broken_plugin_stays_listed_and_fails_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import facepp.cli

    broken = EntryPoint(name="broken", value="no_such_package.cli:COMMAND", group=facepp.cli.ENTRY_POINT_GROUP)
    monkeypatch.setattr(facepp.cli, "entry_points", lambda group: [broken])
    assert "broken" in facepp.cli.build_parser().format_help()
    assert facepp.cli.main(["broken"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("facepp: error: the 'broken' subcommand could not be loaded: no_such_package.cli:COMMAND")
    assert "ModuleNotFoundError" in err and "\n" not in err


@pytest.mark.parametrize(("argv", "level"), [([], "INFO"), (["-v"], "DEBUG"), (["-q"], "WARNING"), (["-v", "-q"], "WARNING")])
def test_verbosity_flags_before_or_after_the_subcommand(argv: list[str], level: str) -> None:
    from webapp.matcher.cli import build_parser

    for args in (build_parser().parse_args([*argv, "db", "current"]), build_parser().parse_args(["db", "current", *argv])):
        assert log_level(verbose=args.verbose, quiet=args.quiet, env={}) == level
    assert log_level(verbose=1, env={"FACEPP_LOG_LEVEL": "error"}) == "ERROR"


def _serve_commands(tmp: Path) -> dict[str, list[str]]:
    """Per serving script: a command line that would serve, writing under ``tmp`` (nothing exists yet)."""
    return {
        "facepp-server": ["--federation", str(tmp / "fed.json"), "--state", str(tmp / "state")],
        "facepp-matcher": ["serve", "--db", str(tmp / "state" / "matcher.db")],
        "facepp-terminal": ["serve", "--instance-dir", str(tmp / "state")],
    }


@pytest.mark.parametrize("script", ["facepp-server", "facepp-matcher", "facepp-terminal"])
def test_plain_http_beyond_loopback_is_a_usage_error(script: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """No certificate and a non-loopback address: exit 2 in one line, before any state is touched."""
    assert _main(script)([*_serve_commands(tmp_path)[script], "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"{script}: error: refusing plain HTTP on 0.0.0.0: give --tls-cert and --tls-key, listen on "
                   "127.0.0.1, or pass --insecure-http")
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("script", ["facepp-server", "facepp-matcher", "facepp-terminal"])
def test_tls_flags_are_checked_before_serving(script: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facepp.pki import issue_deployment

    issue_deployment(tmp_path / "pki", servers={"server": ["127.0.0.1"]}, clients=[])
    cert, key = tmp_path / "pki" / "server.pem", tmp_path / "pki" / "server.key"
    command = _serve_commands(tmp_path)[script]
    assert _main(script)([*command, "--tls-cert", str(cert)]) == 2
    assert capsys.readouterr().err.strip() == f"{script}: error: --tls-cert and --tls-key go together"
    assert _main(script)([*command, "--tls-cert", str(cert), "--tls-key", str(cert)]) == 1  # a certificate, not a key
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{script}: error: cannot use the TLS files {cert}, {cert}: ") and "\n" not in err
    assert _main(script)([*command, "--tls-cert", str(cert), "--tls-key", str(key), "--tls-client-ca",
                          str(tmp_path / "missing.pem")]) == 1
    assert "missing.pem" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


def test_plain_http_beyond_loopback_needs_insecure_http(caplog: pytest.LogCaptureFixture) -> None:
    from facepp.errors import UsageError
    from facepp.serving import ServerTLS, is_loopback

    assert [is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "0.0.0.0", "::",
                                     "10.0.0.5", "example.org")] == [True] * 5 + [False] * 4
    with pytest.raises(UsageError):
        ServerTLS().check("0.0.0.0")
    assert ServerTLS().check("127.0.0.1") is None and not caplog.records
    assert ServerTLS(insecure_http=True).check("0.0.0.0") is None
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "plain HTTP on 0.0.0.0 (--insecure-http): tokens, keys and cookies cross the network in the clear")]
