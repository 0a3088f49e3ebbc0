"""Face-pipeline subcommands of ``facepp``: ``train``, ``evaluate``, ``embed``, ``reduce``, ``cohort``.

Thin adapters over :mod:`facepp.model`, :mod:`facepp.evaluation` and :mod:`facepp.vision`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from facepp.cli import Command
from facepp.errors import ConfigError, FaceppError

#: ``facepp.vision.align.MODES``, repeated so that ``--help`` does not import OpenCV and torch.
MODE_CHOICES = ("landmarks", "detect", "center")
#: ``facepp.model.cohort.DEFAULT_TOP_K``, repeated for the same reason.
COHORT_TOP_K = 50

logger = logging.getLogger(__name__)


def _default_cache_dir() -> Path:
    return Path(os.environ.get("FACEPP_CACHE", "out/cache"))


# ---------------------------------------------------------------- train
def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="dataset folder (LFW or ORL layout, detected)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (atomically, after every epoch)")
    p.add_argument("--exclude-pairs", type=Path, action="append", default=[],
                   help="leave out every identity in this pairs file (repeatable): keeps evaluation identity-disjoint")
    p.add_argument("--people", type=Path, help="train only on the identities of this people*.txt file")
    p.add_argument("--identities", nargs="+", help="train only on these identity folder names")
    p.add_argument("--min-images", type=int, default=1, help="skip identities with fewer images (default 1)")
    p.add_argument("--backbone", default="resface",
                   help="network: resface (1.6M, fastest to train on CPU, default), mobilefacenet (1.0M), mobilefacenet-tiny")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--max-minutes", type=float, help="time budget; the LR schedule ends within it")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW peak learning rate")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--augment", choices=["default", "strong", "none"], default="default",
                   help="augmentation preset (strong: wider geometry, more colour jitter and erasing; "
                        "on LFW it did not beat default, see docs/face_pipeline.md)")
    p.add_argument("--ema", type=float, default=0.0,
                   help="publish an exponential moving average of the weights with this decay per step, "
                        "e.g. 0.998 (0: off)")
    p.add_argument("--head", default="cosface", help="margin head: cosface or arcface")
    p.add_argument("--scale", type=float, help="margin head scale s (default: the head's)")
    p.add_argument("--margin", type=float, help="margin m (default: the head's)")
    p.add_argument("--embedding-dim", type=int, default=128)
    p.add_argument("--input-size", type=int, default=64, help="crop side in pixels (multiple of 16)")
    p.add_argument("--mode", choices=MODE_CHOICES, help="preprocessing (default: preset of the layout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--cache-dir", type=Path, default=None, help="crop cache folder (default $FACEPP_CACHE or out/cache)")
    p.add_argument("--resume", action="store_true", help="continue from --out when it exists")
    p.add_argument("--init", type=Path, help="fine-tune: start from this checkpoint's backbone weights")
    p.add_argument("--teacher", choices=["dlib"],
                   help="distil this teacher's embeddings into the student (dlib: the public-domain 128-d face "
                        "ResNet shipped in face_recognition_models); needs --embedding-dim 128")
    p.add_argument("--distill-weight", type=float, default=50.0,
                   help="weight of the 1 - cos(student, centred teacher) loss with --teacher (default 50)")
    p.add_argument("--validation-fraction", type=float, default=0.0,
                   help="hold out this fraction of the training identities (seeded by --seed) for choosing "
                        "hyper-parameters; score them with `facepp evaluate --validation`")


def _run_train(args: argparse.Namespace) -> int:
    from facepp.data.datasets import detect_layout
    from facepp.model.recipe import IdentitySelection, people_file_names, train_on_folder
    from facepp.model.augment import AUGMENT_PRESETS
    from facepp.model.train import TrainConfig
    from facepp.vision.align import preset_for

    include: tuple[str, ...] | None = None
    if args.people and args.identities:
        raise ConfigError("give --people or --identities, not both")
    if args.people:
        include = people_file_names(args.people)
    elif args.identities:
        include = tuple(args.identities)
    selection = IdentitySelection(
        include=include, exclude_pairs=tuple(args.exclude_pairs), min_images=args.min_images,
        validation_fraction=args.validation_fraction, validation_seed=args.seed,
    )
    teacher = None
    if args.teacher:
        from facepp.model.teacher import EMBEDDING_DIM, DlibTeacher

        if args.embedding_dim != EMBEDDING_DIM:
            raise ConfigError(f"--teacher dlib distils {EMBEDDING_DIM}-d embeddings: use --embedding-dim {EMBEDDING_DIM}")
        teacher = DlibTeacher(pick="largest" if detect_layout(args.data) == "generic" else "central")
    config = TrainConfig(
        backbone=args.backbone, embedding_dim=args.embedding_dim, head=args.head, scale=args.scale, margin=args.margin, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, dropout=args.dropout,
        max_minutes=args.max_minutes, seed=args.seed, num_threads=args.threads,
        augment=AUGMENT_PRESETS[args.augment], ema=args.ema, distill_weight=args.distill_weight if teacher else 0.0,
    )
    preprocessing = preset_for(detect_layout(args.data), input_size=args.input_size, mode=args.mode)
    result = train_on_folder(
        args.data, selection=selection, config=config, checkpoint_path=args.out, preprocessing=preprocessing,
        cache_dir=args.cache_dir or _default_cache_dir(), resume=args.resume, init_checkpoint=args.init, teacher=teacher,
    )
    last = result.history[-1] if result.history else None
    logger.info(
        "done: %d epochs, %.1f min, final loss %s, checkpoint %s", result.epochs_done, result.minutes,
        f"{last.loss:.4f}" if last else "n/a", result.checkpoint,
    )
    return 0


# ---------------------------------------------------------------- evaluate
def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="checkpoint (default: the shipped model, see facepp/models/MODEL_CARD.md)")
    p.add_argument("--data", required=True, type=Path, help="dataset folder")
    p.add_argument("--pairs", type=Path, help="LFW pairs file; without it: all genuine pairs + as many seeded impostors")
    p.add_argument("--identities", nargs="+", help="restrict the folder to these identities (no --pairs)")
    p.add_argument("--validation", action="store_true",
                   help="score the identities the model held out for validation (facepp train --validation-fraction)")
    p.add_argument("--max-genuine", type=int, help="subsample genuine pairs (no --pairs)")
    p.add_argument("--mode", choices=MODE_CHOICES, help="preprocessing (default: preset of the layout)")
    p.add_argument("--no-flip", action="store_true", help="disable mirror test-time augmentation")
    p.add_argument("--tta-scales", type=float, nargs="+", metavar="S",
                   help="test-time crop scales whose embeddings are summed, e.g. 1 for the training crop alone "
                        "(default: the checkpoint's; with --calibrate-far they are stored with the thresholds)")
    p.add_argument("--seed", type=int, default=0, help="seed for built pairs")
    p.add_argument("--cross-impostors", action="store_true",
                   help="also report TAR at FAR 1e-3 and 1e-4 against every pair of images of different people "
                        "among the scored images (BLUFR-style; resolves low FARs that few impostor pairs cannot)")
    p.add_argument("--no-score-norm", action="store_true",
                   help="score raw cosines even when the model carries a cohort (default: S-normalised scores)")
    p.add_argument("--json", type=Path, help="write the metrics here")
    p.add_argument("--roc", type=Path, help="write the ROC plot (PNG) here")
    p.add_argument("--calibrate-far", type=float,
                   help="store the threshold at this false-accept rate (and the others) into the checkpoint; "
                        "with --cross-impostors, measured on the cross-identity pairs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache-dir", type=Path, default=None)


def _run_evaluate(args: argparse.Namespace) -> int:
    from facepp.evaluation.verify import evaluate_folder, store_calibration, write_report
    from facepp.model.checkpoint import load_checkpoint
    from facepp.models import is_shipped, model_or_shipped

    args.model = model_or_shipped(args.model)
    if args.calibrate_far is not None and is_shipped(args.model):
        raise ConfigError("--calibrate-far writes into the model: copy the shipped model and give --model COPY")

    identities = args.identities
    if args.validation:
        if args.pairs or args.identities:
            raise ConfigError("--validation chooses the identities: give neither --pairs nor --identities")
        identities = load_checkpoint(args.model)["metadata"].get("validation_identities")
        if not identities:
            raise ConfigError(f"{args.model} held out no validation identities (train with --validation-fraction)")
    report = evaluate_folder(
        args.model, args.data, pairs_file=args.pairs, identities=identities, max_genuine=args.max_genuine,
        mode=args.mode, flip_tta=not args.no_flip, tta_scales=args.tta_scales, seed=args.seed, num_threads=args.threads,
        cache_dir=args.cache_dir or _default_cache_dir(), cross_impostors=args.cross_impostors,
        score_norm=not args.no_score_norm,
    )
    write_report(report, json_path=args.json, roc_path=args.roc)
    summary = report.summary()
    logger.info(
        "accuracy %.4f +- %.4f, AUC %.4f, EER %.4f, TAR@1e-2 %.4f, TAR@1e-3 %.4f on %d pairs; scores: %s",
        summary["accuracy"], summary["accuracy_std"], summary["auc"], summary["eer"],
        summary["tar_at_far_1e-2"], summary["tar_at_far_1e-3"], summary["pairs"], summary["scoring"],
    )
    if args.cross_impostors:
        logger.info("against %d cross-identity impostor pairs: TAR@1e-3 %.4f, TAR@1e-4 %.4f",
                    summary["cross_impostor_pairs"], summary["cross_tar_at_far_1e-3"], summary["cross_tar_at_far_1e-4"])
    if args.calibrate_far is not None:
        store_calibration(args.model, report, far=args.calibrate_far)
    if not args.json:
        print(json.dumps(summary, indent=2))  # noqa: T201 - CLI output
    return 0


# ---------------------------------------------------------------- embed
#: What ``facepp embed`` does with an image in which no face is found.
ON_NO_FACE = ("fail", "skip", "center")
#: How ``facepp embed``'s output compares two faces against its ``threshold``.
SCORING_HELP = {
    "cosine": "the cosine s of two embeddings; same person when s >= threshold",
    "s-norm": "adaptive S-norm: with s the cosine of two embeddings and [mean, sigma] each one's cohort_stats, "
              "z = ((s - mean_a) / sigma_a + (s - mean_b) / sigma_b) / 2; same person when z >= threshold",
}


def _embed_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="checkpoint (default: the shipped model, see facepp/models/MODEL_CARD.md)")
    p.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, PGM, GIF, BMP, ...)")
    p.add_argument("--out", type=Path,
                   help="output .npy ((N, dim) float32, one row per embedded file, with the per-file records "
                        "in OUT.json) or .json; default: JSON on stdout")
    p.add_argument("--mode", choices=MODE_CHOICES,
                   help="how to find and align the face (default: the checkpoint's inference mode, "
                        "landmarks or detect); center for pre-aligned crops")
    p.add_argument("--on-no-face", choices=ON_NO_FACE, default="fail",
                   help="an image without a detectable face: fail (stop, naming the file; default), "
                        "skip (leave it out) or center (embed the fixed centre crop); "
                        "the JSON records the outcome of every file")
    p.add_argument("--no-flip", action="store_true", help="disable mirror test-time augmentation")
    p.add_argument("--threads", type=int, default=2)


def _embed_preprocessing(meta: dict[str, Any], *, mode: str | None, on_no_face: str) -> dict[str, Any]:
    """The preprocessing ``facepp embed`` uses: the checkpoint's, with ``--mode`` and ``--on-no-face`` applied."""
    base = meta.get("inference_preprocessing") or meta["preprocessing"]
    if mode == "center":  # the training crop, at the inference scales
        base = {**meta["preprocessing"], "mode": "center", "tta_scales": base.get("tta_scales", [1.0])}
    return {**base, "mode": mode or base["mode"], "fallback_center": on_no_face == "center"}


