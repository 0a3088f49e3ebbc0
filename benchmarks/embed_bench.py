"""Per-image cost of the terminal's face pipeline: decode, detect + align, embed.

Each image is processed alone (batch of one), as the web app does for a capture:
read + decode the file, detect + align as the checkpoint says (``landmarks``: dlib
detection, five landmarks and a similarity warp; ``detect``: Haar detection on the padded
image, eye levelling and crop), then the CNN on every test-time view (crop scales, and
their mirror images unless ``--no-flip``).

The same images then go through the distillation teacher's pipeline (dlib's HOG detector
on the image upsampled once, five landmarks, a 150-px chip, dlib's face ResNet: how the
``face_recognition`` library embeds a face), timed the same way in the same run:
``speedup_vs_teacher`` is the ratio of the two means.

Run: ``python -m benchmarks.embed_bench [--quick] [--json out/embed_bench.json] [--model M]``.
Without ``--model`` the shipped model is timed.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from facepp.data.datasets import data_root, load_dataset
from facepp.data.images import read_image
from facepp.errors import NoFaceError
from facepp.evaluation.verify import write_json
from facepp.model.embedder import Embedder
from facepp.model.teacher import DlibTeacher
from facepp.models import model_or_shipped
from facepp.vision.align import MODES, PreprocessConfig

logger = logging.getLogger("benchmarks.embed_bench")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.embed_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=data_root())
    p.add_argument("--model", type=Path, help="checkpoint (default: the shipped model)")
    p.add_argument("--images", type=int, default=200, help="images to time (half LFW, half ORL)")
    p.add_argument("--quick", action="store_true", help="40 images")
    p.add_argument("--threads", type=int, default=1,
                   help="torch and OpenCV threads (default 1: a batch of one gains nothing from more, and loses under load)")
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--tta-scales", type=float, nargs="+", metavar="S",
                   help="test-time crop scales (default: the checkpoint's, or those of a new checkpoint)")
    p.add_argument("--modes", nargs="+", choices=MODES, metavar="MODE",
                   help="detect + align modes to time on the same images, the first reported on top "
                        "(default: the checkpoint's own), e.g. --modes landmarks detect")
    p.add_argument("--no-teacher", action="store_true", help="skip timing the teacher's pipeline")
    p.add_argument("--json", type=Path)
    return p


def _embedder(args: argparse.Namespace, mode: str | None) -> Embedder:
    """The checkpoint's (or an untrained network's) embedder, with ``mode`` and scales overridden."""
    import cv2

    cv2.setNumThreads(args.threads)
    embedder = Embedder.from_checkpoint(model_or_shipped(args.model), flip_tta=not args.no_flip, num_threads=args.threads)
    overrides: dict[str, Any] = {}
    if args.tta_scales:
        overrides["tta_scales"] = args.tta_scales
    if mode:
        overrides["mode"] = mode
    if overrides:
        config = PreprocessConfig.from_dict({**embedder.preprocessor.config.to_dict(), **overrides})
        embedder = Embedder(embedder.model, config, metadata=embedder.metadata, flip_tta=not args.no_flip)
    return embedder


def time_stages(paths: list[Path], align: Callable[[np.ndarray], Any], embed: Callable[[Any], object]) -> dict[str, Any]:
    """Decode, ``align`` (None: no face) and ``embed`` each image alone, after a warm-up;
    per-stage means and the total's spread in ms."""
    for p in paths[:5]:  # warm-up (model load, allocator)
        aligned = align(read_image(p))
        if aligned is not None:
            embed(aligned)
    decode, detect, network, total = [], [], [], []
    no_face = 0
    cpu_start = time.process_time()
    for p in paths:
        t0 = time.perf_counter()
        image = read_image(p)
        t1 = time.perf_counter()
        aligned = align(image)
        t2 = time.perf_counter()
        if aligned is None:
            no_face += 1
            continue
        embed(aligned)
        t3 = time.perf_counter()
        decode.append(t1 - t0)
        detect.append(t2 - t1)
        network.append(t3 - t2)
        total.append(t3 - t0)
    totals = np.array(total) * 1000
    return {
        "images": len(paths),
        "no_face": no_face,
        "ms_per_image": float(totals.mean()),
        "ms_per_image_median": float(np.median(totals)),
        "ms_per_image_p95": float(np.percentile(totals, 95)),
        "images_per_second": float(1000 / totals.mean()),
        "cpu_ms_per_image": 1000 * (time.process_time() - cpu_start) / len(paths),
        "ms_decode": 1000 * float(np.mean(decode)),
        "ms_detect_align": 1000 * float(np.mean(detect)),
        "ms_embed": 1000 * float(np.mean(network)),
    }


