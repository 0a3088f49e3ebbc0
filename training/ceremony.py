"""Key ceremony: create a federation's keys, tokens, configuration and initial model.

Run by one trusted participant. Writes::

    DIR/server/public_key.json        Paillier public key (the server's only key)
    DIR/server/federation.json        participants (token hashes), rounds, quorum, deadline
    DIR/server/state/models/model-00000.bin   E([W_0, 1]): the encrypted initial model
    DIR/participants/NAME/secret_key.json     shared Paillier secret key (mode 0600)
    DIR/participants/NAME/token               this participant's bearer token (mode 0600)
    DIR/operator/token                        the operator's token: reads the status pages only (mode 0600)

Hand each participant its folder out of band, the operator ``operator/``; give the
server only ``server/`` (it holds SHA-256 hashes of the tokens, never a token).

Who keeps what, with the TLS files of ``facepp-federation pki`` (run by the
federation operator, who keeps the CA key ``ca.key`` offline):

* the parameter server: ``server/`` and its own server certificate and key, plus
  ``ca.pem`` to verify participants (mutual TLS); never a secret key;
* each participant: its folder (the shared Paillier secret key and its token),
  its client certificate and key (CN = its name), and ``ca.pem`` to verify the server;
* the terminal (matching side): the CKKS secret key in its instance folder and the
  matcher's CA (``matcher_ca``); the matcher only its own server key.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facepp.crypto.paillier.secret_cipher import SecretKey, VectorCipher, generate_keypair
from facepp.errors import ConfigError
from facepp.io import atomic_write_bytes
from training.fedavg import packing_plan, weighted_contribution
from training.protocol import hash_token
from training.server.coordinator import FederationConfig
from training.server.store import Store


@dataclass(frozen=True)
class Federation:
    """Paths written by :func:`create_federation`."""

    root: Path

    @property
    def server_config(self) -> Path:
        return self.root / "server" / "federation.json"

    @property
    def server_state(self) -> Path:
        return self.root / "server" / "state"

    def participant_dir(self, name: str) -> Path:
        return self.root / "participants" / name

    @property
    def operator_token(self) -> Path:
        return self.root / "operator" / "token"


def create_federation(
    root: str | Path,
    *,
    participants: Sequence[str],
    initial_weights: np.ndarray,
    total_rounds: int,
    quorum: int | None = None,
    round_timeout_s: float = 600.0,
    key_bits: int = 2048,
    secret_key: SecretKey | None = None,
    spec_json: str | None = None,
) -> Federation:
    """Generate the key pair and tokens, encrypt the initial model, write every file.

    Args:
        root: Empty or new directory.
        participants: Participant names (letters, digits, '-', '_').
        initial_weights: (P,) float32 flat initial model (all participants start from it).
        total_rounds: Rounds to run.
        quorum: Uploads that close a round at its deadline (default: a majority).
        round_timeout_s: Seconds before a round may close with only a quorum.
        key_bits: Paillier modulus size (2048 or 3072).
        secret_key: Reuse an existing key pair instead of generating one.
        spec_json: The shared training spec (``training.json``) given to every participant.

    Raises:
        ConfigError: ``root`` already holds a federation.
    """
    fed = Federation(Path(root))
    if fed.server_config.exists():
        raise ConfigError(f"{fed.server_config} exists: refusing to overwrite a federation")
    secret = secret_key or generate_keypair(key_bits)
    tokens = {name: secrets.token_urlsafe(32) for name in participants}
    operator_token = secrets.token_urlsafe(32)
    config = FederationConfig(
        public_key=fed.root / "server" / "public_key.json",
        participants={name: hash_token(t) for name, t in tokens.items()},
        total_rounds=total_rounds,
        quorum=quorum or len(participants) // 2 + 1,
        round_timeout_s=round_timeout_s,
        operator=hash_token(operator_token),
    )
    secret.public_key.save(config.public_key)
    doc = {
        "public_key": config.public_key.name,
        "participants": config.participants,
        "total_rounds": config.total_rounds,
        "quorum": config.quorum,
        "round_timeout_s": config.round_timeout_s,
        "operator": config.operator,
    }
    atomic_write_bytes(fed.server_config, json.dumps(doc, indent=2).encode())
    plan = packing_plan(key_bits=secret.public_key.key_bits, participants=len(participants))
    with VectorCipher(secret, plan) as cipher:
        initial = cipher.encrypt(weighted_contribution(initial_weights, 1, sample_scale=1.0))
    store = Store(fed.server_state)
    store.write_model(0, initial.to_bytes())
    store.close()
    atomic_write_bytes(fed.operator_token, operator_token.encode(), mode=0o600)
    for name, token in tokens.items():
        secret.save(fed.participant_dir(name) / "secret_key.json")
        atomic_write_bytes(fed.participant_dir(name) / "token", token.encode(), mode=0o600)
        if spec_json is not None:
            atomic_write_bytes(fed.participant_dir(name) / "training.json", spec_json.encode())
    return fed