def _naming(path: Path, exc: FaceppError, *, hint: str = "") -> FaceppError:
    """The same error with its message led by the file's path: batch commands name the file at fault."""
    return type(exc)(f"{path}: {str(exc).removeprefix(f'{path.name}: ')}{hint}")


def _run_embed(args: argparse.Namespace) -> int:
    from facepp.data.images import read_image
    from facepp.errors import NoFaceError
    from facepp.model.checkpoint import load_checkpoint
    from facepp.model.embedder import Embedder
    from facepp.models import model_or_shipped
    from facepp.vision.align import PreprocessConfig

    args.model = model_or_shipped(args.model)
    meta = load_checkpoint(args.model)["metadata"]
    preprocessing = PreprocessConfig.from_dict(_embed_preprocessing(meta, mode=args.mode, on_no_face=args.on_no_face))
    embedder = Embedder.from_checkpoint(args.model, preprocessing=preprocessing, flip_tta=not args.no_flip,
                                        num_threads=args.threads)
    records: list[dict[str, Any]] = []
    crops: list[np.ndarray] = []
    for path in args.images:
        record: dict[str, Any] = {"file": str(path)}
        records.append(record)
        try:
            aligned = embedder.align(read_image(path))
        except NoFaceError as exc:
            if args.on_no_face == "fail":
                raise _naming(path, exc, hint=" (--on-no-face skip or center goes on)") from None
            record.update(outcome="skipped", reason=str(exc), faces_found=0, row=None)
            logger.warning("%s: %s: skipped", path, exc)
            continue
        except FaceppError as exc:  # unreadable, truncated, not an image
            raise _naming(path, exc) from None
        fell_back = preprocessing.mode != "center" and aligned.faces_found == 0
        if fell_back:
            logger.warning("%s: no face detected: embedded the centre crop", path)
        record.update(outcome="center" if fell_back else "embedded", faces_found=aligned.faces_found,
                      eyes_aligned=aligned.eyes_aligned, row=len(crops))
        crops.append(aligned.views)
    vectors = (embedder.embed_crops(np.stack(crops)) if crops
               else np.zeros((0, embedder.embedding_dim), dtype=np.float32))
    outcomes = {k: sum(r["outcome"] == k for r in records) for k in ("embedded", "center", "skipped")}
    summary = {"model": str(args.model), "dim": int(vectors.shape[1]), "on_no_face": args.on_no_face, "outcomes": outcomes,
               "threshold": embedder.threshold, "scoring": SCORING_HELP["cosine" if embedder.cohort is None else "s-norm"]}
    if embedder.cohort is not None:
        for record, (mean, sigma) in zip((r for r in records if r["row"] is not None), embedder.cohort.stats(vectors)):
            record["cohort_stats"] = [round(float(mean), 7), round(float(sigma), 7)]
    if args.out and args.out.suffix == ".npy":
        np.save(args.out, vectors)
        sidecar = args.out.with_name(args.out.name + ".json")
        sidecar.write_text(json.dumps({**summary, "files": records}, indent=2) + "\n")
        logger.info("wrote %s %s to %s, per-file records to %s", vectors.shape, vectors.dtype, args.out, sidecar)
        return 0
    for record in records:
        if record["row"] is not None:
            record["embedding"] = [round(float(v), 7) for v in vectors[record["row"]]]
    text = json.dumps({**summary, "embeddings": records})
    if args.out:
        args.out.write_text(text)
        logger.info("wrote %d embeddings (%s) to %s", len(vectors), outcomes, args.out)
    else:
        print(text)  # noqa: T201 - CLI output
    return 0


