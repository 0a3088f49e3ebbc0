"""Encrypted vs plaintext federated round: time and bytes for the real model, 3 participants.

    python -m benchmarks.round_bench [--quick] [--data DIR] [--local-epochs E] [--json PATH]

Runs ``facepp simulate`` (server + participant processes on loopback) with the
full MobileFaceNet and reports the round-time ratio against plaintext FedAvg
run in the same invocation with the same seeds. Target: encrypted round time
<= 1.5x plaintext at 3 participants. The ratio falls as local work per round
grows (more local epochs, larger partitions): crypto cost is fixed per round.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from benchmarks.report import print_table, write_json
from facepp.model import TrainConfig
from training.simulate import SimulationConfig, simulate

KEYS = ("rounds", "local_epochs", "model_parameters", "encrypted_round_s", "plaintext_round_s", "round_time_ratio",
        "upload_bytes_per_round", "plaintext_bytes_per_round", "encrypted_accuracy", "plaintext_accuracy",
        "max_abs_weight_diff", "plaintext_leak_found")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 local epoch on ORL")
    parser.add_argument("--data", type=Path, help="dataset folder (default $FACEPP_DATA/orl)")
    parser.add_argument("--rounds", type=int, help="rounds (default 2 quick, 4 full)")
    parser.add_argument("--local-epochs", type=int, nargs="+", help="local epochs per round to compare (default 1 quick, 1 3 full)")
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON here")
    args = parser.parse_args(argv)
    data = args.data or Path(os.environ.get("FACEPP_DATA", "../shared/data")) / "orl"
    rounds = args.rounds or (2 if args.quick else 4)
    rows = []
    for epochs in args.local_epochs or ([1] if args.quick else [1, 3]):
        config = SimulationConfig(data=data, participants=3, rounds=rounds, local_epochs=epochs,
                                  train=TrainConfig(batch_size=32, lr=3e-3, num_threads=1))
        report = simulate(config)
        rows.append({"local_epochs": epochs, **{k: report[k] for k in KEYS if k != "local_epochs"}})
    print_table(f"Encrypted vs plaintext FedAvg round, 3 participants, {data.name}", rows)
    write_json(args.json, {**rows[0], "runs": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
