"""TLS overhead: a federation round and a 1:1 verification over (mutual) TLS against plain HTTP, same run.

    python -m benchmarks.tls_bench [--quick] [--json PATH] [--data DIR]

Certificates come from ``facepp.pki`` (the ``facepp-federation pki`` code, ECDSA P-256).

* **Federation round.** A real ``facepp-server`` process (gunicorn) serves a one-round
  federation of two participants, once over plain HTTP and once over mutual TLS (the server
  checks each participant's client certificate and token; the participants pin the CA). The
  participants run the real client (download, decrypt, a fixed local step, encrypt, upload,
  wait for the aggregate, download and decrypt it) in two threads of this process, one
  encryption worker each; plain and TLS runs alternate. Also timed: downloading the
  encrypted model alone, one new connection (one handshake) per download.
* **1:1 verification.** Two matcher + terminal stacks (``benchmarks.web_bench.Stack``, the
  shipped model, 1,000 templates): one on plain HTTP, one with HTTPS to the terminal and
  mutual TLS from the terminal to the matcher. One ORL subject is enrolled through each
  terminal's API, then ``POST /api/verify`` alternates between the stacks, each request on a
  new connection (the client pays a full handshake every time; the terminal keeps its
  connection to the matcher).

``--quick``: 20,000 model values, 2 round pairs, 10 verifications per stack; otherwise
200,000 values, 3 round pairs and 40 verifications.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import requests

from benchmarks.report import print_table, write_json
from benchmarks.web_bench import Stack, _free_port, _orl, _percentiles, _wait_http, bulk_gallery
from facepp.crypto.paillier.secret_cipher import SecretKey, generate_keypair
from facepp.data import data_root
from facepp.pki import issue_deployment
from training.ceremony import create_federation
from training.fedavg import FederationPlan, packing_plan
from training.participant.client import LocalUpdate, Participant

logger = logging.getLogger("benchmarks.tls_bench")
PARTICIPANTS = ("org1", "org2")
SAMPLE_SCALE = 100.0
GALLERY = 1000


class FixedStep:
    """Local "training": a fixed move towards a per-participant target (the round's cost is the protocol's)."""

    def __init__(self, index: int) -> None:
        self.index = index

    def train(self, weights: np.ndarray, round_: int) -> LocalUpdate:
        target = np.random.default_rng(self.index).normal(0, 0.1, weights.size)
        return LocalUpdate(weights=(weights + 0.1 * (target - weights)).astype(np.float32), samples=10 + self.index)


class Server:
    """``facepp-server`` in a process: plain HTTP, or mutual TLS with the certificates in ``pki``."""

    def __init__(self, root: Path, key: SecretKey, *, values: int, pki: Path | None) -> None:
        self.fed = create_federation(root, participants=PARTICIPANTS, total_rounds=1, secret_key=key,
                                     initial_weights=np.zeros(values, np.float32), round_timeout_s=3600.0)
        port = _free_port()
        self.url = f"{'https' if pki else 'http'}://127.0.0.1:{port}"
        self.pki = pki
        tls = ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
               "--tls-client-ca", str(pki / "ca.pem")] if pki else []
        self.log = open(root / "server.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "training.server.cli", "-q", "--federation", str(self.fed.server_config),
             "--state", str(self.fed.server_state), "--port", str(port), *tls],
            stdout=self.log, stderr=subprocess.STDOUT)
        _wait_http(self.url + "/status.json", self.process, **self.client_tls(PARTICIPANTS[0]))

    def client_tls(self, name: str) -> dict[str, Any]:
        """``verify`` and ``cert`` of participant ``name``'s requests."""
        if not self.pki:
            return {}
        return {"verify": str(self.pki / "ca.pem"), "cert": (str(self.pki / f"{name}.pem"), str(self.pki / f"{name}.key"))}

    def participant(self, name: str, key: SecretKey) -> Participant:
        tls = self.client_tls(name)
        return Participant(server_url=self.url, token=(self.fed.participant_dir(name) / "token").read_text().strip(),
                           secret_key=key, plan=FederationPlan(packing_plan(key_bits=key.public_key.key_bits,
                                                                            participants=len(PARTICIPANTS)),
                                                               participants=len(PARTICIPANTS), sample_scale=SAMPLE_SCALE),
                           poll_s=0.05, workers=1,
                           ca_file=tls.get("verify"), client_cert=tls.get("cert"))

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def federation_round(server: Server, key: SecretKey) -> float:
    """Seconds for both participants to finish a one-round federation."""
    errors: list[BaseException] = []

    def play(index: int, name: str) -> None:
        try:
            server.participant(name, key).run(FixedStep(index))
        except BaseException as exc:  # noqa: BLE001 (re-raised below)
            errors.append(exc)

    threads = [threading.Thread(target=play, args=(i, n)) for i, n in enumerate(PARTICIPANTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def model_downloads(server: Server, repeats: int) -> tuple[list[float], int]:
    """Seconds per download of the encrypted model, each on a new connection; and its size in bytes."""
    token = (server.fed.participant_dir(PARTICIPANTS[0]) / "token").read_text().strip()
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = requests.get(server.url + "/api/v1/model", headers={"Authorization": f"Bearer {token}"}, timeout=60,
                                **server.client_tls(PARTICIPANTS[0]))
        response.raise_for_status()
        times.append(time.perf_counter() - started)
        size = len(response.content)
    return times, size


def measure_federation(folder: Path, pki: Path, *, values: int, pairs: int) -> dict[str, Any]:
    key = generate_keypair(2048)
    rounds: dict[str, list[float]] = {"plain": [], "tls": []}
    downloads: dict[str, list[float]] = {"plain": [], "tls": []}
    size = 0
    for pair in range(pairs):
        for mode in ("plain", "tls") if pair % 2 == 0 else ("tls", "plain"):
            server = Server(folder / f"{mode}-{pair}", key, values=values, pki=pki if mode == "tls" else None)
            try:
                rounds[mode].append(federation_round(server, key))
                times, size = model_downloads(server, 10)
                downloads[mode] += times
            finally:
                server.close()
            logger.info("round pair %d %s: %.2f s", pair, mode, rounds[mode][-1])
    plain, tls = statistics.median(rounds["plain"]), statistics.median(rounds["tls"])
    plain_dl, tls_dl = statistics.median(downloads["plain"]), statistics.median(downloads["tls"])
    return {"values": values, "participants": len(PARTICIPANTS), "model_bytes": size,
            "round_plain_s": plain, "round_tls_s": tls, "round_ratio": tls / plain,
            "rounds": rounds, "download_plain_s": plain_dl, "download_tls_s": tls_dl, "download_ratio": tls_dl / plain_dl}


def measure_verification(folder: Path, pki: Path, data: Path, *, verifies: int) -> dict[str, Any]:
    from facepp.model.embedder import Embedder
    from facepp.models import model_or_shipped

    checkpoint = model_or_shipped(None)
    embedder = Embedder.from_checkpoint(checkpoint)
    stacks: dict[str, Stack] = {}
    try:
        for mode in ("plain", "tls"):
            sub = folder / mode
            sub.mkdir()
            api_key, _ = bulk_gallery(sub, size=GALLERY - 1, dim=embedder.embedding_dim, seed=0)
            stacks[mode] = Stack(sub, checkpoint=checkpoint, threshold=None, api_key=api_key,
                                 pki=pki if mode == "tls" else None)
            stacks[mode].api("POST", "/enroll", data={"subject_id": "orl-s31"},
                             files=[_orl(data, 31, i) for i in (1, 2, 3)]).raise_for_status()
        probe = [_orl(data, 31, 5)]
        times: dict[str, list[float]] = {"plain": [], "tls": []}
        for i in range(verifies + 1):
            for mode in ("plain", "tls") if i % 2 == 0 else ("tls", "plain"):
                started = time.perf_counter()
                answer = stacks[mode].api("POST", "/verify", data={"subject_id": "orl-s31"}, files=probe)
                answer.raise_for_status()
                if i:  # the first of each is a warm-up
                    times[mode].append(time.perf_counter() - started)
                if not answer.json()["match"]:
                    raise RuntimeError(f"{mode}: the genuine probe was rejected")
    finally:
        for stack in stacks.values():
            stack.close()
    plain, tls = _percentiles(times["plain"]), _percentiles(times["tls"])
    return {"gallery": GALLERY, "verify_plain": plain, "verify_tls": tls, "verify_ratio": tls["p50_s"] / plain["p50_s"]}


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller model, fewer repeats")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--data", type=Path, default=data_root(), help="datasets folder holding orl/ (default $FACEPP_DATA)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not (args.data / "orl" / "s31" / "1.pgm").is_file():
        print(f"ORL not found under {args.data}: set FACEPP_DATA or --data", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tls_bench_") as tmp:
        folder = Path(tmp)
        pki = folder / "pki"
        issue_deployment(pki, servers={n: ["localhost", "127.0.0.1"] for n in ("server", "matcher", "terminal")},
                         clients=[*PARTICIPANTS, "terminal-client"])
        os.environ.setdefault("FACEPP_LOG_LEVEL", "WARNING")
        fed = measure_federation(folder, pki, values=20_000 if args.quick else 200_000, pairs=2 if args.quick else 3)
        ver = measure_verification(folder, pki, args.data, verifies=10 if args.quick else 40)
    result = {"federation": fed, "verification": ver, "total_s": time.perf_counter() - started, "quick": args.quick}
    print_table("TLS overhead on loopback (same run; plain HTTP vs TLS)", [
        {"measure": f"one-round federation, 2 participants, {fed['values']:,} values (mutual TLS)",
         "plain_s": fed["round_plain_s"], "tls_s": fed["round_tls_s"], "tls/plain": fed["round_ratio"]},
        {"measure": f"encrypted model download, {fed['model_bytes'] / 1e6:.2f} MB, new connection (mutual TLS)",
         "plain_s": fed["download_plain_s"], "tls_s": fed["download_tls_s"], "tls/plain": fed["download_ratio"]},
        {"measure": f"1:1 verification p50, gallery {ver['gallery']:,} (HTTPS + mutual TLS to the matcher)",
         "plain_s": ver["verify_plain"]["p50_s"], "tls_s": ver["verify_tls"]["p50_s"], "tls/plain": ver["verify_ratio"]},
        {"measure": "1:1 verification p99",
         "plain_s": ver["verify_plain"]["p99_s"], "tls_s": ver["verify_tls"]["p99_s"],
         "tls/plain": ver["verify_tls"]["p99_s"] / ver["verify_plain"]["p99_s"]},
    ])
    print(f"\ntotal {result['total_s']:.1f} s")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