# ---------------------------------------------------------------- reduce, cohort
def _derived_model_arguments(p: argparse.ArgumentParser, *, made: str, data_use: str, out: str) -> None:
    """Arguments of a command that writes a new model derived from one and the training identities of a dataset."""
    p.add_argument("--model", type=Path, help=f"checkpoint to {made} (default: the shipped model)")
    p.add_argument("--data", required=True, type=Path,
                   help=f"dataset folder: {data_use} (the model's validation identities are always left out)")
    p.add_argument("--exclude-pairs", type=Path, action="append", default=[],
                   help="leave out every identity in this pairs file (repeatable), e.g. the test pairs")
    p.add_argument("--out", required=True, type=Path, help=f"{out} to write (calibrate its threshold again)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--cache-dir", type=Path, default=None, help="crop cache folder (default $FACEPP_CACHE or out/cache)")


def _derived_model_paths(args: argparse.Namespace, *, made: str) -> dict[str, Any]:
    """Resolve ``--model``, refuse an ``--out`` that would overwrite it; the keyword arguments both commands take."""
    from facepp.models import is_shipped, model_or_shipped

    args.model = model_or_shipped(args.model)
    if is_shipped(args.out) or args.out.resolve() == args.model.resolve():
        raise ConfigError(f"--out must be a new file, not the model {made}")
    return {"data": args.data, "exclude_pairs": tuple(args.exclude_pairs), "num_threads": args.threads,
            "cache_dir": args.cache_dir or _default_cache_dir()}


