"""A federation participant: download, decrypt, check, train locally, encrypt, upload.

Key-holder code: holds the shared Paillier secret key. Everything it learns from
the server is the aggregate of all participants' contributions, and it uses an
aggregate only once it passed the federation plan's bounds (see
:meth:`training.fedavg.FederationPlan.average`); a refused aggregate stops the
participant with its last accepted model kept in :attr:`Participant.last_model`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from facepp.crypto.paillier.encrypted_vector import EncryptedVector
from facepp.crypto.paillier.secret_cipher import SecretKey, VectorCipher
from facepp.errors import AuthenticationError, ConflictError, FaceppError, KeyMismatchError, ProtocolError, TLSError
from facepp.serving import tls_reason
from training.fedavg import FederationPlan
from training.protocol import API_PREFIX, ROUND_HEADER, UPLOAD_MAC_HEADER, RoundStatus, hash_token, metrics_json, upload_mac

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalUpdate:
    """The result of one round of local training."""

    weights: np.ndarray  # (P,) float32
    samples: int
    metrics: dict[str, float] = field(default_factory=dict)


class LocalTrainer(Protocol):
    """Trains the shared model on a participant's own data for one round."""

    def train(self, weights: np.ndarray, round_: int) -> LocalUpdate: ...


class Participant:
    """Runs one participant until the federation finishes.

    Crash-safe by construction: the server records who uploaded in which round,
    so a restarted participant resumes at the open round. Connection errors and
    5xx answers are retried with exponential backoff; a failed TLS handshake is not.

    Args:
        ca_file: PEM CA the server's certificate must chain to (only that CA); None: the system's CAs.
        client_cert: (certificate, key) PEM files for a server that requires mutual TLS.
    """

    def __init__(
        self,
        *,
        server_url: str,
        token: str,
        secret_key: SecretKey,
        plan: FederationPlan,
        poll_s: float = 0.5,
        workers: int | None = None,
        retries: int = 8,
        keep_contributions: Path | None = None,
        ca_file: str | None = None,
        client_cert: tuple[str, str] | None = None,
    ) -> None:
        self.server_url = server_url
        self.base = server_url.rstrip("/") + API_PREFIX
        self.secret_key = secret_key
        self.plan = plan
        self.token_hash = hash_token(token)
        self.last_model: tuple[int, np.ndarray] | None = None  # (round, weights) of the last accepted aggregate
        self.poll_s = poll_s
        self.workers = workers
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        # Per request, not on the session: requests lets REQUESTS_CA_BUNDLE override a session's CA.
        self.tls: dict[str, Any] = {"verify": ca_file or True, "cert": client_cert}
        retry = Retry(total=retries, other=0, backoff_factor=0.3, status_forcelist=(502, 503, 504),
                      allowed_methods=None, raise_on_status=False)
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.uploaded_rounds: list[int] = []
        self.keep_contributions = keep_contributions

    def status(self) -> RoundStatus:
        return RoundStatus.from_json(self._request("GET", "/round").content)

    def global_model(self, status: RoundStatus) -> tuple[int, np.ndarray, VectorCipher]:
        """Download, decrypt and check the current global model (FedAvg of the last round).

        Raises:
            ProtocolError: The aggregate uses another packing plan or holds more summands than participants.
            AggregateRejectedError: The decrypted aggregate is outside the plan's bounds.
        """
        response = self._request("GET", "/model")
        vector = EncryptedVector.from_bytes(response.content, self.secret_key.public_key, expected_count=status.value_count)
        if vector.plan != self.plan.packing or vector.summands > self.plan.participants:
            raise ProtocolError("the server's model uses another packing plan or more summands than participants")
        cipher = VectorCipher(self.secret_key, vector.plan, workers=self.workers)
        round_ = int(response.headers[ROUND_HEADER])
        try:
            weights = self.plan.average(cipher.decrypt(vector))
        except BaseException:
            cipher.close()
            raise
        self.last_model = (round_, weights)
        return round_, weights, cipher

    def check(self) -> RoundStatus:
        """The round status, once the server's certificate, our credentials and the key fingerprint check out.

        Raises:
            TLSError: the TLS handshake failed (untrusted or expired certificate, client certificate refused).
            AuthenticationError: the token (or the client certificate's name) was refused.
            KeyMismatchError: the server's federation uses another Paillier key.
        """
        status = self.status()
        if status.fingerprint != self.secret_key.fingerprint:
            raise KeyMismatchError("the server's federation uses another Paillier key than ours")
        return status

    def run(self, trainer: LocalTrainer) -> np.ndarray:
        """Take part in every remaining round, training with ``trainer``; return the final global weights."""
        while True:
            status = self.check()
            if status.finished:
                _, weights, cipher = self.global_model(status)
                cipher.close()
                log.info("federation finished after %d rounds", status.total_rounds)
                return weights
            if status.uploaded:
                time.sleep(self.poll_s)
                continue
            self._play_round(status, trainer)

    def _play_round(self, status: RoundStatus, trainer: LocalTrainer) -> None:
        model_round, weights, cipher = self.global_model(status)
        if model_round != status.round - 1:
            return  # the round closed meanwhile; ask again
        with cipher:
            update = trainer.train(weights, status.round)
            start = time.perf_counter()
            contribution = self.plan.contribution(update.weights, update.samples)
            if self.keep_contributions is not None:  # trusted side only: lets a privacy audit search for them
                self.keep_contributions.mkdir(parents=True, exist_ok=True)
                np.save(self.keep_contributions / f"round-{status.round:05d}.npy", contribution)
            payload = cipher.encrypt(contribution)
            data = payload.to_bytes()
            log.info("round %d: encrypted %d values in %.2f s (%d bytes)", status.round, payload.count,
                     time.perf_counter() - start, len(data))
        if update.metrics:  # while the round is open: the server refuses reports for closed rounds
            try:
                self._request("POST", f"/rounds/{status.round}/metrics", data=metrics_json(update.metrics),
                              headers={"Content-Type": "application/json"})
            except ConflictError as exc:  # reported before a restart, or the round closed meanwhile
                log.warning("round %d: metrics not taken: %s", status.round, exc)
        try:
            self._request("POST", f"/rounds/{status.round}/update", data=data,
                          headers={"Content-Type": "application/octet-stream",
                                   UPLOAD_MAC_HEADER: upload_mac(self.token_hash, status.round, data)})
        except ConflictError as exc:
            # Already recorded (a retried POST whose first answer was lost) or the round closed without us.
            log.warning("round %d: upload not taken: %s", status.round, exc)
            return
        self.uploaded_rounds.append(status.round)

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:  # type: ignore[no-untyped-def]
        try:
            response = self.session.request(method, self.base + path, timeout=(5, 300), **self.tls, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise TLSError(f"TLS with the server at {self.server_url} failed: {tls_reason(exc)}") from None
        if response.ok:
            return response
        try:
            message = response.json().get("error", response.reason)
        except ValueError:
            message = response.reason
        error: type[FaceppError] = {401: AuthenticationError, 409: ConflictError}.get(response.status_code, ProtocolError)
        raise error(f"server refused {method} {path} ({response.status_code}): {message}")
