"""CKKS encrypted matching: packed gallery vs one encrypted dot product per template, same run.

    python -m benchmarks.ckks_bench [--quick] [--json PATH] [--workers 2]

Measures, on synthetic L2-normalised embeddings (a probe is a noisy copy of one
gallery member): matcher time of a 1:N identification over N = 10,000 templates
(dim 128), the naive baseline (each template encrypted alone, multiply,
rotate-and-sum) on a small sample, precision against numpy cosine, top-k
agreement, bytes per stored template and the network cost of a query
(probe and scores bytes), plus 1:1 verification (masked and unmasked) and
compact enrolment. The full run adds galleries of 1k, 10k and 100k templates
and dim 512.

Targets (2-core machine): per_template_us <= 50 at N=10,000 dim 128,
speedup_vs_naive >= 20, max_abs_score_error <= 1e-4, rankings_agree true.
Gallery blocks are encrypted by ``--workers`` processes (the terminal's work);
matcher timings are single-threaded.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from Pyfhel import Pyfhel

from benchmarks.report import print_table, write_json
from facepp.crypto.ckks.matcher import CkksMatcher
from facepp.crypto.ckks.params import CkksParams
from facepp.crypto.ckks.secret_key import CkksKeyHolder

logger = logging.getLogger("benchmarks.ckks_bench")
TOP_K = 10
_WORKER_HOLDER: CkksKeyHolder | None = None


def unit_rows(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    """``(k, d)`` float64 random unit vectors."""
    x = rng.standard_normal((k, d))
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True))


def noisy_copy(x: np.ndarray, rng: np.random.Generator, noise: float = 0.5) -> np.ndarray:
    """A unit vector near ``x`` (cosine ~ 0.9)."""
    y = x + noise * rng.standard_normal(x.shape) / math.sqrt(x.shape[0])
    return np.asarray(y / np.linalg.norm(y))


def _init_worker(secret: bytes) -> None:
    global _WORKER_HOLDER
    _WORKER_HOLDER = CkksKeyHolder.from_secret_bytes(secret)


def _encrypt_chunk(chunk: np.ndarray) -> bytes:
    if _WORKER_HOLDER is None:
        raise RuntimeError("worker not initialised")
    return _WORKER_HOLDER.encrypt_block(chunk)


def build_gallery(holder: CkksKeyHolder, x: np.ndarray, *, workers: int) -> tuple[CkksMatcher, float, float]:
    """Encrypt ``x`` in blocks (terminal, ``workers`` processes) and load them (matcher).

    Returns:
        (matcher, terminal encryption seconds, matcher load seconds)
    """
    slots = holder.params.slots
    chunks = [x[i : i + slots] for i in range(0, len(x), slots)]
    start = time.perf_counter()
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(holder.to_secret_bytes(),)) as pool:
            blocks = list(pool.map(_encrypt_chunk, chunks))
    else:
        blocks = [holder.encrypt_block(c) for c in chunks]
    encrypt_s = time.perf_counter() - start
    matcher = CkksMatcher.from_public_bundle(holder.export_public_bundle(), dim=x.shape[1])
    start = time.perf_counter()
    for b, (block, chunk) in enumerate(zip(blocks, chunks)):
        matcher.add_block(block, [f"b{b}s{i}" for i in range(len(chunk))])
    load_s = time.perf_counter() - start
    return matcher, encrypt_s, load_s


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    """Median wall time of ``fn()`` over ``repeats`` runs, and its last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure_identify(holder: CkksKeyHolder, n: int, dim: int, *, workers: int, repeats: int, seed: int) -> dict[str, Any]:
    """1:N over ``n`` templates: matcher time, precision, ranking agreement, bytes."""
    rng = np.random.default_rng(seed)
    x = unit_rows(rng, n, dim)
    target = int(rng.integers(n))
    probe_x = noisy_copy(x[target], rng)
    matcher, encrypt_s, load_s = build_gallery(holder, x, workers=workers)
    probe = holder.encrypt_probe(probe_x, verification=False)
    identify_s, scores_msg = timed(lambda: matcher.score_all(probe), repeats)
    start = time.perf_counter()
    scores = holder.decrypt_scores(scores_msg, dim=dim)
    decrypt_s = time.perf_counter() - start
    ids = [f"b{i // holder.params.slots}s{i % holder.params.slots}" for i in range(n)]
    got = np.array([scores[s] for s in ids])
    ref = x @ probe_x
    gallery_bytes = matcher.gallery.nbytes
    return {
        "gallery_size": n,
        "dim": dim,
        "identify_s": identify_s,
        "per_template_us": identify_s / n * 1e6,
        "max_abs_score_error": float(np.abs(got - ref).max()),
        "rankings_agree": bool(np.array_equal(np.argsort(-got)[:TOP_K], np.argsort(-ref)[:TOP_K])),
        "top1_is_target": int(np.argmax(got)) == target,
        "template_bytes": gallery_bytes / n,
        "probe_bytes": len(probe),
        "scores_bytes": len(scores_msg),
        "blocks": len(matcher.gallery.blocks),
        "encrypt_s": encrypt_s,
        "encrypt_workers": workers,
        "matcher_load_s": load_s,
        "decrypt_s": decrypt_s,
        "_matcher": matcher,
        "_x": x,
    }


