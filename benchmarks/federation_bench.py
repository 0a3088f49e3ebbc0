"""Many participants: encrypted federated rounds with 3 to 50 participants on loopback, a tiny model.

    python -m benchmarks.federation_bench [--quick] [--json PATH] [--counts 3 10 25 50]

For each participant count, a key ceremony (``create_federation``), the real
parameter server (``facepp-server``) in its own process, and the real
participant client (``training.participant.client.Participant``, Paillier
encryption, upload MACs and the checks of every aggregate against the
federation's ``FederationPlan`` included) in one thread per participant, whose
local step is a cheap deterministic move of a 1,000-weight model. Reported per
count: the median round time (round opened, or participants started for round 1,
to round closed, from the server's round history on ``/status.json``, read with
the operator token), the server's CPU seconds and peak resident memory (arbiter and worker, ``/proc``).

Then, with the largest count, a fifth of the participants drop out in the middle
of round 2 (they download the model and never upload): the round must still
close by quorum once its deadline passes, and the federation must finish.

``--quick`` runs 3, 10 and 50 participants over 2 rounds.
"""

from __future__ import annotations

import argparse
import hashlib
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
from facepp.crypto.paillier.secret_key import SecretKey, generate_keypair
from training.ceremony import Federation, create_federation
from training.fedavg import FederationPlan, packing_plan
from training.participant.client import LocalUpdate, Participant

MODEL_SIZE = 1000
SAMPLE_SCALE = 100.0
DROPOUT_ROUND = 2
STATUS_POLL_S = 1.0  # the status pages are rate limited (120 requests a minute per address)


class Dropout(Exception):
    """A participant leaving mid-round (after downloading the model, before uploading)."""


