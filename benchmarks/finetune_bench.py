"""Encrypted federated fine-tuning against centralized and single-organisation fine-tuning.

    python -m benchmarks.finetune_bench [--quick] [--data DIR] [--participants K] [--rounds R]
                                         [--local-epochs E] [--lr LR] [--json PATH]

K organisations (default 5) hold identity-disjoint partitions of unequal sizes
(Dirichlet(0.5) over identities) of a dataset's training identities: on LFW every
identity outside ``pairsDevTest.txt``. All arms start from the shipped model and run
the participants' own local trainer with the same seeds and the same schedule
(R rounds of E local epochs):

* ``federated``: ``facepp simulate``, the encrypted federation (parameter server and
  K participant processes on loopback, Paillier FedAvg), with its plaintext FedAvg twin;
* ``centralized``: one trainer on the union of the partitions;
* ``alone orgN``: each organisation on its own partition only.

Each model is scored on the held-out pairs (LFW: ``pairsDevTest.txt``) with the
terminal's pipeline, next to the shipped model as it is. Target: federated at least as
good as the best single organisation and within 0.5 points of centralized.
``--quick`` runs 3 organisations for 1 round on ORL (s1-s30 train, s31-s40 pairs).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.report import print_table, write_json
from facepp.data import data_root
from facepp.evaluation.verify import evaluate_folder
from facepp.model import TrainConfig
from facepp.models import SHIPPED_PATH
from training.participant.local import build_model, initial_weights, load_flat_weights, local_trainer, save_global_model
from training.participant.spec import DataSplit, TrainingSpec, participant_crops, preprocessing_for, split_for_federation
from training.simulation.simulate import SimulationConfig, federation_spec, simulate


def train_arm(spec: TrainingSpec, split: DataSplit, orgs: list[int], path: Path, cache_dir: Path) -> dict[str, Any]:
    """Fine-tune on the union of ``orgs``' partitions with the participants' trainer; write the model."""
    union = replace(split, partitions=[tuple(i for k in orgs for i in split.partitions[k])])
    crops, labels = participant_crops(union, spec, 0, cache_dir=cache_dir)
    trainer = local_trainer(spec, crops, labels, orgs[0] if len(orgs) == 1 else 0)
    weights = initial_weights(spec.train, spec.input_size, SHIPPED_PATH)
    start = time.perf_counter()
    for round_ in range(1, spec.total_rounds + 1):
        weights = trainer.train(weights, round_).weights
    model = build_model(spec.train, spec.input_size)
    load_flat_weights(model, weights)
    save_global_model(path, model, config=spec.train, preprocessing=preprocessing_for(split, spec), extra={})
    return {"identities": len(union.partitions[0]), "images": len(labels), "train_s": time.perf_counter() - start}


def score(model: Path, data: Path, split: DataSplit, cache_dir: Path) -> dict[str, Any]:
    pairs: dict[str, Any] = ({"pairs_file": split.eval_pairs_file} if split.eval_pairs_file
                             else {"identities": split.eval_identities})
    r = evaluate_folder(model, data, cache_dir=cache_dir, **pairs).summary()
    return {k: r[k] for k in ("accuracy", "accuracy_std", "auc", "tar_at_far_1e-2", "tar_at_far_1e-3", "pairs")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 organisations, 1 round, on ORL")
    parser.add_argument("--data", type=Path, help="dataset folder (default $FACEPP_DATA/lfw; --quick: orl)")
    parser.add_argument("--participants", type=int, help="organisations (default 5; --quick 3)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; --quick 1)")
    parser.add_argument("--local-epochs", type=int, default=1, help="local epochs per round (default 1)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="new or empty folder for the federation and the models")
    parser.add_argument("--cache-dir", type=Path, help="crop cache shared by the arms (default: in the workdir)")
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON here")
    args = parser.parse_args(argv)
    data = args.data or data_root("orl" if args.quick else "lfw")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="facepp-finetune-bench-"))
    cache_dir = args.cache_dir or workdir / "cache"
    config = SimulationConfig(
        data=data, participants=args.participants or (3 if args.quick else 5), rounds=args.rounds or (1 if args.quick else 3),
        partition="skewed", local_epochs=args.local_epochs, seed=args.seed, init=SHIPPED_PATH,
        train=TrainConfig(batch_size=32, lr=args.lr, num_threads=1, seed=args.seed),
        workdir=workdir / "federation", cache_dir=cache_dir)
    spec = federation_spec(config)
    split = split_for_federation(data, spec)
    models = workdir / "models"
    models.mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, Any]] = [{"arm": "shipped (no fine-tuning)", "identities": 0, "images": 0, "train_s": 0.0,
                                   **score(SHIPPED_PATH, data, split, cache_dir)}]
    report = simulate(config)
    federated, twin = Path(report["encrypted_model"]), Path(report["plaintext_model"])
    train_ids = sum(len(p) for p in split.partitions)
    rows.append({"arm": "federated (encrypted)", "identities": train_ids, "images": None,
                 "train_s": report["encrypted_round_s"] * config.rounds, **score(federated, data, split, cache_dir)})
    rows.append({"arm": "federated (plaintext twin)", "identities": train_ids, "images": None,
                 "train_s": report["plaintext_round_s"] * config.rounds, **score(twin, data, split, cache_dir)})
    central = train_arm(spec, split, list(range(len(spec.participants))), models / "centralized.pt", cache_dir)
    rows.append({"arm": "centralized", **central, **score(models / "centralized.pt", data, split, cache_dir)})
    for k, name in enumerate(spec.participants):
        alone = train_arm(spec, split, [k], models / f"alone-{name}.pt", cache_dir)
        rows.append({"arm": f"alone {name}", **alone, **score(models / f"alone-{name}.pt", data, split, cache_dir)})
    for row in rows[1:3]:
        row["images"] = central["images"]

    best_alone = max(r["accuracy"] for r in rows if r["arm"].startswith("alone"))
    fed_acc = rows[1]["accuracy"]
    summary = {
        "federated_accuracy": fed_acc,
        "centralized_accuracy": rows[3]["accuracy"],
        "best_alone_accuracy": best_alone,
        "shipped_accuracy": rows[0]["accuracy"],
        "federated_minus_centralized_points": 100 * (fed_acc - rows[3]["accuracy"]),
        "federated_minus_best_alone_points": 100 * (fed_acc - best_alone),
        "target_met": bool(fed_acc >= best_alone and fed_acc >= rows[3]["accuracy"] - 0.005),
    }
    print_table(f"Fine-tuning the shipped model: {config.participants} organisations, {config.rounds} rounds x "
                f"{config.local_epochs} local epochs, {data.name}, pairs held out", rows)
    print_table("Federated against centralized and the best single organisation", [summary])
    write_json(args.json, {**summary, "rounds": config.rounds, "local_epochs": config.local_epochs, "lr": args.lr,
                           "participants": config.participants, "data": str(data), "arms": rows,
                           "encrypted_round_s": report["encrypted_round_s"],
                           "upload_bytes_per_round": report["upload_bytes_per_round"],
                           "plaintext_leak_found": report["plaintext_leak_found"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
