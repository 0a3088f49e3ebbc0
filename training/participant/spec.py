"""What every participant of a federation must agree on, and how it picks its data.

Key-holder side. The spec travels in each participant's folder (``training.json``,
written by the key ceremony); the server never sees it.

Data protocol (identity-disjoint): in a folder with LFW's ``pairsDevTest.txt``,
training uses every identity outside those pairs and evaluation uses the pairs;
in any other folder the first 75% of identities in natural order train (ORL:
s1-s30) and all pairs of the rest (s31-s40) evaluate. Training identities are
then partitioned across participants (``iid``, or ``skewed`` = Dirichlet(0.5)).
A spec with ``held_out`` training identities (a validation fold, for choosing a schedule)
evaluates on all pairs of those instead and trains on the other training identities;
the test identities stay untouched. With ``own`` (a real federation) there is nothing
to split: every participant trains on every identity of its own folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from facepp.data.datasets import FaceDataset, load_dataset
from facepp.data.protocol import identities_in_pairs, read_pairs
from facepp.data.splits import partition_identities
from facepp.errors import ConfigError, FaceppError
from facepp.model import AugmentConfig, TrainConfig
from facepp.vision.align import PreprocessConfig, preset_for
from facepp.vision.cache import dataset_crops
from training.fedavg import FederationPlan, packing_plan
from training.participant.privacy import DPConfig

#: How participants pick their identities: ``own`` = all of their own folder; the others split
#: one shared dataset (simulations) with :func:`facepp.data.splits.partition_identities`.
PARTITIONS = {"own": None, "iid": "iid", "skewed": "dirichlet"}
LFW_TEST_PAIRS = "pairsDevTest.txt"


@dataclass(frozen=True)
class TrainingSpec:
    """Shared federation hyper-parameters (JSON in ``training.json``)."""

    total_rounds: int
    participants: tuple[str, ...]
    partition: str = "iid"
    local_epochs: int = 1
    input_size: int = 64
    sample_scale: float = 1000.0
    max_weight: float = 1.0  # largest FedAvg weight samples / sample_scale of one contribution
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    dp: DPConfig | None = None  # optional client-level differential privacy (training.participant.privacy)
    mode: str | None = None  # preprocessing mode (None: the layout's preset); a fine-tune keeps its model's
    init: dict[str, str] | None = None  # the starting checkpoint's name and SHA-256 (None: random weights)
    held_out: tuple[str, ...] = ()  # training identities evaluated instead of trained on (a validation fold)

    def __post_init__(self) -> None:
        if self.partition not in PARTITIONS:
            raise ConfigError(f"unknown partition {self.partition!r}, expected one of {sorted(PARTITIONS)}")
        if self.local_epochs < 1 or self.total_rounds < 1:
            raise ConfigError("local_epochs and total_rounds must be >= 1")
        self.federation_plan(2048)  # sample_scale and max_weight are checked against the plan

    def federation_plan(self, key_bits: int) -> FederationPlan:
        """The plan every participant encodes with and checks each aggregate against."""
        return FederationPlan(packing_plan(key_bits=key_bits, participants=len(self.participants)),
                              participants=len(self.participants), sample_scale=self.sample_scale,
                              max_weight=self.max_weight)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "TrainingSpec":
        """Parse ``training.json``.

        Raises:
            ConfigError: not JSON, or missing, unknown or mistyped keys.
        """
        try:
            doc: dict[str, Any] = json.loads(text)
            train = dict(doc.pop("train"))
            augment: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in train.get("augment", {}).items()}
            train["augment"] = AugmentConfig(**augment)
            dp = DPConfig(**doc.pop("dp")) if doc.get("dp") else None
            return cls(**{**doc, "participants": tuple(doc["participants"]), "held_out": tuple(doc.get("held_out", ())),
                          "train": TrainConfig(**train), "dp": dp})
        except FaceppError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # json.JSONDecodeError is a ValueError
            raise ConfigError(f"not a valid training spec ({type(exc).__name__}: {exc})") from None

    def index_of(self, name: str) -> int:
        if name not in self.participants:
            raise ConfigError(f"{name!r} is not a participant of this federation")
        return self.participants.index(name)


@dataclass(frozen=True)
class DataSplit:
    """Identity-disjoint training partitions and the evaluation protocol of one folder."""

    dataset: FaceDataset
    partitions: list[tuple[str, ...]]
    eval_pairs_file: Path | None
    eval_identities: tuple[str, ...]


def split_for_federation(root: str | Path, spec: TrainingSpec) -> DataSplit:
    """The training partitions and evaluation set of a dataset folder (see module docstring).

    Raises:
        ConfigError: ``held_out`` with an ``own`` partition, naming an identity twice or
            one that is not a training identity of the folder.
    """
    dataset = load_dataset(root)
    if spec.partition == "own":
        if spec.held_out:
            raise ConfigError("held_out identities need a shared dataset to split, not an 'own' partition")
        return DataSplit(dataset, [dataset.identities] * len(spec.participants), None, ())
    pairs_file: Path | None = dataset.root / LFW_TEST_PAIRS
    if pairs_file is not None and pairs_file.is_file():
        held_out = identities_in_pairs(read_pairs(pairs_file, dataset.root, check_exists=False))
        train_ids = [n for n in dataset.identities if n not in held_out]
        eval_ids: tuple[str, ...] = tuple(sorted(held_out))
    else:
        cut = max(1, round(0.75 * len(dataset.identities)))
        train_ids, eval_ids = list(dataset.identities[:cut]), dataset.identities[cut:]
        pairs_file = None
    if spec.held_out:
        fold = set(spec.held_out)
        strangers = sorted(fold - set(train_ids))
        if strangers:
            raise ConfigError(f"held_out names {len(strangers)} identities that are not training identities of "
                              f"{dataset.root} (e.g. {strangers[0]!r}): a validation fold comes from the training side")
        if len(fold) != len(spec.held_out):
            raise ConfigError("held_out names an identity twice")
        train_ids = [n for n in train_ids if n not in fold]
        eval_ids, pairs_file = tuple(spec.held_out), None
    partitions = partition_identities(train_ids, len(spec.participants), scheme=str(PARTITIONS[spec.partition]),
                                      rng=np.random.default_rng(spec.seed), min_identities=2)  # a margin head needs 2
    return DataSplit(dataset, partitions, pairs_file, eval_ids)


def preprocessing_for(split: DataSplit, spec: TrainingSpec) -> PreprocessConfig:
    return preset_for(split.dataset.layout, input_size=spec.input_size, mode=spec.mode)


def fine_tuning(spec: TrainingSpec, init: Path) -> TrainingSpec:
    """The spec adapted to start from a checkpoint: its architecture, embedding size, input
    size and crop mode, frozen BatchNorm statistics (``TrainConfig.freeze_bn``), and a
    record of which file it was (name, SHA-256).

    Raises:
        CheckpointError: unreadable, corrupt or modified checkpoint.
    """
    import hashlib

    from facepp.model.checkpoint import load_checkpoint

    meta = load_checkpoint(init)["metadata"]
    train = replace(spec.train, backbone=str(meta["architecture"]), embedding_dim=int(meta["embedding_dim"]),
                    freeze_bn=True)
    return replace(spec, train=train, input_size=int(meta["input_size"]), mode=str(meta["preprocessing"]["mode"]),
                   init={"name": Path(init).name, "sha256": hashlib.sha256(Path(init).read_bytes()).hexdigest()})


def participant_crops(split: DataSplit, spec: TrainingSpec, index: int, *, cache_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S, 3) uint8 crops and (N,) labels of participant ``index``'s identities."""
    from facepp.vision.align import FacePreprocessor

    subset = split.dataset.subset(list(split.partitions[index]))
    return dataset_crops([(s.path, s.label) for s in subset.samples], FacePreprocessor(preprocessing_for(split, spec)),
                         cache_dir=cache_dir, progress=False)
