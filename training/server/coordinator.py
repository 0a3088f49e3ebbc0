"""Round bookkeeping of the parameter server: authenticate, accept, aggregate.

Server side: holds the Paillier *public* key only and adds ciphertexts. A round
closes as soon as every participant has uploaded, or once its deadline has
passed and a quorum has uploaded (it stays open past the deadline until the
quorum is reached). Deadlines are checked on every request (participants poll),
so no timer thread is needed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from facepp.crypto.paillier.encrypted_vector import EncryptedVector, add_encrypted
from facepp.crypto.paillier.public_key import PublicKey
from facepp.errors import AuthenticationError, ConfigError, ConflictError, ProtocolError
from training.protocol import RoundStatus, hash_token, upload_mac
from training.server.store import Store

log = logging.getLogger(__name__)

OPERATOR = "operator"


@dataclass(frozen=True)
class FederationConfig:
    """Server configuration (written by the key ceremony, ``federation.json``).

    Attributes:
        public_key: Path of the Paillier public key file.
        participants: Participant name -> SHA-256 hex of its token.
        total_rounds: Rounds to run.
        quorum: Uploads that close a round once its deadline has passed.
        round_timeout_s: Seconds from a round's opening to its deadline.
        operator: SHA-256 hex of the operator token (reads the status pages only), or None.
    """

    public_key: Path
    participants: dict[str, str]
    total_rounds: int
    quorum: int
    round_timeout_s: float
    operator: str | None = None

    def __post_init__(self) -> None:
        if not self.participants:
            raise ConfigError("a federation needs at least one participant")
        if not 1 <= self.quorum <= len(self.participants):
            raise ConfigError(f"quorum must be in [1, {len(self.participants)}], got {self.quorum}")
        if self.total_rounds < 1 or self.round_timeout_s <= 0:
            raise ConfigError("total_rounds must be >= 1 and round_timeout_s > 0")
        for name in self.participants:
            if not (name.replace("-", "").replace("_", "").isalnum() and len(name) <= 64):
                raise ConfigError(f"participant names are letters, digits, '-' and '_': {name!r}")
        for digest in [*self.participants.values(), *([self.operator] if self.operator is not None else [])]:
            if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
                raise ConfigError("token hashes must be 64 lowercase hex digits (SHA-256)")

    @classmethod
    def load(cls, path: str | Path) -> "FederationConfig":
        """Read ``federation.json``.

        Raises:
            ConfigError: The file is missing, not JSON, or lacks a field.
        """
        try:
            doc = json.loads(Path(path).read_text())
            return cls(
                public_key=Path(path).parent / doc["public_key"],
                participants=dict(doc["participants"]),
                total_rounds=int(doc["total_rounds"]),
                quorum=int(doc["quorum"]),
                round_timeout_s=float(doc["round_timeout_s"]),
                operator=doc.get("operator"),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"cannot use federation config {path}: {type(exc).__name__}: {exc}") from None


class Coordinator:
    """The parameter server's state machine over a durable :class:`Store`."""

    def __init__(self, config: FederationConfig, store: Store, *, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self.config = config
        self.store = store
        self.key = PublicKey.load(config.public_key)
        self._clock = clock
        self._lock = threading.RLock()
        try:
            initial = EncryptedVector.from_bytes(store.read_model(0), self.key)
        except FileNotFoundError:
            raise ConfigError(f"no initial encrypted model at {store.model_path(0)}: run the key ceremony first") from None
        self.plan = initial.plan
        self.value_count = initial.count
        self.upload_bytes = len(initial.to_bytes())
        if store.current_round() is None:
            store.open_round(1, deadline=self._clock() + config.round_timeout_s)
        self.tick()

    # -- queries -------------------------------------------------------------
    def authenticate(self, header: str | None) -> str:
        """The participant named by an ``Authorization: Bearer <token>`` header.

        Raises:
            AuthenticationError: Missing, malformed or unknown token.
        """
        if not header or not header.startswith("Bearer ") or len(header) > 512:
            raise AuthenticationError("missing bearer token (Authorization: Bearer <token>)")
        return self._holder(header[len("Bearer "):].strip(), self.config.participants)

    def viewer(self, header: str | None) -> str:
        """Who may read the status pages: a participant or the operator, by bearer token or by
        HTTP Basic credentials whose password is the token (what a browser sends).

        Raises:
            AuthenticationError: Missing, malformed or unknown token.
        """
        holders = dict(self.config.participants)
        if self.config.operator is not None:
            holders[OPERATOR] = self.config.operator
        if header and header.startswith("Basic ") and len(header) <= 512:
            try:
                _, _, token = base64.b64decode(header[len("Basic "):].strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise AuthenticationError("malformed Basic credentials") from None
            return self._holder(token, holders)
        if not header or not header.startswith("Bearer ") or len(header) > 512:
            raise AuthenticationError("a participant or operator token is required (Bearer token or Basic password)")
        return self._holder(header[len("Bearer "):].strip(), holders)

    @staticmethod
    def _holder(token: str, holders: dict[str, str]) -> str:
        digest = hash_token(token)
        found = None
        for name, expected in holders.items():
            if hmac.compare_digest(digest, expected):
                found = name
        if found is None:
            raise AuthenticationError("invalid token")
        return found

    def status(self, participant: str) -> RoundStatus:
        self.tick()
        current = self._current()
        finished = current.closed_at is not None
        return RoundStatus(
            round=current.round,
            total_rounds=self.config.total_rounds,
            finished=finished,
            deadline=current.deadline,
            quorum=self.config.quorum,
            participants=len(self.config.participants),
            uploaded=self.store.has_upload(current.round, participant),
            model_round=current.round if finished else current.round - 1,
            fingerprint=self.key.fingerprint,
            value_count=self.value_count,
        )

    def model(self) -> tuple[int, bytes]:
        """The latest encrypted global model and the round it aggregates (0 = initial)."""
        self.tick()
        current = self._current()
        round_ = current.round if current.closed_at is not None else current.round - 1
        return round_, self.store.read_model(round_)

    # -- commands ------------------------------------------------------------
    def accept_upload(self, participant: str, round_: int, data: bytes, mac: str | None) -> None:
        """Validate and durably store one participant's encrypted update for ``round_``.

        Raises:
            ConflictError: The round is closed, in the future, or already has this participant's
                upload, or these ciphertexts were accepted before (a replay).
            KeyMismatchError: Encrypted under another key.
            ProtocolError: A missing or wrong upload MAC (made for another round or participant),
                malformed bytes, wrong length or packing plan, or a pre-summed vector.
        """
        expected = upload_mac(self.config.participants[participant], round_, data)
        if not mac or not hmac.compare_digest(mac.strip().lower(), expected):
            raise ProtocolError(f"upload MAC missing or wrong: the upload is not bound to round {round_} "
                                f"and participant {participant!r}")
        with self._lock:
            self.tick()
            self._check_open(round_)
            if self.store.has_upload(round_, participant):
                raise ConflictError(f"participant {participant!r} already uploaded for round {round_}")
            digest = hashlib.sha256(data).hexdigest()
            if self.store.seen_upload(digest):
                raise ConflictError("these ciphertexts were already uploaded: a replay is refused")
            vector = EncryptedVector.from_bytes(data, self.key, expected_count=self.value_count)
            if vector.plan != self.plan:
                raise ProtocolError("upload uses another packing plan than the federation's model")
            if vector.summands != 1:
                raise ProtocolError("an upload must be one fresh contribution (summands = 1)")
            self.store.add_upload(round_, participant, data, digest=digest)
            log.info("round %d: accepted %d bytes from %s", round_, len(data), participant)
            self.tick()

    def accept_metrics(self, participant: str, round_: int, metrics: dict[str, float]) -> None:
        """Record plaintext metrics a participant chose to report (for the status page): once per
        participant and round, while the round is open.

        Raises:
            ConflictError: The round is closed or in the future, or this participant already reported for it.
        """
        with self._lock:
            self.tick()
            self._check_open(round_)
            if not self.store.add_metrics(round_, participant, metrics):
                raise ConflictError(f"participant {participant!r} already reported metrics for round {round_}")

    def tick(self) -> None:
        """Close the open round if everyone uploaded, or its deadline passed with a quorum."""
        with self._lock:
            current = self._current()
            if current.closed_at is not None:
                return
            uploads = self.store.uploads(current.round)
            everyone = len(uploads) == len(self.config.participants)
            late = self._clock() >= current.deadline and len(uploads) >= self.config.quorum
            if everyone or late:
                self._aggregate(current.round, sorted(uploads))

    # -- internals -----------------------------------------------------------
    def _current(self):  # type: ignore[no-untyped-def]
        current = self.store.current_round()
        assert current is not None  # opened in __init__
        return current

    def _check_open(self, round_: int) -> None:
        current = self._current()
        if current.closed_at is not None:
            raise ConflictError(f"the federation has finished (last round {current.round})")
        if round_ < current.round:
            raise ConflictError(f"round {round_} is closed; the open round is {current.round}")
        if round_ > current.round:
            raise ConflictError(f"round {round_} has not started; the open round is {current.round}")

    def _aggregate(self, round_: int, participants: list[str]) -> None:
        start = time.perf_counter()
        vectors = [EncryptedVector.from_bytes(self.store.read_upload(round_, p), self.key) for p in participants]
        total = add_encrypted(self.key, vectors)
        last = round_ >= self.config.total_rounds
        self.store.close_round(
            round_,
            aggregate=total.to_bytes(),
            contributors=len(participants),
            next_deadline=None if last else self._clock() + self.config.round_timeout_s,
        )
        log.info("round %d closed with %d uploads (%s), aggregated in %.2f s%s", round_, len(participants),
                 ", ".join(participants), time.perf_counter() - start, "; federation finished" if last else "")
