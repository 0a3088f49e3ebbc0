"""Web app end to end: terminal JSON API latency over a CKKS-encrypted gallery of 1k and 10k templates.

    python -m benchmarks.web_bench [--quick] [--json PATH] [--checkpoint PATH] [--data DIR] [--engines local,ray]

Starts a real matcher (``python -m webapp.matcher.cli serve``, SQLite in a temp
folder) and a real terminal (``python -m webapp.terminal.cli serve``, gunicorn) as
separate processes on loopback, and measures from a third process:

* 1:1 verification latency (``POST /api/verify``, genuine ORL probe, masked score), p50/p99;
* 1:N identification latency (``POST /api/identify``, top-5), p50/p99;
* 50 concurrent verifications (50 client threads at once): errors (must be 0), wall time, p50/p99,
  and their wall time over that of 2 sequential verifications.

Each gallery size runs once per matcher engine (``--engines``: the in-process
engine and the Ray engine, one shard per core), on a fresh matcher and terminal.

Gallery: N-4 synthetic L2-normalised templates enrolled **in bulk** plus 4 ORL
subjects enrolled through the terminal API (``POST /api/enroll``, 3 images each).
The matcher's HTTP API has no bulk endpoint (compact enrolment costs ~0.2 s per
template), so the bulk part is encrypted by the terminal's key holder
(``CkksKeyHolder.encrypt_block``, 4096 templates per block) and written into the
matcher's database with its own store (``MatcherStore.apply``) before the matcher
starts; the names go into the terminal's database. Every timed request goes
through the terminal API: decode, detect, embed, encrypt, matcher, decrypt.

``--quick`` runs N = 1,000 only with fewer repeats. The default checkpoint is the
shipped model, the one a fresh deployment runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import requests

from benchmarks.report import print_table, write_json
from facepp.data import data_root

if TYPE_CHECKING:
    from facepp.model.cohort import Cohort

logger = logging.getLogger("benchmarks.web_bench")
ORL_SUBJECTS = (31, 32, 33, 34)
CONCURRENT = 50
API_TOKEN = "web-bench-" + secrets.token_hex(16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen[bytes], *, timeout: float = 180.0, **tls: Any) -> None:
    """Poll ``url`` until it answers below 500; ``tls``: ``verify`` and ``cert`` of the poll."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=5, **tls).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(np.ceil(0.99 * len(ordered))) - 1)]
    return {"p50_s": statistics.median(ordered), "p99_s": p99, "n": len(ordered)}


def _checkpoint(path: Path | None) -> tuple[Path, str]:
    from facepp.models import shipped_model

    model = path or shipped_model()
    return model, model.name


