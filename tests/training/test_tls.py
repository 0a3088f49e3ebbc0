"""The federation over real TLS on loopback, with certificates from ``facepp-federation pki``.

The parameter server requires client certificates (mutual TLS) signed by the
federation's CA; participants verify the server against that CA only. Refused:
another CA, no client certificate, an expired certificate on either side, and a
certificate whose CN is not the token's participant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facepp.crypto.paillier.secret_cipher import SecretKey
from facepp.errors import AuthenticationError, TLSError
from facepp.pki import CertificateAuthority, issue_deployment, write_pair
from tests.helpers.federation import TOLERANCE, ServerProcess, expected_fedavg, start_toy_participant, uploads_in, wait_all
from training.ceremony import Federation, create_federation
from training.fedavg import FederationPlan, packing_plan
from training.participant.client import Participant
from training.participant.cli import main as participant_main
from training.participant.spec import TrainingSpec

NAMES = ("alice", "bob")
LONG_AGO = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The federation's CA, the server's certificate, alice's and bob's client certificates, and expired ones."""
    folder = tmp_path_factory.mktemp("pki")
    issue_deployment(folder, servers={"server": ["localhost", "127.0.0.1"]}, clients=list(NAMES))
    ca = CertificateAuthority.load(folder)
    write_pair(folder, "alice-expired", *ca.issue_client("alice", days=2, not_before=LONG_AGO))
    write_pair(folder, "server-expired", *ca.issue_server("server", ["127.0.0.1"], days=2, not_before=LONG_AGO))
    issue_deployment(folder / "other", servers={}, clients=["alice"])  # another CA altogether
    return folder


def client(pki: Path, name: str) -> tuple[str, str]:
    return str(pki / f"{name}.pem"), str(pki / f"{name}.key")


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, paillier_key: SecretKey) -> Federation:
    spec = TrainingSpec(total_rounds=1, participants=NAMES)
    return create_federation(tmp_path_factory.mktemp("fed") / "fed", participants=NAMES, total_rounds=1,
                             initial_weights=np.zeros(300, np.float32), secret_key=paillier_key,
                             spec_json=spec.to_json())


@pytest.fixture(scope="module")
def mtls_server(federation: Federation, pki: Path) -> Iterator[ServerProcess]:
    """A parameter server over mutual TLS (nobody uploads to it: the refusal tests share it)."""
    server = ServerProcess(federation, tls=(pki / "server.pem", pki / "server.key", pki / "ca.pem"),
                           probe_tls=(pki / "ca.pem", pki / "alice.pem", pki / "alice.key")).start()
    yield server
    server.stop()


def participant(federation: Federation, server: ServerProcess, name: str, paillier_key: SecretKey, *,
                ca: Path, cert: tuple[str, str] | None) -> Participant:
    token = federation.participant_dir(name).joinpath("token").read_text().strip()
    plan = FederationPlan(packing_plan(key_bits=paillier_key.public_key.key_bits, participants=len(NAMES)),
                          participants=len(NAMES), sample_scale=100.0)
    return Participant(server_url=server.url, token=token, secret_key=paillier_key, plan=plan, retries=2,
                       ca_file=str(ca), client_cert=cert)


def test_a_participant_with_its_certificate_and_the_ca_is_accepted(federation: Federation, mtls_server: ServerProcess,
                                                                     pki: Path, paillier_key: SecretKey) -> None:
    status = participant(federation, mtls_server, "alice", paillier_key, ca=pki / "ca.pem",
                         cert=client(pki, "alice")).check()
    assert (status.round, status.uploaded) == (1, False)
    assert "(mutual TLS" in mtls_server.log.read_text()


def test_a_participant_trusting_another_ca_refuses_the_server(federation: Federation, mtls_server: ServerProcess,
                                                               pki: Path, paillier_key: SecretKey) -> None:
    with pytest.raises(TLSError, match="certificate verify failed"):
        participant(federation, mtls_server, "alice", paillier_key, ca=pki / "other" / "ca.pem",
                    cert=client(pki, "alice")).check()


