"""A private certificate authority for a facepp deployment (``facepp-federation pki``), built on ``cryptography``.

Trusted tooling, run by the federation operator: it holds the CA's private key.
The services never import it; they only read the PEM files it writes::

    DIR/ca.pem   DIR/ca.key                 the CA (kept offline by the operator; ca.key mode 0600)
    DIR/NAME.pem DIR/NAME.key               a server certificate (serverAuth; SANs: its DNS names and IPs)
                                            or a client certificate (clientAuth; CN = participant name)

Keys are ECDSA P-256. Private keys are created with mode 0600 (``O_CREAT | O_EXCL``:
never widened, never overwritten); an existing file is a :class:`ConfigError`
and nothing is written.

Example::

    ca = CertificateAuthority.open_or_create(Path("pki"))
    write_pair(Path("pki"), "server", *ca.issue_server("server", ["localhost", "127.0.0.1"]))
    write_pair(Path("pki"), "alice", *ca.issue_client("alice"))
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from facepp.errors import ConfigError

#: Validity of a new CA; certificates it issues may not outlive it.
CA_DAYS = 3650
#: Default validity of a server or client certificate.
DEFAULT_DAYS = 365
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _check_name(name: str) -> str:
    if not _NAME.match(name) or name == "ca":
        raise ConfigError(f"certificate name {name!r}: use letters, digits, '.', '-' and '_' (and not 'ca')")
    return name


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?", host):
            raise ConfigError(f"{host!r} is neither an IP address nor a DNS name") from None
        return x509.DNSName(host)


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, name: str = "facepp private CA", *, days: int = CA_DAYS) -> CertificateAuthority:
        """A new self-signed CA (path length 0: it signs end-entity certificates only)."""
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, folder: Path) -> CertificateAuthority:
        """Read ``folder/ca.pem`` and ``folder/ca.key``.

        Raises:
            ConfigError: unreadable, not a CA, or the key does not belong to the certificate.
        """
        try:
            cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
            key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot read the CA in {folder}: {exc}") from None
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca or not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{folder / 'ca.pem'} is not a CA certificate made by facepp-federation pki")
        if key.public_key() != cert.public_key():
            raise ConfigError(f"{folder / 'ca.key'} does not belong to {folder / 'ca.pem'}")
        return cls(cert, key)

    @classmethod
    def open_or_create(cls, folder: Path, *, days: int = CA_DAYS) -> CertificateAuthority:
        """The CA in ``folder``, or a new one written there (``ca.pem``, ``ca.key`` mode 0600).

        Raises:
            ConfigError: only one of the two files exists, or they are unusable.
        """
        present = [(folder / n).exists() for n in ("ca.pem", "ca.key")]
        if all(present):
            return cls.load(folder)
        if any(present):
            raise ConfigError(f"{folder} holds only one of ca.pem and ca.key: refusing to create another CA there")
        ca = cls.create(days=days)
        write_pair(folder, "ca", ca.cert, ca.key)
        return ca

    def _issue(self, name: str, *, sans: Sequence[x509.GeneralName], usage: x509.ObjectIdentifier, days: int,
               not_before: dt.datetime | None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        start = not_before or _now() - dt.timedelta(minutes=5)
        end = start + dt.timedelta(days=days)
        if days < 1 or end > self.cert.not_valid_after_utc:
            raise ConfigError(f"--days {days}: a certificate must be valid for at least a day and not outlive the CA "
                              f"(valid until {self.cert.not_valid_after_utc:%Y-%m-%d})")
        key = _key()
        issuer_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key

    def issue_server(self, name: str, hosts: Sequence[str], *, days: int = DEFAULT_DAYS,
                     not_before: dt.datetime | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A serverAuth certificate whose SANs are ``hosts`` (DNS names and IP addresses)."""
        if not hosts:
            raise ConfigError(f"server {name!r} needs at least one host name or address")
        return self._issue(_check_name(name), sans=[_san(h) for h in hosts], usage=ExtendedKeyUsageOID.SERVER_AUTH,
                           days=days, not_before=not_before)

    def issue_client(self, name: str, *, days: int = DEFAULT_DAYS,
                     not_before: dt.datetime | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A clientAuth certificate with CN = ``name`` (the participant's name for the parameter server)."""
        return self._issue(_check_name(name), sans=[], usage=ExtendedKeyUsageOID.CLIENT_AUTH, days=days,
                           not_before=not_before)


def _create(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start; never replace an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def pair_paths(folder: Path, name: str) -> tuple[Path, Path]:
    """``folder/NAME.pem`` and ``folder/NAME.key``."""
    return folder / f"{name}.pem", folder / f"{name}.key"


def write_pair(folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    """Write ``NAME.pem`` (0644) and ``NAME.key`` (0600) into ``folder`` (created 0700).

    Raises:
        ConfigError: either file exists (nothing is written).
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = pair_paths(folder, name)
    _refuse_existing([cert_path, key_path])
    _create(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()), 0o600)
    _create(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def _refuse_existing(paths: Sequence[Path]) -> None:
    for path in paths:
        if path.exists():
            raise ConfigError(f"{path} exists: refusing to overwrite it")


def issue_deployment(folder: Path, *, servers: Mapping[str, Sequence[str]], clients: Sequence[str],
                     days: int = DEFAULT_DAYS) -> list[Path]:
    """Create or reuse the CA in ``folder`` and write every server and client pair.

    Every name and file is checked before anything is written, so a refusal leaves
    ``folder`` as it was.

    Args:
        servers: name -> its host names and IP addresses (the certificate's SANs).
        clients: participant names (each certificate's CN).
        days: validity of the issued certificates.

    Returns:
        The files written, the CA's first when it was created.

    Raises:
        ConfigError: a bad or repeated name, a bad host, an existing file, or an unusable CA.
    """
    names = [*servers, *clients]
    for name in names:
        _check_name(name)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"certificate names must be unique; repeated: {', '.join(repeated)}")
    if not names:
        raise ConfigError("nothing to issue: give at least one --server or --client")
    if days < 1:
        raise ConfigError(f"--days must be at least 1, got {days}")
    for name, hosts in servers.items():
        if not hosts:
            raise ConfigError(f"server {name!r} needs at least one host name or address")
        for host in hosts:
            _san(host)
    _refuse_existing([path for name in names for path in pair_paths(folder, name)])
    created_ca = not (folder / "ca.pem").exists()
    ca = CertificateAuthority.open_or_create(folder, days=max(CA_DAYS, days + 1))
    written = list(pair_paths(folder, "ca")) if created_ca else []
    issued = [(n, ca.issue_server(n, hosts, days=days)) for n, hosts in servers.items()]
    issued += [(n, ca.issue_client(n, days=days)) for n in clients]
    for name, (cert, key) in issued:
        written += write_pair(folder, name, cert, key)
    return written
