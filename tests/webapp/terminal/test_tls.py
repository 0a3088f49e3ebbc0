"""The matcher and the terminal over real TLS on loopback, with certificates from ``facepp-federation pki``.

``facepp-matcher serve`` requires client certificates (mutual TLS); ``facepp-terminal
serve`` speaks HTTPS, reaches the matcher with a pinned CA and its client
certificate, and believes ``X-Forwarded-For`` only from its trusted proxy address
(127.0.0.2 here): flask-limiter then counts per real client behind that proxy, and
per peer address for anyone else, whatever they forward.
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from facepp.pki import issue_deployment
from tests.helpers.net import ServiceProcess, free_port
from tests.helpers.terminal import API_TOKEN, orl_file
from webapp.matcher.auth import create_api_key
from webapp.matcher.client import MatcherClient, MatcherError
from webapp.matcher.db import make_engine, upgrade
from webapp.matcher.store import MatcherStore

PROXY = "127.0.0.2"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    issue_deployment(folder, servers={"matcher": ["localhost", "127.0.0.1"], "terminal": ["localhost", "127.0.0.1"]},
                     clients=["terminal-1"])
    issue_deployment(folder / "other", servers={"matcher": ["127.0.0.1"]}, clients=["terminal-1"])
    return folder


def pem(pki: Path, name: str) -> tuple[str, str]:
    return str(pki / f"{name}.pem"), str(pki / f"{name}.key")


@pytest.fixture(scope="module")
def matcher(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``facepp-matcher serve`` over mutual TLS; yields its URL and an API key."""
    folder = tmp_path_factory.mktemp("matcher")
    db = f"sqlite:///{folder / 'matcher.db'}"
    engine = make_engine(db)
    upgrade(engine)
    key = create_api_key(MatcherStore(engine), "terminal-1")
    engine.dispose()
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    cert, tls_key = pem(pki, "matcher")
    service = ServiceProcess([sys.executable, "-m", "webapp.matcher.cli", "serve", "--db", db, "--port", str(port),
                              "--tls-cert", cert, "--tls-key", tls_key, "--tls-client-ca", str(pki / "ca.pem")],
                             url=f"{url}/api/v1/health", log=folder / "matcher.log", verify=str(pki / "ca.pem"),
                             cert=pem(pki, "terminal-1"))
    yield url, key
    service.stop()


@pytest.fixture(scope="module")
def terminal(pki: Path, matcher: tuple[str, str], checkpoint: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``facepp-terminal serve`` over TLS, trusting the proxy at 127.0.0.2; yields its URL."""
    folder = tmp_path_factory.mktemp("terminal")
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    cert, key = pem(pki, "terminal")
    client_cert, client_key = pem(pki, "terminal-1")
    service = ServiceProcess(
        [sys.executable, "-m", "webapp.terminal.cli", "serve", "--port", str(port), "--checkpoint", str(checkpoint),
         "--threshold", "0.5", "--instance-dir", str(folder / "instance"), "--tls-cert", cert, "--tls-key", key,
         "--matcher-url", matcher[0], "--matcher-ca", str(pki / "ca.pem"), "--matcher-client-cert", client_cert,
         "--matcher-client-key", client_key, "--trusted-proxy", PROXY],
        url=url + "/login", log=folder / "terminal.log", verify=str(pki / "ca.pem"),
        env={"FACEPP_TERMINAL_MATCHER_API_KEY": matcher[1], "FACEPP_TERMINAL_API_TOKEN": API_TOKEN,
             "FACEPP_TERMINAL_API_RATE_LIMIT": "1000 per minute"})
    yield url
    service.stop()


def test_the_matcher_refuses_clients_without_its_ca_or_a_certificate(pki: Path, matcher: tuple[str, str]) -> None:
    url, key = matcher
    assert MatcherClient(url, key, verify=str(pki / "ca.pem"), cert=pem(pki, "terminal-1")).health()
    with pytest.raises(MatcherError, match="certificate verify failed") as wrong_ca:
        MatcherClient(url, key, verify=str(pki / "other" / "ca.pem"), cert=pem(pki, "terminal-1")).subjects()
    assert wrong_ca.value.matcher_code == "tls_error"
    with pytest.raises(MatcherError, match="certificate required"):
        MatcherClient(url, key, verify=str(pki / "ca.pem")).subjects()
    with pytest.raises(MatcherError, match="unknown ca"):
        MatcherClient(url, key, verify=str(pki / "ca.pem"), cert=pem(pki / "other", "terminal-1")).subjects()


def test_enrol_and_verify_through_the_terminal_over_https(pki: Path, matcher: tuple[str, str], terminal: str,
                                                          orl: Path) -> None:
    # The terminal registered its public bundle with the matcher over mutual TLS at start.
    assert MatcherClient(matcher[0], matcher[1], verify=str(pki / "ca.pem"), cert=pem(pki, "terminal-1")).bundle()
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    with orl_file(orl, 31, 1).open("rb") as image:
        enrolled = requests.post(f"{terminal}/api/enroll", data={"subject_id": "s31"}, files={"image": image},
                                 headers=auth, verify=str(pki / "ca.pem"), timeout=120)
    assert enrolled.status_code == 201, enrolled.text
    with orl_file(orl, 31, 2).open("rb") as image:
        verified = requests.post(f"{terminal}/api/verify", data={"subject_id": "s31"}, files={"image": image},
                                 headers=auth, verify=str(pki / "ca.pem"), timeout=120)
    assert verified.status_code == 200 and set(verified.json()) >= {"match", "score", "threshold"}
    assert verified.headers["Strict-Transport-Security"].startswith("max-age=")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{terminal}/login", verify=str(pki / "other" / "ca.pem"), timeout=10)


def _remaining(terminal: str, pki: Path, *, source: str, forwarded_for: str) -> int:
    """X-RateLimit-Remaining of one API request sent from ``source`` claiming to forward ``forwarded_for``."""
    port = int(terminal.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, source_address=(source, 0),
                                             timeout=30)
    try:
        connection.request("GET", "/api/subjects", headers={"Authorization": f"Bearer {API_TOKEN}",
                                                            "X-Forwarded-For": forwarded_for,
                                                            "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        json.loads(response.read())
        return int(response.headers["X-RateLimit-Remaining"])
    finally:
        connection.close()


def test_forwarded_client_addresses_count_only_from_the_trusted_proxy(pki: Path, terminal: str) -> None:
    # Behind the trusted proxy: each forwarded client has its own budget.
    first = _remaining(terminal, pki, source=PROXY, forwarded_for="198.51.100.7")
    assert _remaining(terminal, pki, source=PROXY, forwarded_for="198.51.100.7") == first - 1
    assert _remaining(terminal, pki, source=PROXY, forwarded_for="198.51.100.8") == first
    # From an address that is not a trusted proxy, the header is ignored: one budget, that of the peer.
    direct = _remaining(terminal, pki, source="127.0.0.1", forwarded_for="198.51.100.9")
    assert _remaining(terminal, pki, source="127.0.0.1", forwarded_for="198.51.100.10") == direct - 1
    assert _remaining(terminal, pki, source="127.0.0.1", forwarded_for="198.51.100.7") == direct - 2