def time_pipeline(embedder: Embedder, paths: list[Path], *, threads: int) -> dict[str, Any]:
    """facepp's pipeline: detect + align as the checkpoint says, then every test-time view."""

    def align(image: np.ndarray) -> np.ndarray | None:
        try:
            return embedder.align(image).views
        except NoFaceError:
            return None

    config = embedder.preprocessor.config
    return {"mode": config.mode, "threads": threads, "flip_tta": embedder.flip_tta, "tta_scales": list(config.tta_scales),
            "input_size": config.input_size, **time_stages(paths, align, lambda views: embedder.embed_crops(views[None]))}


def time_teacher(paths: list[Path]) -> dict[str, Any]:
    """The teacher's pipeline on the same images, one view (as ``face_recognition``)."""
    teacher = DlibTeacher()
    return {"mode": "teacher", "threads": 1, "flip_tta": False, "tta_scales": [1.0], "input_size": 150,
            **time_stages(paths, teacher.chip, lambda chip: teacher.embed_chips([chip]))}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    n = 40 if args.quick else args.images
    lfw = load_dataset(args.data / "lfw").samples
    orl = load_dataset(args.data / "orl").samples
    rng = np.random.default_rng(0)
    paths = [lfw[i].path for i in rng.choice(len(lfw), n // 2, replace=False)]
    paths += [orl[i].path for i in rng.choice(len(orl), n - n // 2, replace=False)]
    runs = [time_pipeline(_embedder(args, mode), paths, threads=args.threads) for mode in args.modes or [None]]
    result: dict[str, Any] = {**runs[0], "runs": runs}
    if not args.no_teacher:
        runs.append(time_teacher(paths))
        result["teacher"] = runs[-1]
        result["speedup_vs_teacher"] = runs[-1]["ms_per_image"] / runs[0]["ms_per_image"]
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["load_average_1min"] = os.getloadavg()[0]
    stages = ("ms_decode", "ms_detect_align", "ms_embed", "ms_per_image", "ms_per_image_median", "ms_per_image_p95")
    print(f"{'stage':<16}" + "".join(f"{r['mode']:>11}" for r in runs))  # noqa: T201 - benchmark output
    for key in stages:
        print(f"{key[3:] or 'total':<16}" + "".join(f"{r[key]:>11.2f}" for r in runs))  # noqa: T201
    print(f"{'no face':<16}" + "".join(f"{r['no_face']:>11}" for r in runs))  # noqa: T201
    if len(runs) > 1:
        result["speedup_vs"] = {r["mode"]: r["ms_per_image"] / runs[0]["ms_per_image"] for r in runs[1:]}
        # ``speedup_vs[mode]`` > 1: the first pipeline is that many times faster.
        print("total time relative to the first:", ", ".join(  # noqa: T201
            f"{m} {v:.2f}x" for m, v in result["speedup_vs"].items()))
    views = len(result["tta_scales"]) * (2 if result["flip_tta"] else 1)
    print(f"{views} views per image (scales {result['tta_scales']}, flip {result['flip_tta']}); "  # noqa: T201
          f"CPU time per image {result['cpu_ms_per_image']:.2f} ms (wall-clock above includes waiting for the CPU under load)")
    print(f"images/s {result['images_per_second']:.1f}, peak RSS {result['peak_rss_mib']:.0f} MiB, "  # noqa: T201
          f"{result['no_face']} of {len(paths)} without a face, load {result['load_average_1min']:.1f}")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
