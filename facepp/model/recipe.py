"""Train on a dataset folder: choose identities, preprocess (cached), fit.

The glue shared by ``facepp train`` and the benchmarks; identity selection keeps
training identities disjoint from evaluation pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facepp.data.datasets import FaceDataset, load_dataset, natural_key
from facepp.data.protocol import identities_in_pairs, read_pairs, read_people
from facepp.data.splits import split_identities
from facepp.errors import DatasetError
from facepp.model.train import Callback, TrainConfig, TrainResult, fit
from facepp.vision.align import FacePreprocessor, PreprocessConfig, preset_for
from facepp.vision.cache import preprocess_paths

if TYPE_CHECKING:
    from facepp.model.teacher import DlibTeacher

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdentitySelection:
    """Which identities of a folder to train on.

    Attributes:
        include: Only these names (None: every identity), e.g. from ``peopleDevTrain.txt``.
        exclude_pairs: Pairs files whose identities are left out (the evaluation pairs).
        exclude: Further names to leave out.
        min_images: Keep identities with at least this many images.
        validation_fraction: Hold out this fraction of the selected identities (seeded) for
            choosing hyper-parameters; their names are stored in the checkpoint as
            ``validation_identities`` (``facepp evaluate --validation`` scores them).
        validation_seed: Seed of the held-out draw.
    """

    include: tuple[str, ...] | None = None
    exclude_pairs: tuple[Path, ...] = ()
    exclude: tuple[str, ...] = ()
    min_images: int = 1
    validation_fraction: float = 0.0
    validation_seed: int = 0


def select_training_set(root: str | Path, selection: IdentitySelection) -> FaceDataset:
    """The training subset of a dataset folder.

    Raises:
        DatasetError: no identity left, or a bad protocol file.
    """
    dataset = load_dataset(root)
    excluded = set(selection.exclude)
    for pairs_file in selection.exclude_pairs:
        excluded |= identities_in_pairs(read_pairs(pairs_file, dataset.root, check_exists=False))
    names = selection.include if selection.include is not None else dataset.identities
    unknown = [n for n in names if n not in set(dataset.identities)]
    if unknown:
        raise DatasetError(f"{len(unknown)} requested identities are not in {dataset.root} (e.g. {unknown[0]!r})")
    kept = sorted((n for n in names if n not in excluded), key=natural_key)
    subset = dataset.subset(kept, min_images=selection.min_images)
    if len(subset.identities) < 2:
        raise DatasetError("fewer than two training identities remain after exclusions")
    logger.info("training on %d identities, %d images (%d excluded)", len(subset.identities), len(subset), len(excluded))
    return subset


def people_file_names(path: str | Path) -> tuple[str, ...]:
    """Identity names listed in an LFW ``people*.txt`` file."""
    return tuple(name for name, _ in read_people(path))


def train_on_folder(
    root: str | Path,
    *,
    selection: IdentitySelection,
    config: TrainConfig,
    checkpoint_path: str | Path,
    preprocessing: PreprocessConfig | None = None,
    input_size: int = 64,
    cache_dir: Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    init_checkpoint: str | Path | None = None,
    teacher: DlibTeacher | None = None,
) -> TrainResult:
    """Select identities, preprocess (with cache), then :func:`facepp.model.train.fit`.

    Args:
        root: Dataset folder.
        selection: Identity selection.
        config: Hyper-parameters.
        checkpoint_path: Output (and resume) checkpoint.
        preprocessing: Crop description (None: the preset of the folder's layout).
        input_size: Input size when using a preset.
        cache_dir: Crop cache folder (None: no cache).
        resume: Continue an interrupted run.
        callbacks: Per-epoch callbacks.
        progress: tqdm bars.
        init_checkpoint: Fine-tune from this checkpoint's backbone.
        teacher: Distil this teacher's embeddings into the student (``config.distill_weight``);
            its embeddings are cached in ``cache_dir`` by image digest and view. Images the
            teacher finds no face in are left out.
    """
    subset = select_training_set(root, selection)
    extra: dict[str, Any] = {}
    if selection.validation_fraction > 0:
        split = split_identities(subset.identities, test_fraction=selection.validation_fraction, seed=selection.validation_seed)
        subset = subset.subset(list(split.train))
        extra["validation_identities"] = list(split.test)
        extra["validation_fraction"] = selection.validation_fraction
        logger.info("holding out %d validation identities, training on %d", len(split.test), len(split.train))
    preprocessing = preprocessing or preset_for(subset.layout, input_size=input_size)
    paths = [s.path for s in subset.samples]
    crops, ok = preprocess_paths(paths, FacePreprocessor(preprocessing), cache_dir=cache_dir, progress=progress)
    labels = np.array([s.label for s in subset.samples], dtype=np.int64)
    targets = None
    if teacher is not None:
        from facepp.model.distill import teacher_targets

        targets, teacher_ok, extra["distillation"] = teacher_targets(paths, teacher, cache_dir=cache_dir, progress=progress)
        ok &= teacher_ok
        targets = targets[ok]
        extra["distillation"]["weight"] = config.distill_weight
    if not ok.any():
        raise DatasetError(f"no usable image in {root}: no face found" + (" by the teacher" if teacher is not None else ""))
    crops, labels = crops[ok], labels[ok]
    metadata = {
        "dataset": {
            "root_name": Path(root).name,
            "layout": subset.layout,
            "identities": len(subset.identities),
            "images": int(len(labels)),
        },
        **extra,
    }
    return fit(
        crops, labels, config=config, preprocessing=preprocessing, checkpoint_path=checkpoint_path,
        resume=resume, callbacks=callbacks, metadata=metadata, progress=progress, init_checkpoint=init_checkpoint,
        targets=targets,
    )