def measure_verify(holder: CkksKeyHolder, matcher: CkksMatcher, x: np.ndarray, *, repeats: int, seed: int) -> dict[str, Any]:
    """1:1 (masked and unmasked) and compact enrolment on an existing gallery."""
    rng = np.random.default_rng(seed)
    dim = x.shape[1]
    probe_x = noisy_copy(x[1], rng)
    full_probe = holder.encrypt_probe(probe_x, verification=True)
    small_probe = holder.encrypt_probe(probe_x, verification=False)
    masked_s, masked = timed(lambda: matcher.score_one("b0s1", full_probe, mask=True), repeats)
    plain_s, unmasked = timed(lambda: matcher.score_one("b0s1", small_probe, mask=False), repeats)
    ref = float(x[1] @ probe_x)
    err = max(abs(holder.decrypt_scores(m, dim=dim)["b0s1"] - ref) for m in (masked, unmasked))
    new = unit_rows(rng, repeats, dim)
    templates = [holder.encrypt_template(v) for v in new]
    enrol_times = []
    for i, t in enumerate(templates):
        start = time.perf_counter()
        matcher.add(f"new{i}", t)
        enrol_times.append(time.perf_counter() - start)
    return {
        "verify_masked_s": masked_s,
        "verify_s": plain_s,
        "verify_max_abs_error": err,
        "verify_probe_bytes": len(full_probe),
        "verify_scores_bytes": len(masked),
        "enrol_s": statistics.median(enrol_times),
        "enrol_bytes": len(templates[0]),
    }


