"""Choose the federation's fine-tuning schedule on validation folds of the training identities.

    python -m benchmarks.schedule_search [--quick] [--data DIR] [--folds K] [--participants P]
                                          [--schedules 2x4@3e-4,3x8@3e-4] [--init CHECKPOINT] [--json PATH]

How many rounds, local epochs and which learning rate should P organisations fine-tune
the shipped model with (``make demo``: 3 organisations on ORL)? The test identities
(ORL s31-s40, LFW ``pairsDevTest.txt``) must not answer that. So the training identities
(ORL s1-s30) are cut into K folds in natural order; for every fold and schedule the other
training identities are partitioned across the participants exactly as in the federation,
fine-tuned with the plaintext FedAvg twin (the encrypted federation's arithmetic without
encryption, equal to it up to fixed-point rounding; see :mod:`training.simulation.simulate`),
and scored on all pairs of the fold's identities with the terminal's pipeline. ``as is`` is
the starting model. The schedule with the best mean accuracy over the folds is the choice.

A schedule is ``ROUNDSxEPOCHS@LR``. ``--quick`` scores two folds and one short schedule
(under a minute), to check the machinery rather than to choose.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmarks.report import print_table, write_json
from facepp.data import data_root
from facepp.data.datasets import load_dataset
from facepp.errors import ConfigError
from facepp.evaluation.verify import evaluate_folder
from facepp.model import TrainConfig
from facepp.models import model_or_shipped
from training.participant.local import build_model, initial_weights, load_flat_weights, save_global_model
from training.participant.spec import preprocessing_for, split_for_federation
from training.simulation.simulate import SimulationConfig, federation_spec, ready_spec, run_plaintext_twin


@dataclass(frozen=True)
class Schedule:
    """Federated fine-tuning schedule: rounds of local epochs at a peak learning rate."""

    rounds: int
    local_epochs: int
    lr: float

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """``"2x4@1e-3"`` -> 2 rounds of 4 local epochs at lr 1e-3.

        Raises:
            ConfigError: not of that form, or not positive.
        """
        try:
            counts, lr = text.strip().split("@")
            rounds, epochs = counts.split("x")
            schedule = cls(int(rounds), int(epochs), float(lr))
        except ValueError:
            raise ConfigError(f"schedule {text!r} is not ROUNDSxEPOCHS@LR, e.g. 2x4@1e-3") from None
        if schedule.rounds < 1 or schedule.local_epochs < 1 or not schedule.lr > 0:
            raise ConfigError(f"schedule {text!r} needs rounds, epochs and lr above 0")
        return schedule

    def __str__(self) -> str:
        return f"{self.rounds}x{self.local_epochs}@{self.lr:g}"


def validation_folds(config: SimulationConfig, folds: int) -> list[tuple[str, ...]]:
    """The federation's training identities cut into ``folds`` contiguous folds (natural order).

    Raises:
        ConfigError: fewer than 2 folds, or too few identities for every fold to keep 2
            identities and every participant 2 to train on.
    """
    trained = {n for part in split_for_federation(config.data, federation_spec(config)).partitions for n in part}
    train_ids = [n for n in load_dataset(config.data).identities if n in trained]  # natural order
    if folds < 2 or len(train_ids) < 2 * folds or len(train_ids) - -(-len(train_ids) // folds) < 2 * config.participants:
        raise ConfigError(f"{len(train_ids)} training identities cannot make {folds} folds for {config.participants} participants")
    return [tuple(part) for part in np.array_split(np.array(train_ids), folds)]


def score_fold(config: SimulationConfig, fold: tuple[str, ...], schedule: Schedule | None, *, cache_dir: Path,
               workdir: Path) -> dict[str, Any]:
    """Fine-tune on the other training identities with ``schedule`` (None: the start model as
    is), then score every pair of the fold's identities."""
    if config.init is None:
        raise ConfigError("a schedule search fine-tunes a start model: give init")
    model_path, start = config.init, time.perf_counter()
    if schedule is None:
        split = split_for_federation(config.data, replace(federation_spec(config), held_out=fold))
    else:
        config = replace(config, rounds=schedule.rounds, local_epochs=schedule.local_epochs,
                         train=replace(config.train, lr=schedule.lr), held_out=fold)
        spec, split = ready_spec(config, cache_dir)
        history, _ = run_plaintext_twin(spec, config.data, initial_weights(spec.train, spec.input_size, config.init),
                                        cache_dir, desc=f"{schedule} on {fold[0]}-{fold[-1]}")
        model = build_model(spec.train, spec.input_size)
        load_flat_weights(model, history[-1])
        model_path = workdir / "fold_model.pt"
        save_global_model(model_path, model, config=spec.train, preprocessing=preprocessing_for(split, spec), extra={})
    summary = evaluate_folder(model_path, config.data, cache_dir=cache_dir, identities=split.eval_identities).summary()
    return {"fold": f"{fold[0]}-{fold[-1]}", "identities": len(fold), "pairs": summary["pairs"],
            "accuracy": summary["accuracy"], "auc": summary["auc"], "minutes": round((time.perf_counter() - start) / 60, 2)}


