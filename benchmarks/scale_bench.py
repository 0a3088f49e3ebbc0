"""Matcher scale: 1:N and 1:1 on the in-process and the Ray engine, storage per template, cluster extrapolation.

    python -m benchmarks.scale_bench [--quick] [--json PATH] [--data DIR] [--checkpoint PATH] [--dims D ...]

Galleries of generated L2-normalised embeddings (dim 128, or each of ``--dims``), encrypted in bulk by
the terminal's key holder (``CkksKeyHolder.encrypt_block``) and written into a
real matcher database (SQLite). Then, on the same database and in the same run:

* 1:N latency and throughput of the matcher service (``MatcherService.identify``)
  on the in-process engine and on an embedded local Ray with 1 and 2 shards (one
  Ray process per core of this machine); the Ray scores must decrypt to exactly
  the in-process scores;
* network bytes per query (probe and scores reply, which names blocks, not
  subjects; the location table it refers to is fetched once per gallery change)
  and bytes per stored template (per template of the gallery, and per slot of a full block),
  SEAL-zstd-compressed as the matcher stores them and uncompressed, with the time to
  pack and to load one block both ways;
* 1:1 for a subject enrolled on its own (one template's work) and for one in a
  bulk block (one block's work), and 50 concurrent 1:1 of the former against 2
  sequential ones, per engine;
* the terminal API figures at the largest size (``benchmarks.web_bench``: 1:1
  p50 through ``POST /api/verify``, image decoding and embedding included, and
  50 concurrent verifications), needing ORL under ``--data``;
* a paper extrapolation to a cluster of W workers from the measured per-block
  cost of the last engine (time x shards / blocks: one worker's cost per block).

``--quick`` (under 5 minutes on an idle machine): N = 10,000 only, the in-process
engine and Ray with 2 shards. The full run adds N = 100,000. ``--sizes 1000000
--engines local`` builds a gallery of a million (245 blocks, 8.2 GB of ciphertexts in
SQLite and in memory). Run under ``nice -n 10`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ckks_bench import timed
from benchmarks.report import print_table, write_json
from facepp.data import data_root

logger = logging.getLogger("benchmarks.scale_bench")
DIM = 128
CONCURRENT = 50
ONE_MILLION = 1_000_000
SLOTS = 4096  # templates per block (n = 8192)


def _burst(fn: Callable[[int], Any], clients: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(fn, range(clients)))
    return time.perf_counter() - t0


def measure_engine(folder: Path, holder: Any, engine: str, shards: int, probes: tuple[bytes, bytes],
                   subjects: tuple[str, str], *, dim: int, repeats: int) -> dict[str, Any]:
    """Load the gallery on one engine, time 1:N and 1:1 (sequential and 50 concurrent), decrypt the scores.

    ``probes`` (identification, verification) are the same bytes for every engine, so scores compare exactly.
    ``subjects``: one enrolled on its own (fast 1:1, used for the concurrency figures) and one from a bulk block.
    """
    from webapp.matcher.client import location_table
    from webapp.matcher.db import make_engine
    from webapp.matcher.service import MatcherService
    from webapp.matcher.store import MatcherStore

    t0 = time.perf_counter()
    service = MatcherService(MatcherStore(make_engine(str(folder / "matcher.db"))), engine=engine, shards=shards)
    load_s = time.perf_counter() - t0
    try:
        identify_probe, verify_probe = probes
        service.identify(identify_probe)  # warm-up
        identify_s, reply = timed(lambda: service.identify(identify_probe), repeats)
        single, bulk = subjects
        service.score_one(single, verify_probe)
        verify_s, _ = timed(lambda: service.score_one(single, verify_probe), repeats)
        verify_block_s, _ = timed(lambda: service.score_one(bulk, verify_probe), repeats)
        sequential2, _ = timed(lambda: [service.score_one(single, verify_probe) for _ in range(2)], repeats)
        burst = _burst(lambda _: service.score_one(single, verify_probe), CONCURRENT)
        name, count = service.engine.name, service.engine.shards
        version, subjects = service.locations()
        table = location_table(subjects)
        scores = holder.decrypt_scores(reply, dim=dim, locations=lambda v: table)
    finally:
        service.close()
    return {"engine": name, "shards": count, "load_s": load_s, "identify_s": identify_s, "verify_s": verify_s,
            "verify_block_s": verify_block_s,
            "sequential2_s": sequential2, "concurrent50_s": burst, "concurrent50_over_sequential2": burst / sequential2,
            "probe_bytes": len(identify_probe), "verify_probe_bytes": len(verify_probe), "scores_bytes": len(reply),
            "location_table_bytes": len(json.dumps(subjects)), "scores": scores}


def storage(folder: Path, size: int, dim: int) -> dict[str, Any]:
    """Stored bytes per template (ciphertexts zstd-compressed by SEAL, as the matcher stores them), what
    they would be uncompressed, and the cost of compression: packing and loading one block both ways."""
    from facepp.crypto.ckks import messages as msg
    from facepp.crypto.ckks.public_key import CkksPublicContext
    from webapp.matcher.db import make_engine
    from webapp.matcher.store import MatcherStore

    store = MatcherStore(make_engine(str(folder / "matcher.db")))
    blocks = store.block_bitmaps()
    stored = sum(len(store.block_data(i)) for i, _, _ in blocks)
    bundle = store.bundle()
    assert bundle is not None
    context = CkksPublicContext.from_bundle(bundle.data)
    he, params = context.he, context.params

    def load(data: bytes) -> tuple[Any, list[Any]]:
        return msg.parse_block(he, data, fingerprint=context.fingerprint, params=params, dim=dim)

    def pack(compression: str) -> bytes:
        return msg.pack_block(diagonals, occupied, fingerprint=context.fingerprint, dim=dim, baby=params.baby_for(dim),
                              compression=compression)

    block = store.block_data(0)
    occupied, diagonals = load(block)
    pack_s, packed = timed(lambda: pack(msg.GALLERY_COMPRESSION), 3)
    pack_raw_s, raw = timed(lambda: pack("none"), 3)
    load_s, _ = timed(lambda: load(packed), 3)
    load_raw_s, _ = timed(lambda: load(raw), 3)
    ratio = len(packed) / len(raw)
    slots = len(blocks) * params.slots
    return {"stored_bytes": stored, "bytes_per_template": stored / size, "bytes_per_slot": stored / slots,
            "bytes_per_template_uncompressed": stored / size / ratio, "bytes_per_slot_uncompressed": stored / slots / ratio,
            "compressed_ratio": ratio, "block_pack_s": pack_s, "block_pack_uncompressed_s": pack_raw_s,
            "block_load_s": load_s, "block_load_uncompressed_s": load_raw_s}


def run(*, sizes: Sequence[int], repeats: int, data: Path | None, checkpoint: Path | None, seed: int,
        engines: Sequence[tuple[str, int]] = (("local", 1), ("ray", 1), ("ray", 2)),
        dims: Sequence[int] = (DIM,)) -> dict[str, Any]:
    """Every measurement of the module docstring, for each embedding dimension and gallery size."""
    rows, result = [], {}
    with tempfile.TemporaryDirectory(prefix="scale_bench_") as tmp:
        for dim in dims:
            for size in sizes:
                folder = Path(tmp) / f"d{dim}-n{size}"
                folder.mkdir()
                measured = measure_gallery(folder, size=size, dim=dim, seed=seed, engines=engines, repeats=repeats)
                result[f"{size}" if dim == DIM else f"{size}@{dim}"] = measured
                rows += [{"dim": dim, "N": size, "engine": r["engine"], "shards": r["shards"], "load_s": r["load_s"],
                          "identify_s": r["identify_s"], "us_per_template": r["per_template_us"],
                          "templates_per_s": size / r["identify_s"], "verify_s": r["verify_s"],
                          "verify_block_s": r["verify_block_s"],
                          "conc50_over_seq2": r["concurrent50_over_sequential2"],
                          "scores_equal": r["scores_equal_local"], "scores_KB": r["scores_bytes"] / 1e3,
                          "stored_B_per_slot": measured["bytes_per_slot"]} for r in measured["engines"]]
    storage_rows = [{"dim": v["dim"], "N": v["size"], "stored_B_per_template": v["bytes_per_template"],
                     "B_per_full_block_slot": v["bytes_per_slot"],
                     "uncompressed_B_per_slot": v["bytes_per_slot_uncompressed"], "ratio": v["compressed_ratio"],
                     "block_pack_s": v["block_pack_s"], "uncompressed_pack_s": v["block_pack_uncompressed_s"],
                     "block_load_s": v["block_load_s"], "uncompressed_load_s": v["block_load_uncompressed_s"]}
                    for v in result.values()]
    largest = max(result.values(), key=lambda v: (v["dim"] == dims[0], v["size"]))
    per_block = largest["per_block_s"]
    million_blocks = math.ceil(ONE_MILLION / SLOTS)
    extrapolation = [{"dim": largest["dim"], "templates": ONE_MILLION, "workers": w, "blocks": million_blocks,
                      "identify_s": math.ceil(million_blocks / w) * per_block,
                      "gallery_GB": ONE_MILLION * largest["bytes_per_slot"] / 1e9}
                     for w in (1, 8, 32, 128)]
    ten_k = result.get(str(10_000)) or result.get(f"10000@{dims[0]}") or largest
    local_run = ten_k["engines"][0]
    ray_run = ten_k["engines"][-1]
    summary = {
        "per_template_us": local_run["per_template_us"],
        "per_template_us_ray": ray_run["per_template_us"],
        "bytes_per_template": ten_k["bytes_per_template"],
        "bytes_per_template_uncompressed": ten_k["bytes_per_template_uncompressed"],
        "bytes_per_slot": ten_k["bytes_per_slot"],
        "ray_scores_equal_single_process": all(r["scores_equal_local"] for v in result.values() for r in v["engines"]),
        "concurrent50_over_sequential2": ray_run["concurrent50_over_sequential2"],
        "concurrent50_over_sequential2_local": local_run["concurrent50_over_sequential2"],
        "verify_one_template_ms": local_run["verify_s"] * 1e3,
        "verify_one_block_ms": local_run["verify_block_s"] * 1e3,
        "network_bytes_per_identify": local_run["probe_bytes"] + local_run["scores_bytes"],
    }
    for dim in dims[1:]:  # the same figures at the other dimensions, from the same run
        other = result.get(f"10000@{dim}") or max((v for v in result.values() if v["dim"] == dim), key=lambda v: v["size"])
        summary[f"per_template_us_dim{dim}"] = other["engines"][0]["per_template_us"]
        summary[f"verify_one_template_ms_dim{dim}"] = other["engines"][0]["verify_s"] * 1e3
        summary[f"bytes_per_slot_dim{dim}"] = other["bytes_per_slot"]
    out: dict[str, Any] = {"sizes": result, "rows": rows, "storage": storage_rows, "extrapolation": extrapolation, **summary}
    if data is not None:
        from benchmarks.web_bench import run as web_run

        web = web_run(sizes=(10_000,), checkpoint=checkpoint, data=data, verifies=repeats + 5, identifies=2,
                      seed=seed, engines=("local", "ray"))
        out["terminal_api"] = web
        by_engine = {r["engine"]: r for r in web["results"]}
        out["verify_p50_ms"] = by_engine["local"]["verify"]["p50_s"] * 1e3
        out["verify_p50_ms_ray"] = by_engine["ray"]["verify"]["p50_s"] * 1e3
        out["terminal_concurrent50_over_sequential2"] = by_engine["local"]["concurrent"]["over_sequential2"]
        out["terminal_concurrent50_over_sequential2_ray"] = by_engine["ray"]["concurrent"]["over_sequential2"]
    return out


def measure_gallery(folder: Path, *, size: int, dim: int, seed: int, engines: Sequence[tuple[str, int]],
                    repeats: int) -> dict[str, Any]:
    """One gallery of ``size`` generated ``dim``-d templates, measured on every engine, and its storage."""
    from benchmarks.web_bench import bulk_gallery
    from webapp.matcher.db import make_engine
    from webapp.matcher.service import MatcherService
    from webapp.matcher.store import MatcherStore
    from webapp.terminal.config import TerminalConfig
    from webapp.terminal.keystore import TerminalKeys, opaque_subject_id

    _, bulk_s = bulk_gallery(folder, size=size, dim=dim, seed=seed)
    keys = TerminalKeys.load(folder / "terminal")
    holder = keys.holder
    x = np.random.default_rng(seed).standard_normal((size, dim))  # the templates bulk_gallery encrypted
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    probe_x = x[size // 2] + 0.3 * np.random.default_rng(seed + 1).standard_normal(dim) / np.sqrt(dim)
    probe_x /= np.linalg.norm(probe_x)
    subject = opaque_subject_id(keys.hmac_key, f"synthetic-{size // 2:06d}", hex_chars=TerminalConfig().id_hex_chars)
    probes = (holder.encrypt_probe(probe_x, verification=False), holder.encrypt_probe(probe_x))
    stored = storage(folder, size, dim)  # before the subject enrolled on its own adds its kept template
    single = "enrolled-on-its-own"
    enrol = MatcherService(MatcherStore(make_engine(str(folder / "matcher.db"))), engine="local")
    enrol.enrol(single, holder.encrypt_template(x[size // 2]))
    enrol.close()
    runs = [measure_engine(folder, holder, engine, shards, probes, (single, subject), dim=dim, repeats=repeats)
            for engine, shards in engines]
    local = runs[0]["scores"]
    truth = dict(zip(local, np.append(x @ probe_x, x[size // 2] @ probe_x)))  # bulk ids in order, then single
    errors = max(abs(v - truth[sid]) for sid, v in local.items())
    for r in runs:
        r["scores_equal_local"] = r.pop("scores") == local
        r["per_template_us"] = r["identify_s"] / size * 1e6
    blocks = math.ceil(size / SLOTS)
    return {"dim": dim, "size": size, "bulk_encrypt_s": bulk_s, "max_abs_error": errors, "blocks": blocks,
            "engines": runs, **stored, "per_block_s": runs[-1]["identify_s"] * runs[-1]["shards"] / blocks}


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 10,000 only, fewer repeats (under 5 minutes)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--data", type=Path, default=data_root(),
                        help="datasets folder holding orl/ for the terminal API figures (default $FACEPP_DATA)")
    parser.add_argument("--checkpoint", type=Path, help="model checkpoint for the terminal (default: see web_bench)")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N",
                        help="gallery sizes (default 10000 100000; --quick 10000), e.g. --sizes 1000000 --engines local")
    parser.add_argument("--engines", nargs="+", metavar="ENGINE[:SHARDS]",
                        help="engines to load each gallery on (default local ray:1 ray:2; --quick local ray:2)")
    parser.add_argument("--dims", type=int, nargs="+", default=[DIM], metavar="D",
                        help="embedding dimensions, each measured on its own gallery in this run (default 128), "
                             "e.g. --dims 128 64; the summary keys without a suffix are the first one's")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def parse_engine(text: str) -> tuple[str, int]:
    """``local`` or ``ray:SHARDS`` -> ``(engine, shards)``."""
    name, _, shards = text.partition(":")
    if name not in ("local", "ray") or (shards and not shards.isdigit()) or (name == "local" and shards not in ("", "1")):
        raise argparse.ArgumentTypeError(f"engines are local or ray:SHARDS, got {text!r}")
    return name, int(shards or 1)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    data = args.data if (args.data / "orl" / "s31" / "1.pgm").is_file() else None
    if data is None:
        print(f"ORL not found under {args.data}: skipping the terminal API figures", file=sys.stderr)
    started = time.perf_counter()
    try:
        engines = [parse_engine(e) for e in args.engines] if args.engines else (
            [("local", 1), ("ray", 2)] if args.quick else [("local", 1), ("ray", 1), ("ray", 2)])
    except argparse.ArgumentTypeError as exc:
        build_parser().error(str(exc))
    sizes = args.sizes or ([10_000] if args.quick else [10_000, 100_000])
    result = run(sizes=sizes, repeats=3 if args.quick else 7, data=data,
                 checkpoint=args.checkpoint, seed=args.seed, engines=engines, dims=args.dims)
    result["total_s"] = time.perf_counter() - started
    print_table("Matcher service (this machine; Ray: one process per shard)", result["rows"])
    print_table("Storage: SEAL zstd-compressed ciphertexts as stored, and uncompressed; one block packed and "
                "loaded both ways", result["storage"])
    print_table("Paper extrapolation to a cluster from the measured per-block cost of one worker",
                result["extrapolation"])
    print_table("Summary (1:1 and concurrency of subjects enrolled on their own; concurrency: Ray, and _local)",
                [{k: v for k, v in result.items() if not isinstance(v, (dict, list))}])
    print(f"\ntotal {result['total_s']:.1f} s")
    write_json(args.json, result)
    return 0 if result["ray_scores_equal_single_process"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