class TinyTrainer:
    """Moves the weights 10% towards a target fixed by the participant's name; may drop out in one round."""

    def __init__(self, name: str, *, drop_in_round: int | None = None) -> None:
        seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
        self.target = np.random.default_rng(seed).normal(0, 1, MODEL_SIZE)
        self.samples = 10 + seed % 50
        self.drop_in_round = drop_in_round

    def train(self, weights: np.ndarray, round_: int) -> LocalUpdate:
        if round_ == self.drop_in_round:
            raise Dropout(round_)
        return LocalUpdate(weights=(weights + 0.1 * (self.target - weights)).astype(np.float32), samples=self.samples)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and peak resident bytes of a process and its children, from /proc.

    The server is gunicorn: an arbiter and the worker it forked, which holds the federation.
    """
    cpu, peak = 0.0, 0
    for proc in [pid, *_children(pid)]:
        fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        peak += next(int(line.split()[1]) for line in Path(f"/proc/{proc}/status").read_text().splitlines()
                     if line.startswith("VmHWM:")) * 1024
    return cpu, peak


def _children(pid: int) -> list[int]:
    """Every descendant of a process (``/proc/PID/task/*/children``)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_children(int(child))]
    return found


def run_federation(root: Path, key: SecretKey, *, participants: int, rounds: int, dropouts: int,
                   round_timeout_s: float) -> dict[str, Any]:
    """One federation on loopback; returns round times, server CPU and memory, and who uploaded."""
    names = [f"p{i:03d}" for i in range(participants)]
    weights = np.random.default_rng(0).normal(0, 0.1, MODEL_SIZE).astype(np.float32)
    quorum = participants - dropouts if dropouts else None
    fed = create_federation(root, participants=names, initial_weights=weights, total_rounds=rounds,
                            quorum=quorum, round_timeout_s=round_timeout_s, secret_key=key)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "training.server.cli", "--federation", str(fed.server_config),
                               "--state", str(fed.server_state), "--port", str(port), "-q"],
                              stdout=log, stderr=subprocess.STDOUT)
    plan = FederationPlan(packing_plan(key_bits=key.public_key.key_bits, participants=participants),
                          participants=participants, sample_scale=SAMPLE_SCALE)
    try:
        status = _status_session(fed)
        _wait(url, server, status)
        dropped = set(names[-dropouts:]) if dropouts else set()
        errors: list[str] = []

        def play(name: str) -> None:
            folder = fed.participant_dir(name)
            participant = Participant(server_url=url, token=(folder / "token").read_text().strip(),
                                      secret_key=key, plan=plan, poll_s=0.2, workers=1)
            try:
                participant.run(TinyTrainer(name, drop_in_round=DROPOUT_ROUND if name in dropped else None))
            except Dropout:
                pass
            except Exception as exc:  # noqa: BLE001 - reported as a benchmark error
                errors.append(f"{name}: {type(exc).__name__}: {exc}")

        cpu0, _ = _proc_stats(server.pid)
        started, started_at = time.perf_counter(), time.time()
        threads = [threading.Thread(target=play, args=(n,), daemon=True) for n in names]
        for t in threads:
            t.start()
        history = _watch_rounds(url, status, timeout=rounds * (round_timeout_s + 120))
        for t in threads:
            t.join(timeout=60)
        total = time.perf_counter() - started
        cpu1, peak = _proc_stats(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    durations = [r["closed_at"] - max(r["opened_at"], started_at) for r in history if r["closed_at"] is not None]
    return {"participants": participants, "dropouts": dropouts, "quorum": quorum or participants // 2 + 1,
            "rounds_closed": len(durations), "round_s": durations, "median_round_s": statistics.median(durations),
            "total_s": total, "server_cpu_s": cpu1 - cpu0, "server_peak_rss_MB": peak / 1e6, "errors": errors}


def _status_session(fed: Federation) -> requests.Session:
    """A session that reads the server's status pages with the operator token."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {fed.operator_token.read_text().strip()}"
    return session


def _wait(url: str, process: subprocess.Popen[bytes], status: requests.Session) -> None:
    """Wait until the server answers the operator's status request."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"parameter server exited with {process.returncode}")
        try:
            status.get(url + "/status.json", timeout=1).raise_for_status()
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("parameter server did not start in 60 s")


def _watch_rounds(url: str, status: requests.Session, *, timeout: float) -> list[dict[str, Any]]:
    """The server's round history (``/status.json``) once the federation finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = status.get(url + "/status.json", timeout=10)
        answer.raise_for_status()
        doc = answer.json()
        if doc["finished"]:
            rounds: list[dict[str, Any]] = doc["rounds"]
            return rounds
        time.sleep(STATUS_POLL_S)
    raise RuntimeError(f"the federation did not finish within {timeout:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3, 10 and 50 participants, 2 rounds")
    parser.add_argument("--counts", type=int, nargs="+", help="participant counts (default 3 10 25 50)")
    parser.add_argument("--rounds", type=int, help="rounds per federation (default 2 quick, 3 full)")
    parser.add_argument("--round-timeout", type=float, default=15.0,
                        help="seconds before a round may close by quorum (the dropout run waits this long)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = parser.parse_args(argv)
    counts = args.counts or ([3, 10, 50] if args.quick else [3, 10, 25, 50])
    rounds = args.rounds or (2 if args.quick else 3)
    key = generate_keypair(2048)
    results = []
    with tempfile.TemporaryDirectory(prefix="federation_bench_") as tmp:
        for count in counts:
            results.append(run_federation(Path(tmp) / f"n{count}", key, participants=count, rounds=rounds,
                                          dropouts=0, round_timeout_s=600.0))
        largest = max(counts)
        dropout = run_federation(Path(tmp) / "dropout", key, participants=largest, rounds=max(rounds, DROPOUT_ROUND),
                                 dropouts=largest // 5, round_timeout_s=args.round_timeout)
    rows = [{k: r[k] for k in ("participants", "dropouts", "quorum", "rounds_closed", "median_round_s", "server_cpu_s",
                               "server_peak_rss_MB", "total_s")} | {"errors": len(r["errors"])}
            for r in [*results, dropout]]
    print_table(f"Encrypted federation on loopback, {MODEL_SIZE}-weight model (last row: a fifth drop out in round "
                f"{DROPOUT_ROUND})", rows)
    ok = all(not r["errors"] for r in [*results, dropout]) and dropout["rounds_closed"] == max(rounds, DROPOUT_ROUND)
    write_json(args.json, {"model_size": MODEL_SIZE, "results": results, "dropout": dropout,
                           "closed_by_quorum": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