def test_a_client_certificate_from_another_ca_is_refused(federation: Federation, mtls_server: ServerProcess,
                                                          pki: Path, paillier_key: SecretKey) -> None:
    with pytest.raises(TLSError, match="unknown ca"):
        participant(federation, mtls_server, "alice", paillier_key, ca=pki / "ca.pem",
                    cert=client(pki / "other", "alice")).check()


def test_a_participant_without_a_client_certificate_is_refused(federation: Federation, mtls_server: ServerProcess,
                                                                pki: Path, paillier_key: SecretKey) -> None:
    with pytest.raises(TLSError, match="certificate required"):
        participant(federation, mtls_server, "alice", paillier_key, ca=pki / "ca.pem", cert=None).check()


def test_an_expired_client_certificate_is_refused(federation: Federation, mtls_server: ServerProcess, pki: Path,
                                                   paillier_key: SecretKey) -> None:
    with pytest.raises(TLSError, match="certificate expired"):
        participant(federation, mtls_server, "alice", paillier_key, ca=pki / "ca.pem",
                    cert=client(pki, "alice-expired")).check()


def test_a_server_with_an_expired_certificate_is_refused(federation: Federation, pki: Path,
                                                         paillier_key: SecretKey) -> None:
    server = ServerProcess(federation, tls=(pki / "server-expired.pem", pki / "server-expired.key", None),
                           probe_tls=(pki / "ca.pem", pki / "alice.pem", pki / "alice.key")).start()
    try:
        with pytest.raises(TLSError, match="certificate has expired"):
            participant(federation, server, "alice", paillier_key, ca=pki / "ca.pem", cert=None).check()
    finally:
        server.stop()


def test_the_certificate_must_name_the_tokens_participant(federation: Federation, mtls_server: ServerProcess,
                                                          pki: Path, paillier_key: SecretKey) -> None:
    with pytest.raises(AuthenticationError, match="client certificate CN 'bob' does not match"):
        participant(federation, mtls_server, "alice", paillier_key, ca=pki / "ca.pem", cert=client(pki, "bob")).check()


def test_facepp_participant_checks_the_server_before_preparing_data(federation: Federation, mtls_server: ServerProcess,
                                                                    pki: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--dir", str(federation.participant_dir("alice")), "--server", mtls_server.url, "--data",
            str(tmp_path / "no-such-dataset"), "--ca-file", str(pki / "other" / "ca.pem"),
            "--client-cert", *client(pki, "alice")[:1], "--client-key", client(pki, "alice")[1]]
    assert participant_main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"facepp-participant: error: TLS with the server at {mtls_server.url} failed: "
                          "certificate verify failed") and "\n" not in err
    assert participant_main(argv[:-4] + ["--client-cert", client(pki, "alice")[0]]) == 2  # a key is needed too
    assert uploads_in(federation.server_state, 1) == 0


def test_an_encrypted_round_with_two_participants_over_mutual_tls(make_federation, initial_weights: np.ndarray,
                                                                  pki: Path, tmp_path: Path) -> None:
    fed = make_federation(participants=NAMES, total_rounds=1)
    server = ServerProcess(fed, tls=(pki / "server.pem", pki / "server.key", pki / "ca.pem"),
                           probe_tls=(pki / "ca.pem", pki / "alice.pem", pki / "alice.key")).start()
    try:
        procs = [start_toy_participant(fed, name, server.url, out=tmp_path / f"{name}.npy",
                                       tls=(pki / "ca.pem", pki / f"{name}.pem", pki / f"{name}.key")) for name in NAMES]
        wait_all(procs)
    finally:
        server.stop()
    assert server.url.startswith("https://") and uploads_in(fed.server_state, 1) == 2
    expected = expected_fedavg(initial_weights, 1, [NAMES])
    for name in NAMES:
        assert np.max(np.abs(np.load(tmp_path / f"{name}.npy") - expected)) < TOLERANCE
