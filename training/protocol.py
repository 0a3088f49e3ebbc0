"""Wire messages between participants and the parameter server (version 1).

Ciphertext payloads travel as the binary :mod:`facepp.crypto.paillier.encrypted_vector`
format (``application/octet-stream``); everything else is JSON with a
``version`` field, parsed strictly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from facepp.errors import ProtocolError

PROTOCOL_VERSION = 1
API_PREFIX = "/api/v1"
ROUND_HEADER = "X-Facepp-Round"
UPLOAD_MAC_HEADER = "X-Facepp-Upload-MAC"
MAX_METRICS = 16


def hash_token(token: str) -> str:
    """SHA-256 hex of a bearer token: what the server stores instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def upload_mac(token_hash: str, round_: int, data: bytes) -> str:
    """HMAC-SHA256 binding an upload to its round and its participant.

    Keyed with the participant's token hash (which the server holds), over the round number
    and the SHA-256 of the ciphertext bytes: an upload made for one round does not verify in
    another, nor under another participant's key.
    """
    message = b"facepp-upload-v1\0" + round_.to_bytes(8, "big") + hashlib.sha256(data).digest()
    return hmac.new(bytes.fromhex(token_hash), message, hashlib.sha256).hexdigest()


def _loads(text: str | bytes) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ProtocolError("body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ProtocolError("body must be a JSON object")
    if doc.get("version") != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {doc.get('version')!r} (expected {PROTOCOL_VERSION})")
    return doc


@dataclass(frozen=True)
class RoundStatus:
    """What the server says about the federation, as seen by one participant.

    Attributes:
        round: The open round (1-based), or the last round once finished.
        total_rounds: Rounds the federation runs.
        finished: True once the last round has been aggregated.
        deadline: Unix time after which the round closes once it has a quorum.
        quorum: Uploads needed to close a round at its deadline.
        participants: Number of registered participants.
        uploaded: Whether the asking participant has uploaded in this round.
        model_round: Round whose aggregate ``GET /model`` serves (0 = initial model).
        fingerprint: Paillier key fingerprint every upload must carry.
        value_count: Values every upload must hold.
    """

    round: int
    total_rounds: int
    finished: bool
    deadline: float
    quorum: int
    participants: int
    uploaded: bool
    model_round: int
    fingerprint: str
    value_count: int

    def to_json(self) -> str:
        return json.dumps({"version": PROTOCOL_VERSION, **asdict(self)})

    @classmethod
    def from_json(cls, text: str | bytes) -> "RoundStatus":
        doc = _loads(text)
        kinds = {"round": int, "total_rounds": int, "finished": bool, "deadline": float, "quorum": int,
                 "participants": int, "uploaded": bool, "model_round": int, "fingerprint": str, "value_count": int}
        values: dict[str, Any] = {}
        for f in fields(cls):
            value: Any = doc.get(f.name)
            kind = kinds[f.name]
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            if kind is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok:
                raise ProtocolError(f"field {f.name!r} must be {kind.__name__}, got {type(value).__name__}")
            values[f.name] = float(value) if kind is float else value
        return cls(**values)


def parse_metrics(text: str | bytes) -> dict[str, float]:
    """Validate a participant's voluntary metrics report: ``{"version": 1, "metrics": {name: number}}``.

    Raises:
        ProtocolError: Not a flat mapping of at most 16 short names to finite numbers.
    """
    metrics = _loads(text).get("metrics")
    if not isinstance(metrics, dict) or not 0 < len(metrics) <= MAX_METRICS:
        raise ProtocolError(f"'metrics' must be an object with 1 to {MAX_METRICS} entries")
    out = {}
    for name, value in metrics.items():
        if not (isinstance(name, str) and 0 < len(name) <= 64 and name.replace("_", "").isalnum()):
            raise ProtocolError("metric names must be 1-64 characters of letters, digits and '_'")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ProtocolError(f"metric {name!r} must be a finite number")
        out[name] = float(value)
    return out


def metrics_json(metrics: dict[str, float]) -> str:
    return json.dumps({"version": PROTOCOL_VERSION, "metrics": metrics})