def measure_baselines(params: CkksParams, x: np.ndarray, probe_x: np.ndarray, *, naive_sample: int) -> dict[str, Any]:
    """The naive baseline and two other layouts, in one context with power-of-two rotation keys.

    * naive: one ciphertext per template (zero-padded), ct*ct, relinearise,
      rescale, log2(d) rotate-and-sum; timed on ``naive_sample`` templates.
    * dimension-major: ciphertext c holds coordinate c of S templates, the probe
      is d ciphertexts (p_c replicated); no rotations; timed on one full block.
    * row-major: S/d templates side by side per ciphertext, probe replicated in
      one ciphertext; ct*ct then log2(d) rotate-and-sum per ciphertext; timed on 4
      ciphertexts.

    Only matcher-side work is timed; every score is checked against numpy.
    """
    he = Pyfhel()
    he.contextGen(scheme="ckks", n=params.poly_degree, scale=params.scale, qi_sizes=list(params.qi_sizes), sec=128)
    he.keyGen()
    he.relinKeyGen()
    he.rotateKeyGen()
    slots, dim = params.slots, x.shape[1]

    def enc(v: np.ndarray) -> Any:
        buf = np.zeros(slots)
        buf[: len(v)] = v
        c = he.encryptFrac(buf, scale=params.scale)
        he.mod_switch_to_next(c)
        return c

    def rotate_sum(ct: Any) -> Any:
        he.relinearize(ct)
        he.rescale_to_next(ct)
        step = 1
        while step < dim:
            he.add(ct, he.rotate(ct, step, True))
            step *= 2
        return ct

    # naive
    probe = enc(probe_x)
    templates = [enc(v) for v in x[:naive_sample]]
    start = time.perf_counter()
    outs = [rotate_sum(he.multiply(t, probe, True)) for t in templates]
    naive_s = time.perf_counter() - start
    naive_err = np.abs(np.array([he.decryptFrac(o)[0] for o in outs]) - x[:naive_sample] @ probe_x).max()
    # dimension-major, one full block
    block = x[:slots]
    gallery = [enc(block[:, c]) for c in range(dim)]
    probe_cts = [enc(np.full(slots, probe_x[c])) for c in range(dim)]
    start = time.perf_counter()
    acc = he.multiply(gallery[0], probe_cts[0], True)
    for c in range(1, dim):
        he.add(acc, he.multiply(gallery[c], probe_cts[c], True))
    he.relinearize(acc)
    he.rescale_to_next(acc)
    dimmajor_s = time.perf_counter() - start
    dimmajor_err = np.abs(he.decryptFrac(acc)[: len(block)] - block @ probe_x).max()
    # row-major, 4 ciphertexts of S/d templates each
    per_ct = slots // dim
    rows = [enc(x[i * per_ct : (i + 1) * per_ct].reshape(-1)) for i in range(4)]
    probe_rep = enc(np.tile(probe_x, per_ct))
    start = time.perf_counter()
    row_outs = [rotate_sum(he.multiply(r, probe_rep, True)) for r in rows]
    rowmajor_s = time.perf_counter() - start
    row_scores = np.concatenate([he.decryptFrac(o)[::dim][:per_ct] for o in row_outs])
    rowmajor_err = np.abs(row_scores - x[: 4 * per_ct] @ probe_x).max()
    ct_bytes = len(probe.to_bytes())
    return {
        "naive_sample": naive_sample,
        "naive_per_template_us": naive_s / naive_sample * 1e6,
        "naive_max_abs_error": float(naive_err),
        "naive_template_bytes": ct_bytes,
        "layouts": [
            {"layout": "naive (1 template/ct)", "per_template_us": naive_s / naive_sample * 1e6,
             "probe_bytes": ct_bytes, "template_bytes": ct_bytes, "max_abs_score_error": float(naive_err)},
            {"layout": "dimension-major (probe = d cts)", "per_template_us": dimmajor_s / len(block) * 1e6,
             "probe_bytes": dim * ct_bytes, "template_bytes": dim * ct_bytes / slots,
             "max_abs_score_error": float(dimmajor_err)},
            {"layout": "row-major (rotate-and-sum per ct)", "per_template_us": rowmajor_s / (4 * per_ct) * 1e6,
             "probe_bytes": ct_bytes, "template_bytes": ct_bytes / per_ct, "max_abs_score_error": float(rowmajor_err)},
        ],
    }