def search(config: SimulationConfig, schedules: list[Schedule], *, folds: int, cache_dir: Path | None = None) -> dict[str, Any]:
    """Score the start model and every schedule on every fold; the report with the choice.

    Raises:
        ConfigError: no schedule, or folds that cannot be made (:func:`validation_folds`).
    """
    if not schedules:
        raise ConfigError("give at least one schedule to compare with the start model")
    fold_ids = validation_folds(config, folds)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="facepp-schedule-") as tmp:
        cache = cache_dir or Path(tmp) / "cache"
        for schedule in tqdm([None, *schedules], desc="schedules", unit="schedule"):
            results = [score_fold(config, fold, schedule, cache_dir=cache, workdir=Path(tmp)) for fold in fold_ids]
            rows.append({"schedule": "as is" if schedule is None else str(schedule),
                         "mean_accuracy": float(np.mean([r["accuracy"] for r in results])),
                         "mean_auc": float(np.mean([r["auc"] for r in results])), "folds": results})
    best = max(rows[1:], key=lambda row: row["mean_accuracy"])
    return {"data": config.data.name, "participants": config.participants, "init": Path(str(config.init)).name,
            "folds": [list(f) for f in fold_ids], "rows": rows, "chosen": best["schedule"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two folds, one short schedule (checks the machinery)")
    parser.add_argument("--data", type=Path, help="dataset folder (default $FACEPP_DATA/orl)")
    parser.add_argument("--folds", type=int, default=4, help="validation folds of the training identities (default 4)")
    parser.add_argument("--participants", type=int, default=3, help="organisations (default 3, as make demo)")
    parser.add_argument("--schedules", default="2x4@3e-4,3x8@3e-4,3x8@5e-4",
                        help="comma-separated ROUNDSxEPOCHS@LR (default 2x4@3e-4,3x8@3e-4,3x8@5e-4)")
    parser.add_argument("--init", type=Path, help="start model (default the shipped model, its SHA-256 checked)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, help="crop cache (default a temporary folder)")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    folds, schedules = (2, "1x1@1e-3") if args.quick else (args.folds, args.schedules)
    config = SimulationConfig(data=args.data or data_root() / "orl", participants=args.participants,
                              init=model_or_shipped(args.init), seed=args.seed,
                              train=TrainConfig(batch_size=32, num_threads=1))  # the demo's, but for the lr
    report = search(config, [Schedule.parse(s) for s in schedules.split(",")], folds=folds, cache_dir=args.cache_dir)
    print_table(f"validation accuracy on {config.data.name}, {config.participants} organisations, from {report['init']}",
                [{"schedule": row["schedule"], **{f["fold"]: f"{f['accuracy']:.2%}" for f in row["folds"]},
                  "mean accuracy": f"{row['mean_accuracy']:.2%}", "mean AUC": f"{row['mean_auc']:.4f}"} for row in report["rows"]])
    print(f"chosen on validation folds: {report['chosen']}")
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
