"""A participant process with a deterministic toy local step, for protocol tests.

Local "training" moves the weights 10% towards a target fixed by the
participant's name; its sample count also depends on the name. The real face
trainer is exercised by the simulation test; here the protocol is under test.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from facepp.crypto.paillier.secret_cipher import SecretKey
from training.fedavg import FederationPlan, packing_plan
from training.participant.client import LocalUpdate, Participant

SAMPLE_SCALE = 100.0
PARTICIPANTS = 3


def toy_plan(key_bits: int = 2048, participants: int = PARTICIPANTS) -> FederationPlan:
    return FederationPlan(packing_plan(key_bits=key_bits, participants=participants), participants=participants,
                          sample_scale=SAMPLE_SCALE)


def toy_update(weights: np.ndarray, name: str, round_: int) -> LocalUpdate:
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    target = np.random.default_rng(seed).normal(0, 1, weights.size)
    new = (weights + 0.1 * (target - weights)).astype(np.float32)
    return LocalUpdate(weights=new, samples=10 + seed % 50, metrics={"loss": float(np.mean((new - target) ** 2)), "round": round_})


class ToyTrainer:
    def __init__(self, name: str, delay_s: float) -> None:
        self.name, self.delay_s = name, delay_s

    def train(self, weights: np.ndarray, round_: int) -> LocalUpdate:
        time.sleep(self.delay_s)
        return toy_update(weights, self.name, round_)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--ca-file")
    parser.add_argument("--client-cert", nargs=2, metavar=("PEM", "KEY"))
    parser.add_argument("--participants", type=int, default=PARTICIPANTS, help="K of the federation's plan")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    participant = Participant(
        server_url=args.server,
        token=(args.dir / "token").read_text().strip(),
        secret_key=SecretKey.load(args.dir / "secret_key.json"),
        plan=toy_plan(participants=args.participants),
        poll_s=0.1,
        workers=1,
        ca_file=args.ca_file,
        client_cert=tuple(args.client_cert) if args.client_cert else None,
    )
    np.save(args.out, participant.run(ToyTrainer(args.name, args.delay)))


if __name__ == "__main__":
    main()
