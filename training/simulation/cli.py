"""``facepp simulate``: registered as a ``facepp`` subcommand through the ``facepp.commands`` entry point.

Only :mod:`argparse` and :mod:`facepp.cli` are imported here, so listing the
``facepp`` subcommands stays fast; the simulation itself is imported when it runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facepp.cli import Command
from facepp.errors import ConfigError
from training.cli import add_dp_arguments, add_init_arguments, dp_config, init_checkpoint


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--participants", type=int, default=3, help="number of participants (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="training rounds (default 5)")
    parser.add_argument("--data", type=Path, help="dataset folder (default $FACEPP_DATA/orl)")
    parser.add_argument("--partition", default="iid", choices=("iid", "skewed"), help="identity partition across participants")
    parser.add_argument("--local-epochs", type=int, default=2, help="local epochs per round (default 2)")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--workdir", type=Path,
                        help="keep the federation, logs and models in this new or empty folder (default: a temp dir)")
    parser.add_argument("--key-bits", type=int, default=2048, choices=(2048, 3072))
    add_init_arguments(parser)
    parser.add_argument("--backbone", help="embedding backbone with --from-scratch (default mobilefacenet; see facepp train --help)")
    parser.add_argument("--input-size", type=int, help="crop side in pixels with --from-scratch (default 64)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, help="AdamW peak learning rate (default 1e-3 fine-tuning, 3e-3 from scratch)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixed-point-twin", action="store_true",
                        help="also run the encrypted protocol's fixed-point aggregation in the clear; it must equal the "
                             "encrypted run bit for bit (reports fixed_point_twin_max_abs_diff and its accuracy)")
    add_dp_arguments(parser)


def run_simulate(args: argparse.Namespace) -> int:
    from facepp.data import data_root
    from facepp.model import TrainConfig
    from training.simulation.simulate import SimulationConfig, SimulationError, simulate

    init = init_checkpoint(args)
    if init is not None and (args.backbone or args.input_size):
        raise ConfigError("--backbone and --input-size come from the --init checkpoint: give them only with --from-scratch")
    lr = args.lr or (3e-3 if init is None else 1e-3)
    config = SimulationConfig(
        data=args.data or data_root("orl"), participants=args.participants, rounds=args.rounds, partition=args.partition,
        local_epochs=args.local_epochs, seed=args.seed, key_bits=args.key_bits, input_size=args.input_size or 64,
        train=TrainConfig(backbone=args.backbone or "mobilefacenet", batch_size=args.batch_size, lr=lr, num_threads=1,
                          seed=args.seed),
        workdir=args.workdir, dp=dp_config(args, min_contributors=args.participants), fixed_point_twin=args.fixed_point_twin,
        init=init,
    )
    report = simulate(config)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)  # noqa: T201 - CLI output
    if report["plaintext_leak_found"]:
        raise SimulationError(f"the privacy audit found plaintext in what the server received or stored: "
                              f"{', '.join(report['leaks'])}")
    return 0


SIMULATE = Command(
    "simulate",
    "run a whole encrypted federation on loopback (server + K participant processes), its plaintext "
    "FedAvg twin with the same seeds, identity-disjoint evaluation and a privacy audit; writes a JSON report",
    add_simulate_arguments,
    run_simulate,
)


def add_partition_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, help="dataset folder (default $FACEPP_DATA/orl)")
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder for the per-organisation folders")
    parser.add_argument("--participants", required=True, help="comma-separated participant names, e.g. org1,org2,org3")
    parser.add_argument("--partition", default="iid", choices=("iid", "skewed"), help="identity partition (default iid)")
    parser.add_argument("--seed", type=int, default=0)


def run_partition(args: argparse.Namespace) -> int:
    from facepp.data import data_root
    from training.simulation.partition import partition_dataset

    names = [n.strip() for n in args.participants.split(",") if n.strip()]
    counts = partition_dataset(args.data or data_root("orl"), args.out, names, partition=args.partition, seed=args.seed)
    for name, images in counts.items():
        print(f"{args.out / name}: {images} images")  # noqa: T201 - CLI output
    return 0


PARTITION = Command(
    "partition",
    "copy each participant's share of one dataset (as facepp simulate splits it) into its own folder, and the "
    "held-out identities into held-out/, for federations whose participants train on their own folder",
    add_partition_arguments,
    run_partition,
)
