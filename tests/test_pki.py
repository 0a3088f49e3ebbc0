"""``facepp-federation pki`` and facepp.pki: a private CA, role certificates, keys 0600, nothing overwritten."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from facepp.errors import ConfigError
from facepp.pki import CertificateAuthority, issue_deployment
from training.cli import main


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_the_command_makes_a_ca_and_role_certificates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "pki"
    assert main(["pki", str(folder), "--server", "server=fl.example.org,localhost,127.0.0.1,::1",
                 "--client", "alice", "--client", "bob", "--days", "30"]) == 0
    names = {"ca", "server", "alice", "bob"}
    assert capsys.readouterr().out.split() == [str(folder / f"{n}.{ext}") for n in ("ca", "server", "alice", "bob")
                                               for ext in ("pem", "key")]
    assert {p.name for p in folder.iterdir()} == {f"{n}.{ext}" for n in names for ext in ("pem", "key")}
    ca = _load(folder / "ca.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server = _load(folder / "server.pem")
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["fl.example.org", "localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert (server.not_valid_after_utc - server.not_valid_before_utc).days == 30
    for name in ("alice", "bob"):
        cert = _load(folder / f"{name}.pem")
        cert.verify_directly_issued_by(ca)
        assert cert.subject.rfc4514_string() == f"CN={name}"
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_keys_are_created_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        written = issue_deployment(tmp_path / "pki", servers={"server": ["127.0.0.1"]}, clients=["alice"])
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in written}
    assert modes == {"ca.pem": 0o644, "ca.key": 0o600, "server.pem": 0o644, "server.key": 0o600,
                     "alice.pem": 0o644, "alice.key": 0o600}
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700


def test_an_existing_ca_is_reused_and_nothing_is_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "pki"
    assert main(["pki", str(folder), "--client", "alice"]) == 0
    before = _snapshot(folder)
    # A name that exists is refused in one line, before anything is written (carol is not issued either).
    assert main(["pki", str(folder), "--client", "carol", "--client", "alice"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"facepp-federation pki: error: {folder / 'alice.pem'} exists: refusing to overwrite it"
    assert _snapshot(folder) == before
    # A new participant later: the same CA signs it.
    assert main(["-q", "pki", str(folder), "--client", "carol"]) == 0
    assert _snapshot(folder).items() >= before.items()
    _load(folder / "carol.pem").verify_directly_issued_by(_load(folder / "ca.pem"))
    assert main(["pki", str(folder), "--client", "dave", "--days", "99999"]) == 1
    assert "not outlive the CA" in capsys.readouterr().err and not (folder / "dave.pem").exists()


@pytest.mark.parametrize(("argv", "status", "message"), [
    (["--server", "server"], 2, "expected NAME=HOST[,HOST...]"),
    (["--server", "server="], 2, "expected NAME=HOST[,HOST...]"),
    ([], 1, "nothing to issue"),
    (["--client", "../evil"], 1, "certificate name '../evil'"),
    (["--client", "ca"], 1, "certificate name 'ca'"),
    (["--server", "a=x", "--client", "a"], 1, "repeated: a"),
    (["--server", "s=bad host!"], 1, "neither an IP address nor a DNS name"),
    (["--client", "a", "--days", "0"], 1, "--days must be at least 1"),
])
def test_bad_requests_write_nothing(tmp_path: Path, argv: list[str], status: int, message: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "pki"
    assert main(["pki", str(folder), *argv]) == status
    assert message in capsys.readouterr().err
    assert not folder.exists()


def test_a_half_ca_or_a_foreign_key_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    issue_deployment(folder, servers={}, clients=["alice"])
    (folder / "ca.key").rename(tmp_path / "ca.key")
    with pytest.raises(ConfigError, match="only one of ca.pem and ca.key"):
        issue_deployment(folder, servers={}, clients=["bob"])
    (folder / "alice.key").rename(folder / "ca.key")  # a key, but not the CA's
    with pytest.raises(ConfigError, match="does not belong to"):
        CertificateAuthority.load(folder)
    assert not (folder / "bob.pem").exists()