def bulk_gallery(folder: Path, *, size: int, dim: int, seed: int, cohort: Cohort | None = None) -> tuple[str, float]:
    """Keys, matcher database and terminal names (with cohort stats, for a model with a cohort)
    for ``size`` synthetic templates; returns (matcher key, seconds)."""
    from facepp.crypto.ckks.packing import pack_bitmap
    from webapp.matcher.api import EXTENSION
    from webapp.matcher.app import create_app as create_matcher
    from webapp.matcher.auth import create_api_key
    from webapp.matcher.store import BlockRecord, GalleryChange
    from webapp.terminal.config import TerminalConfig
    from webapp.terminal.db import Database
    from webapp.terminal.keystore import TerminalKeys, opaque_subject_id

    started = time.perf_counter()
    instance = folder / "terminal"
    keys = TerminalKeys.load(instance)
    matcher_app = create_matcher({"db": str(folder / "matcher.db")})
    state = matcher_app.extensions[EXTENSION]
    api_key = create_api_key(state.store, "terminal")
    state.service.register_bundle(keys.holder.export_public_bundle(), dim=dim)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((size, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    names = [f"synthetic-{i:06d}" for i in range(size)]
    config = TerminalConfig(instance_dir=str(instance))
    opaque = [opaque_subject_id(keys.hmac_key, n, hex_chars=config.id_hex_chars) for n in names]
    slots = keys.holder.params.slots
    for b, start in enumerate(range(0, size, slots)):
        chunk = x[start : start + slots]
        block = keys.holder.encrypt_block(chunk)
        live = np.zeros(slots, dtype=bool)
        live[: len(chunk)] = True
        state.store.apply(GalleryChange(
            blocks=[BlockRecord(b, pack_bitmap(live), pack_bitmap(np.zeros(slots, dtype=bool)), block)],
            upsert_subjects=[(opaque[start + t], b, t) for t in range(len(chunk))],
        ))
    stats = None if cohort is None else [(float(m), float(sd)) for m, sd in cohort.stats(x)]
    Database(config.db_url).add_subjects(list(zip(names, opaque)), enrolled_by="web_bench", stats=stats)
    return api_key, time.perf_counter() - started


class Stack:
    """Matcher and terminal processes over a prepared folder.

    With ``pki`` (a folder from ``facepp-federation pki`` holding ``matcher``, ``terminal`` and the
    ``terminal-client`` pairs), the matcher requires the terminal's client certificate (mutual TLS),
    the terminal pins the CA for the matcher and serves HTTPS, and clients verify it against the CA.
    """

    def __init__(self, folder: Path, *, checkpoint: Path, threshold: float | None, api_key: str,
                 pki: Path | None = None, engine: str = "local") -> None:
        self.folder = folder
        mport, tport = _free_port(), _free_port()
        scheme = "https" if pki else "http"
        self.matcher_url, self.url = f"{scheme}://127.0.0.1:{mport}", f"{scheme}://127.0.0.1:{tport}"
        self.tls: dict[str, Any] = {"verify": str(pki / "ca.pem")} if pki else {}
        pem = {n: [str(pki / f"{n}.pem"), str(pki / f"{n}.key")] for n in ("matcher", "terminal", "terminal-client")} if pki else {}
        env = {**os.environ, "FACEPP_LOG_LEVEL": "WARNING"}
        self.logs = [open(folder / "matcher.log", "wb"), open(folder / "terminal.log", "wb")]  # noqa: SIM115
        matcher_tls = ["--tls-cert", pem["matcher"][0], "--tls-key", pem["matcher"][1],
                       "--tls-client-ca", self.tls["verify"]] if pki else []
        self.matcher = subprocess.Popen(
            [sys.executable, "-m", "webapp.matcher.cli", "serve", "--db", str(folder / "matcher.db"), "--port", str(mport),
             "--threads", "8", "--engine", engine, "-q", *matcher_tls], stdout=self.logs[0], stderr=subprocess.STDOUT, env=env)
        client_cert: dict[str, Any] = {"cert": tuple(pem["terminal-client"])} if pki else {}
        _wait_http(f"{self.matcher_url}/api/v1/health", self.matcher, **self.tls, **client_cert)
        tenv = {**env, "FACEPP_TERMINAL_MATCHER_API_KEY": api_key, "FACEPP_TERMINAL_API_TOKEN": API_TOKEN,
                "FACEPP_TERMINAL_MATCH_RATE_LIMIT": "100000 per minute", "FACEPP_TERMINAL_API_RATE_LIMIT": "100000 per minute"}
        args = [sys.executable, "-m", "webapp.terminal.cli", "serve", "--checkpoint", str(checkpoint), "--instance-dir",
                str(folder / "terminal"), "--matcher-url", self.matcher_url]
        if threshold is not None:
            args += ["--threshold", str(threshold)]
        if pki:
            args += ["--tls-cert", pem["terminal"][0], "--tls-key", pem["terminal"][1], "--matcher-ca", self.tls["verify"],
                     "--matcher-client-cert", pem["terminal-client"][0], "--matcher-client-key", pem["terminal-client"][1]]
        else:
            args += ["--insecure-cookies"]
        self.terminal = subprocess.Popen(args + ["--port", str(tport), "--threads", "16"],
                                         stdout=self.logs[1], stderr=subprocess.STDOUT, env=tenv)
        _wait_http(f"{self.url}/login", self.terminal, **self.tls)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request on a new connection (a TLS handshake each time under ``pki``)."""
        return requests.request(method, f"{self.url}/api{path}", headers={"Authorization": f"Bearer {API_TOKEN}"},
                                timeout=600, **self.tls, **kwargs)

    def close(self) -> None:
        for process in (self.terminal, self.matcher):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs:
            log.close()


def _orl(data: Path, s: int, i: int) -> tuple[str, tuple[str, bytes, str]]:
    path = data / "orl" / f"s{s}" / f"{i}.pgm"
    return ("image", (path.name, path.read_bytes(), "image/x-portable-graymap"))


def measure(stack: Stack, data: Path, *, verifies: int, identifies: int) -> dict[str, Any]:
    """Enrol the ORL subjects through the API, then time verify, identify and the concurrent burst."""
    enrol = []
    for s in ORL_SUBJECTS:
        t0 = time.perf_counter()
        r = stack.api("POST", "/enroll", data={"subject_id": f"orl-s{s}"}, files=[_orl(data, s, i) for i in (1, 2, 3)])
        r.raise_for_status()
        enrol.append(time.perf_counter() - t0)
    probe = [_orl(data, ORL_SUBJECTS[0], 5)]
    stack.api("POST", "/verify", data={"subject_id": f"orl-s{ORL_SUBJECTS[0]}"}, files=probe).raise_for_status()  # warm-up

    def verify_once(_: int = 0) -> tuple[float, bool]:
        t0 = time.perf_counter()
        r = stack.api("POST", "/verify", data={"subject_id": f"orl-s{ORL_SUBJECTS[0]}"}, files=probe)
        return time.perf_counter() - t0, r.status_code == 200 and "match" in r.json()

    verify = [verify_once()[0] for _ in range(verifies)]
    t0 = time.perf_counter()
    sequential = [verify_once() for _ in range(2)]
    sequential2 = time.perf_counter() - t0
    identify, top1 = [], []
    for _ in range(identifies):
        t0 = time.perf_counter()
        r = stack.api("POST", "/identify", data={"top_k": "5"}, files=probe)
        identify.append(time.perf_counter() - t0)
        r.raise_for_status()
        top1.append(r.json()["candidates"][0]["subject_id"])
    gallery = r.json()["gallery_size"]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENT) as pool:
        burst = list(pool.map(verify_once, range(CONCURRENT)))
    wall = time.perf_counter() - t0
    return {
        "gallery_size": gallery,
        "enrol_api_s": statistics.median(enrol),
        "verify": _percentiles(verify),
        "identify": _percentiles(identify),
        "identify_top1": max(set(top1), key=top1.count),
        "sequential2_s": sequential2,
        "concurrent": {"clients": CONCURRENT, "errors": sum(not ok for _, ok in burst + sequential), "wall_s": wall,
                       "over_sequential2": wall / sequential2, **_percentiles([t for t, _ in burst])},
    }


def run(*, sizes: Sequence[int], checkpoint: Path | None, data: Path, verifies: int, identifies: int,
        seed: int, engines: Sequence[str] = ("local", "ray")) -> dict[str, Any]:
    """Benchmark each gallery size on a fresh matcher + terminal, once per matcher engine."""
    from facepp.model.embedder import Embedder

    results = []
    with tempfile.TemporaryDirectory(prefix="web_bench_") as tmp:
        ckpt, label = _checkpoint(checkpoint)
        embedder = Embedder.from_checkpoint(ckpt)
        threshold = None if embedder.threshold is not None else 0.5
        for size in sizes:
            for engine in engines:
                folder = Path(tmp) / f"n{size}-{engine}"
                folder.mkdir()
                api_key, bulk_s = bulk_gallery(folder, size=size - len(ORL_SUBJECTS), dim=embedder.embedding_dim,
                                               seed=seed, cohort=embedder.cohort)
                stack = Stack(folder, checkpoint=ckpt, threshold=threshold, api_key=api_key, engine=engine)
                try:
                    row = measure(stack, data, verifies=verifies, identifies=identifies)
                finally:
                    stack.close()
                row.update(engine=engine, bulk_enrol_s=bulk_s)
                results.append(row)
    return {"checkpoint": label, "threshold_override": threshold, "results": results,
            "bulk_enrolment": "terminal encrypt_block + matcher store (offline); no bulk HTTP endpoint"}


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1,000 only, fewer repeats")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--checkpoint", type=Path, help="model checkpoint (default: the shipped model)")
    parser.add_argument("--data", type=Path, default=data_root(),
                        help="datasets folder holding orl/ (default $FACEPP_DATA)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engines", default="local,ray",
                        help="matcher engines to compare in the same run (default local,ray)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not (args.data / "orl" / "s31" / "1.pgm").is_file():
        print(f"ORL not found under {args.data}: set FACEPP_DATA or --data", file=sys.stderr)
        return 2
    started = time.perf_counter()
    result = run(sizes=(1000,) if args.quick else (1000, 10000), checkpoint=args.checkpoint, data=args.data,
                 verifies=10 if args.quick else 30, identifies=5 if args.quick else 20, seed=args.seed,
                 engines=tuple(args.engines.split(",")))
    result["total_s"] = time.perf_counter() - started
    rows = [{
        "gallery": r["gallery_size"], "engine": r["engine"],
        "verify_p50_s": r["verify"]["p50_s"], "verify_p99_s": r["verify"]["p99_s"],
        "identify_p50_s": r["identify"]["p50_s"], "identify_p99_s": r["identify"]["p99_s"],
        "conc50_errors": r["concurrent"]["errors"], "conc50_wall_s": r["concurrent"]["wall_s"],
        "conc50_p50_s": r["concurrent"]["p50_s"], "conc50_p99_s": r["concurrent"]["p99_s"],
        "conc50_over_seq2": r["concurrent"]["over_sequential2"],
        "enrol_api_s": r["enrol_api_s"], "bulk_enrol_s": r["bulk_enrol_s"],
    } for r in result["results"]]
    print_table(f"Terminal API over the encrypted matcher (loopback; model: {result['checkpoint']})", rows)
    print(f"\nbulk enrolment: {result['bulk_enrolment']}; total {result['total_s']:.1f} s")
    write_json(args.json, result)
    return 0 if all(r["concurrent"]["errors"] == 0 for r in result["results"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