def _reduce_arguments(p: argparse.ArgumentParser) -> None:
    _derived_model_arguments(p, made="reduce", data_use="the PCA is fitted on its training identities",
                             out="reduced checkpoint")
    p.add_argument("--dim", required=True, type=int,
                   help="new embedding dimension, below the model's (the terminal and matcher take powers of two, e.g. 64)")


def _run_reduce(args: argparse.Namespace) -> int:
    from facepp.model.reduce import reduce_checkpoint

    common = _derived_model_paths(args, made="being reduced")
    print(json.dumps(reduce_checkpoint(args.model, args.out, dim=args.dim, **common), indent=2))  # noqa: T201 - CLI output
    return 0


def _cohort_arguments(p: argparse.ArgumentParser) -> None:
    _derived_model_arguments(p, made="copy with a cohort", data_use="the first image of each training identity joins "
                             "the cohort", out="checkpoint")
    p.add_argument("--top-k", type=int, default=COHORT_TOP_K,
                   help=f"nearest cohort faces that describe a face (default {COHORT_TOP_K})")


def _run_cohort(args: argparse.Namespace) -> int:
    from facepp.model.cohort import attach_cohort

    common = _derived_model_paths(args, made="the cohort is made for")
    print(json.dumps(attach_cohort(args.model, args.out, top_k=args.top_k, **common), indent=2))  # noqa: T201 - CLI output
    return 0


TRAIN = Command("train", "train the embedding CNN (centralized plaintext baseline)", _train_arguments, _run_train)
EVALUATE = Command("evaluate", "verification metrics (10-fold accuracy, AUC, EER, TAR@FAR) and ROC plot",
                   _evaluate_arguments, _run_evaluate)
EMBED = Command("embed", "image file(s) -> L2-normalised embedding(s), as .npy or JSON, with a per-file record",
                _embed_arguments, _run_embed)

REDUCE = Command("reduce", "a shorter-embedding copy of a model: PCA of its outputs on training identities, "
                 "folded into its last layer", _reduce_arguments, _run_reduce)
COHORT = Command("cohort", "a copy of a model with a score-normalisation cohort (adaptive S-norm): one image "
                 "of each training identity, embedded by the model", _cohort_arguments, _run_cohort)

#: The library's own subcommands (other packages add theirs through the ``facepp.commands`` entry points).
COMMANDS: tuple[Command, ...] = (TRAIN, EVALUATE, EMBED, REDUCE, COHORT)