def run(*, quick: bool, workers: int, seed: int = 0) -> dict[str, Any]:
    """Run the benchmark; returns the JSON document."""
    params = CkksParams()
    holder = CkksKeyHolder.generate(params)
    repeats = 3 if quick else 5
    main = measure_identify(holder, 10_000, 128, workers=workers, repeats=repeats, seed=seed)
    matcher, x = main.pop("_matcher"), main.pop("_x")
    rng = np.random.default_rng(seed + 1)
    naive = measure_baselines(params, x, noisy_copy(x[0], rng), naive_sample=8 if quick else 32)
    naive["layouts"].append({"layout": "diagonal BSGS (this engine)", "per_template_us": main["per_template_us"],
                             "probe_bytes": main["probe_bytes"], "template_bytes": main["template_bytes"],
                             "max_abs_score_error": main["max_abs_score_error"]})
    verify = measure_verify(holder, matcher, x, repeats=repeats, seed=seed + 2)
    del matcher
    bundle = holder.export_public_bundle()
    result: dict[str, Any] = {
        **main,
        **naive,
        "speedup_vs_naive": naive["naive_per_template_us"] / main["per_template_us"],
        **verify,
        "public_bundle_bytes": len(bundle),
        "params": {"poly_degree": params.poly_degree, "qi_sizes": list(params.qi_sizes),
                   "scale_bits": params.scale_bits, "baby_steps": params.baby_steps,
                   "total_modulus_bits": params.total_bits, "security": "128-bit classical (HE standard)"},
        "quick": quick,
    }
    if not quick:
        scaling = []
        for n in (1_000, 10_000, 100_000):
            row = measure_identify(holder, n, 128, workers=workers, repeats=3, seed=seed + n)
            row.pop("_matcher"), row.pop("_x")
            scaling.append(row)
        result["scaling"] = scaling
        row = measure_identify(holder, 10_000, 512, workers=workers, repeats=3, seed=seed + 512)
        matcher512, x512 = row.pop("_matcher"), row.pop("_x")
        row.update(measure_verify(holder, matcher512, x512, repeats=3, seed=seed + 513))
        result["dim_512"] = row
        result["baby_steps_sweep"] = sweep_baby_steps(workers=workers, seed=seed)
    return result


def sweep_baby_steps(*, workers: int, seed: int) -> list[dict[str, Any]]:
    """1:N and masked 1:1 time for several baby-step counts b (N=10,000, dim 128)."""
    rows = []
    for baby in (8, 16, 32, 64, 128):
        holder = CkksKeyHolder.generate(CkksParams(baby_steps=baby))
        row = measure_identify(holder, 10_000, 128, workers=workers, repeats=3, seed=seed + baby)
        matcher, x = row.pop("_matcher"), row.pop("_x")
        verify = measure_verify(holder, matcher, x, repeats=3, seed=seed)
        rows.append({"baby_steps": baby, "identify_s": row["identify_s"], "per_template_us": row["per_template_us"],
                     "verify_s": verify["verify_s"], "verify_masked_s": verify["verify_masked_s"],
                     "enrol_s": verify["enrol_s"], "public_bundle_bytes": len(holder.export_public_bundle())})
    return rows


def _summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [result] + result.get("scaling", []) + ([result["dim_512"]] if "dim_512" in result else [])
    keys = ("gallery_size", "dim", "identify_s", "per_template_us", "max_abs_score_error", "rankings_agree",
            "template_bytes", "probe_bytes", "scores_bytes", "encrypt_s")
    return [{k: r[k] for k in keys} for r in rows]


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=10,000 dim 128 only, fewer repeats (< 60 s)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--workers", type=int, default=2, help="processes encrypting gallery blocks (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    result = run(quick=args.quick, workers=max(1, args.workers), seed=args.seed)
    result["total_s"] = time.perf_counter() - start
    print_table("CKKS 1:N identification (matcher single-threaded; encrypt_s = terminal, "
                f"{result['encrypt_workers']} processes)", _summary_rows(result))
    print_table("Naive baseline and 1:1 (N=10,000, dim 128)", [{
        "naive_per_template_us": result["naive_per_template_us"],
        "speedup_vs_naive": result["speedup_vs_naive"],
        "verify_masked_s": result["verify_masked_s"],
        "verify_s": result["verify_s"],
        "verify_probe_bytes": result["verify_probe_bytes"],
        "verify_scores_bytes": result["verify_scores_bytes"],
        "enrol_s": result["enrol_s"],
        "enrol_bytes": result["enrol_bytes"],
        "public_bundle_bytes": result["public_bundle_bytes"],
    }])
    print_table("Layouts (per-template matcher time at N=10,000 / one block, dim 128)", result["layouts"])
    if "baby_steps_sweep" in result:
        print_table("Baby-step sweep (N=10,000, dim 128)", result["baby_steps_sweep"])
    print(f"\ntotal {result['total_s']:.1f} s")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
