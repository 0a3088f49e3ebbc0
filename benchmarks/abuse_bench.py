"""Abuse benchmark: fuzz every parser of untrusted bytes, then flood the three services while they serve.

    python -m benchmarks.abuse_bench [--quick] [--json PATH] [--data DIR] [--examples N] [--flood N]

**Fuzzing** (:mod:`benchmarks.fuzz_targets`, Hypothesis): the Paillier and CKKS wire
formats, the federation's JSON bodies, the image decoder and the settings files in
process, and a live parameter server and a live matcher over HTTP. Per target: inputs
tried, unexpected exceptions (anything but a project error), 5xx answers, and state
changes after a refused request (target 0 each).

**Abuse load**: a parameter server (``facepp-server``), a matcher and a terminal
(``facepp-terminal`` with the shipped model, 4 ORL subjects s31-s34 enrolled through its
API over a bulk gallery) as separate processes on loopback. 1,000 malformed or
unauthorised requests (``--flood``) spread over the three, 8 client threads, stopped
after at most ``--flood-seconds``; while they run, 50 valid verifications at once
through the terminal API (genuine and impostor ORL probes), each checked against the
truth (if any is wrong, all 50 are sent again once the flood is over, to tell a model
error from an effect of the flood). Before and after, every row of the server's and the terminal's databases, the
server's files and the matcher's gallery, bundle and keys are hashed: they must be
identical. The matcher audits each call it serves, so its audit log must grow by
exactly the 50 verifications' rows (a row for an unauthenticated request is a state
change). 0 answers of 5xx, 0 requests without an answer.

``--quick`` (CI size): 150 examples per target. The flood is 1,000 requests either way.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests

from benchmarks import fuzz_targets as fz
from benchmarks.report import print_table, write_json
from benchmarks.web_bench import API_TOKEN, ORL_SUBJECTS, Stack, _free_port, _orl, _wait_http, bulk_gallery
from facepp.data import data_root

logger = logging.getLogger("benchmarks.abuse_bench")
FUZZ_DIM = 32
MODEL_SIZE = 300
PARTICIPANTS = ("alice", "bob", "carol")
CONCURRENT = 50
CLIENT_THREADS = 8


# -- services --------------------------------------------------------------------------------------


class Service:
    """A console script serving on a loopback port, stopped on exit."""

    def __init__(self, name: str, args: list[str], health: str, folder: Path, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", *args, "--port", str(self.port), "-q"], stdout=self.log,
                                        stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        _wait_http(self.url + health, self.process)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@dataclass(frozen=True)
class Federation:
    server: Service
    state: Path
    tokens: dict[str, str]
    operator: str
    secret_key: Any


def start_federation(folder: Path) -> Federation:
    """Key ceremony for a 300-value model and 3 participants, and its parameter server."""
    from facepp.crypto.paillier.secret_cipher import generate_keypair
    from training.ceremony import create_federation

    secret_key = generate_keypair(2048)
    fed = create_federation(folder / "federation", participants=PARTICIPANTS, secret_key=secret_key, total_rounds=2,
                            initial_weights=np.zeros(MODEL_SIZE, dtype=np.float32), round_timeout_s=24 * 3600.0)
    server = Service("parameter-server", ["training.server.cli", "--federation", str(fed.server_config), "--state",
                                          str(fed.server_state)], "/api/v1/round", folder)
    tokens = {name: fed.participant_dir(name).joinpath("token").read_text() for name in PARTICIPANTS}
    return Federation(server, fed.server_state, tokens, fed.operator_token.read_text(), secret_key)


def start_fuzz_matcher(folder: Path, holder: Any) -> tuple[Service, Path, list[str], dict[str, bytes]]:
    """A matcher at dimension 32 with two subjects, for fuzzing its API; returns a terminal key and an
    admin key, and valid body samples."""
    from webapp.matcher.api import EXTENSION
    from webapp.matcher.app import create_app
    from webapp.matcher.auth import Scope, create_api_key

    db = folder / "fuzz-matcher.db"
    state = create_app({"db": str(db)}).extensions[EXTENSION]
    api_keys = [create_api_key(state.store, "terminal"), create_api_key(state.store, "admin", set(Scope))]
    state.service.register_bundle(holder.export_public_bundle(), dim=FUZZ_DIM)
    x = np.random.default_rng(1).normal(size=(3, FUZZ_DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for i in range(2):
        state.service.enrol(f"s{i + 1}", holder.encrypt_template(x[i]))
    block = state.service.export_block(0)
    state.store.engine.dispose()
    service = Service("fuzz-matcher", ["webapp.matcher.cli", "serve", "--db", str(db)], "/api/v1/health", folder)
    samples = {"bundle": holder.export_public_bundle(), "template": holder.encrypt_template(x[2]),
               "probe": holder.encrypt_probe(x[0]), "identify": holder.encrypt_probe(x[0], verification=False),
               "block": block}
    return service, db, api_keys, samples


# -- fuzzing ---------------------------------------------------------------------------------------


def fuzz(folder: Path, fed: Federation, data: Path, *, examples: int, seed: int) -> list[fz.Tally]:
    """Tally every fuzz target: the parsers in process, then the live parameter server and a live matcher."""
    from facepp.crypto.ckks.secret_key import CkksKeyHolder
    from training.fedavg import FederationPlan, packing_plan

    plan = FederationPlan(packing_plan(key_bits=2048, participants=len(PARTICIPANTS)), participants=len(PARTICIPANTS),
                          sample_scale=100.0)
    holder = CkksKeyHolder.generate()
    context, ckks = fz.ckks_samples(holder, FUZZ_DIM)
    orl = [data / "orl" / "s1" / "1.pgm"] if (data / "orl" / "s1" / "1.pgm").is_file() else []
    uploads = fz.paillier_samples(fed.secret_key, plan)
    targets = [
        fz.paillier_target(fed.secret_key, uploads, plan),
        fz.ckks_target(context, ckks, FUZZ_DIM),
        fz.federation_bodies_target(),
        fz.image_target(fz.image_samples() + [p.read_bytes() for p in orl]),
        fz.settings_target(fz.settings_samples()),
    ]
    tallies = []
    for target in targets:
        tallies.append(_timed(target, examples, seed))
    tallies.append(_timed(fz.federation_http_target(fed.server.url, fed.state, fed.tokens, [uploads[0], _upload(fed)]),
                          examples, seed))
    matcher, db, api_keys, samples = start_fuzz_matcher(folder, holder)
    try:
        tallies.append(_timed(fz.matcher_http_target(matcher.url, db, api_keys, samples, FUZZ_DIM), examples, seed))
    finally:
        matcher.stop()
    return tallies


def _upload(fed: Federation) -> bytes:
    """A valid upload for the benchmark's federation (300 values)."""
    from facepp.crypto.paillier.secret_cipher import VectorCipher
    from training.fedavg import packing_plan, weighted_contribution

    with VectorCipher(fed.secret_key, packing_plan(key_bits=2048, participants=len(PARTICIPANTS)), workers=1) as cipher:
        return cipher.encrypt(weighted_contribution(np.zeros(MODEL_SIZE), 5, sample_scale=10)).to_bytes()


def _timed(target: fz.Target, examples: int, seed: int) -> fz.Tally:
    started = time.perf_counter()
    found = fz.tally(target, max_examples=examples, seed=seed)
    logger.warning("fuzzed %s: %d inputs in %.1f s", target.name, found.inputs_tried, time.perf_counter() - started)
    return found


# -- abuse load ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Abuse:
    """One malformed or unauthorised request."""

    service: str
    kind: str
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    form: dict[str, str] | None = None


def abuse_requests(count: int, *, fed: Federation, matcher_url: str, terminal_url: str, rng: random.Random) -> list[Abuse]:
    """``count`` requests cycling over the three services and every kind of abuse below."""
    from training.protocol import UPLOAD_MAC_HEADER, hash_token, upload_mac

    junk = lambda n: rng.randbytes(n)  # noqa: E731
    token = fed.tokens["alice"]
    bearer = {"Authorization": f"Bearer {token}"}
    wrong = {"Authorization": "Bearer " + secrets.token_urlsafe(32)}
    ps, mu, tu = fed.server.url, matcher_url, terminal_url

    def garbage_upload() -> Abuse:
        body = junk(rng.choice([0, 10, 69, 5000]))
        return Abuse("parameter_server", "upload: garbage with a valid token and MAC", "POST", f"{ps}/api/v1/rounds/1/update",
                     {**bearer, UPLOAD_MAC_HEADER: upload_mac(hash_token(token), 1, body)}, body)

    factories: dict[str, list[Callable[[], Abuse]]] = {
        "parameter_server": [
            lambda: Abuse("parameter_server", "status page without a token", "GET", ps + rng.choice(["/", "/status.json", "/metrics.png"]), {}),
            lambda: Abuse("parameter_server", "status page, wrong token", "GET", ps + "/status.json", wrong),
            lambda: Abuse("parameter_server", "status page, bad Basic credentials", "GET", ps + "/", {"Authorization": "Basic %%%"}),
            lambda: Abuse("parameter_server", "upload without a token", "POST", f"{ps}/api/v1/rounds/1/update", {}, junk(300)),
            lambda: Abuse("parameter_server", "upload, wrong token", "POST", f"{ps}/api/v1/rounds/1/update", wrong, junk(300)),
            lambda: Abuse("parameter_server", "upload without a MAC", "POST", f"{ps}/api/v1/rounds/1/update", bearer, junk(300)),
            lambda: Abuse("parameter_server", "upload, MAC of another round", "POST", f"{ps}/api/v1/rounds/1/update",
                          {**bearer, UPLOAD_MAC_HEADER: upload_mac(hash_token(token), 2, b"x")}, b"x"),
            garbage_upload,
            lambda: Abuse("parameter_server", "upload over the size limit", "POST", f"{ps}/api/v1/rounds/1/update", bearer,
                          bytes(200_000)),
            lambda: Abuse("parameter_server", "metrics: not JSON", "POST", f"{ps}/api/v1/rounds/1/metrics", bearer, junk(40)),
            lambda: Abuse("parameter_server", "metrics for a future round", "POST", f"{ps}/api/v1/rounds/99/metrics", bearer,
                          b'{"version": 1, "metrics": {"loss": 1}}'),
            lambda: Abuse("parameter_server", "model without a token", "GET", f"{ps}/api/v1/model", {}),
            lambda: Abuse("parameter_server", "unknown route", rng.choice(["GET", "PUT", "DELETE"]), f"{ps}/api/v1/{rng.randrange(10**6)}", bearer),
        ],
        "matcher": [
            lambda: Abuse("matcher", "list subjects without a key", "GET", f"{mu}/api/v1/subjects", {}),
            lambda: Abuse("matcher", "export a block, wrong key", "GET", f"{mu}/api/v1/blocks/0", wrong),
            lambda: Abuse("matcher", "delete without a key", "DELETE", f"{mu}/api/v1/subjects/{rng.randrange(10**6):x}", {}),
            lambda: Abuse("matcher", "enrol garbage, wrong key", "POST", f"{mu}/api/v1/subjects/abuse-{rng.randrange(10**6)}", wrong, junk(2000)),
            lambda: Abuse("matcher", "identify with 2 MB, no key", "POST", f"{mu}/api/v1/identify", {}, junk(2 << 20)),
            lambda: Abuse("matcher", "replace the bundle, wrong key", "PUT", f"{mu}/api/v1/bundle?dim=128", wrong, junk(5000)),
            lambda: Abuse("matcher", "install a block, malformed header", "PUT", f"{mu}/api/v1/blocks/0", {"Authorization": "Basic x"}, junk(1000)),
            lambda: Abuse("matcher", "odd path", "GET", f"{mu}/api/v1/subjects/..%2F..%2Fetc", {}),
        ],
        "terminal": [
            lambda: Abuse("terminal", "API verify without a token", "POST", f"{tu}/api/verify", {}, form={"subject_id": "orl-s31"},
                          files=[("image", ("a.jpg", junk(500), "image/jpeg"))]),
            lambda: Abuse("terminal", "API verify, wrong token", "POST", f"{tu}/api/verify", wrong, form={"subject_id": "orl-s31"},
                          files=[("image", ("a.jpg", junk(500), "image/jpeg"))]),
            lambda: Abuse("terminal", "API verify, garbage image", "POST", f"{tu}/api/verify", {"Authorization": f"Bearer {API_TOKEN}"},
                          form={"subject_id": "orl-s31"}, files=[("image", ("a.jpg", junk(3000), "image/jpeg"))]),
            lambda: Abuse("terminal", "API enrol, garbage image", "POST", f"{tu}/api/enroll", {"Authorization": f"Bearer {API_TOKEN}"},
                          form={"subject_id": f"abuse-{rng.randrange(10**6)}"}, files=[("image", ("a.png", junk(3000), "image/png"))]),
            lambda: Abuse("terminal", "API enrol, no image", "POST", f"{tu}/api/enroll", {"Authorization": f"Bearer {API_TOKEN}"},
                          form={"subject_id": "x" * 300}),
            lambda: Abuse("terminal", "API delete without a token", "DELETE", f"{tu}/api/subjects/orl-s31", {}),
            lambda: Abuse("terminal", "form verify without login or CSRF", "POST", f"{tu}/verify", {}, form={"subject_id": "orl-s31"}),
            lambda: Abuse("terminal", "form delete without login or CSRF", "POST", f"{tu}/subjects/delete", {}, form={"subject_id": "orl-s31"}),
            lambda: Abuse("terminal", "login, wrong password", "POST", f"{tu}/login", {}, form={"username": "admin", "password": junk(8).hex()}),
            lambda: Abuse("terminal", "upload over the size limit", "POST", f"{tu}/api/verify", {"Authorization": f"Bearer {API_TOKEN}"},
                          form={"subject_id": "orl-s31"}, files=[("image", ("big.jpg", bytes(9 << 20), "image/jpeg"))]),
            lambda: Abuse("terminal", "subjects page, odd page", "GET", f"{tu}/subjects?page=-{rng.randrange(10**9)}", {}),
        ],
    }
    services = list(factories)
    return [rng.choice(factories[services[i % len(services)]])() for i in range(count)]


def send(abuse: Abuse) -> tuple[Abuse, int | None]:
    """The answer's status code, or None when no answer came."""
    try:
        response = requests.request(abuse.method, abuse.url, headers=abuse.headers, data=abuse.form or abuse.body,
                                    files=abuse.files, timeout=120, allow_redirects=False)
        return abuse, response.status_code
    except requests.RequestException:
        return abuse, None


def probes(data: Path) -> list[tuple[str, Path, bool]]:
    """50 verification requests (claimed subject, probe image, genuine?): genuine probes 5-10 and impostors."""
    genuine = [(f"orl-s{s}", data / "orl" / f"s{s}" / f"{i}.pgm", True) for s in ORL_SUBJECTS for i in range(5, 11)]
    impostor = [(f"orl-s{s}", data / "orl" / f"s{t}" / f"{i}.pgm", False)
                for s in ORL_SUBJECTS for t in range(35, 41) for i in (1, 2)][: CONCURRENT - len(genuine)]
    return (genuine + impostor)[:CONCURRENT]


def verify(terminal_url: str, probe: tuple[str, Path, bool]) -> bool:
    claimed, image, genuine = probe
    response = requests.post(f"{terminal_url}/api/verify", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=600,
                             data={"subject_id": claimed}, files=[("image", (image.name, image.read_bytes(), "image/x-portable-graymap"))])
    return response.status_code == 200 and response.json()["match"] is genuine


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def audit_rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT id, client, operation, outcome FROM audit_log ORDER BY id").fetchall()


def state_of(fed: Federation, matcher_db: Path, terminal_db: Path) -> dict[str, str]:
    return {
        "parameter_server": fz.sqlite_snapshot(fed.state / "state.sqlite3") + fz.files_snapshot(fed.state),
        "matcher": fz.sqlite_snapshot(matcher_db, skip=lambda t: "0" if t == "audit_log" else None),
        "terminal": fz.sqlite_snapshot(terminal_db),
    }


def abuse_load(folder: Path, fed: Federation, data: Path, *, count: int, seconds: float, seed: int) -> dict[str, Any]:
    """The flood and the concurrent verifications (see module docstring)."""
    from facepp.model.checkpoint import load_checkpoint
    from facepp.model.cohort import cohort_of
    from facepp.models import shipped_model
    from webapp.terminal.config import TerminalConfig

    stack_dir = folder / "stack"
    stack_dir.mkdir()
    api_key, _ = bulk_gallery(stack_dir, size=60, dim=128, seed=seed, cohort=cohort_of(load_checkpoint(shipped_model())))
    stack = Stack(stack_dir, checkpoint=shipped_model(), threshold=None, api_key=api_key)
    try:
        for s in ORL_SUBJECTS:
            stack.api("POST", "/enroll", data={"subject_id": f"orl-s{s}"},
                      files=[_orl(data, s, i) for i in (1, 2, 3)]).raise_for_status()
        matcher_db = stack_dir / "matcher.db"
        terminal_db = sqlite_path(TerminalConfig(instance_dir=str(stack_dir / "terminal")).db_url)
        checks = probes(data)
        before, audit_before = state_of(fed, matcher_db, terminal_db), len(audit_rows(matcher_db))
        flood = abuse_requests(count, fed=fed, matcher_url=stack.matcher_url, terminal_url=stack.url, rng=random.Random(seed))
        answered_at: list[float] = []
        started = threading.Event()
        deadline = time.monotonic() + seconds

        def bounded(abuse: Abuse) -> tuple[Abuse, int | None]:
            if len(answered_at) >= count // 4:
                started.set()
            if time.monotonic() > deadline:
                return abuse, -1  # not sent: past the time bound
            answer = send(abuse)
            answered_at.append(time.monotonic())
            return answer

        t0 = time.perf_counter()
        with ThreadPoolExecutor(CLIENT_THREADS) as flood_pool, ThreadPoolExecutor(CONCURRENT) as verify_pool:
            flooding = [flood_pool.submit(bounded, a) for a in flood]
            started.wait(timeout=seconds)
            window = [time.monotonic()]
            verifications = list(verify_pool.map(lambda p: verify(stack.url, p), checks))
            window.append(time.monotonic())
            results = [f.result() for f in flooding]
        wall = time.perf_counter() - t0
        after, new_audit = state_of(fed, matcher_db, terminal_db), audit_rows(matcher_db)[audit_before:]
        # A wrong answer under load is the flood's fault only if the same request is right when quiet.
        quiet_ok = sum(verify(stack.url, p) for p in checks) if sum(verifications) < len(checks) else None
    finally:
        stack.close()
    sent = [(a, code) for a, code in results if code != -1]
    expected_audit = [r for r in new_audit if r[2] == "verify" and r[1] is not None]
    per_service: dict[str, dict[str, Any]] = {}
    for service in ("parameter_server", "matcher", "terminal"):
        codes = Counter(code for a, code in sent if a.service == service)
        per_service[service] = {
            "requests": sum(codes.values()),
            "server_errors": sum(n for c, n in codes.items() if c is not None and c >= 500),
            "no_answer": codes.get(None, 0),
            "accepted_2xx": sum(n for c, n in codes.items() if c is not None and 200 <= c < 300),
            "state_changed": int(before[service] != after[service])
                             + (len(new_audit) - len(expected_audit) if service == "matcher" else 0),
            "statuses": {str(c): n for c, n in sorted(codes.items(), key=lambda kv: str(kv[0]))},
        }
    return {
        "requests": len(sent),
        "not_sent_after_time_bound": len(results) - len(sent),
        "wall_s": wall,
        "server_errors": sum(s["server_errors"] for s in per_service.values()),
        "no_answer": sum(s["no_answer"] for s in per_service.values()),
        "accepted_2xx": sum(s["accepted_2xx"] for s in per_service.values()),
        "state_changes": sum(s["state_changed"] for s in per_service.values()),
        "matcher_audit_rows_added": len(new_audit),
        "matcher_audit_rows_of_the_verifications": len(expected_audit),
        "concurrent_verifications": len(checks),
        "flood_answers_during_the_verifications": sum(window[0] <= t <= window[1] for t in answered_at),
        "concurrent_verifications_ok": sum(verifications),
        "quiet_verifications_ok": quiet_ok,
        "per_service": per_service,
        "kinds": sorted({f"{a.service}: {a.kind}" for a in flood}),
    }


# -- report ----------------------------------------------------------------------------------------


def run(*, data: Path, examples: int, flood: int, flood_seconds: float, seed: int) -> dict[str, Any]:
    """Both phases on fresh services in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="abuse_bench_") as tmp:
        folder = Path(tmp)
        fed = start_federation(folder)
        try:
            tallies = fuzz(folder, fed, data, examples=examples, seed=seed)
            load = abuse_load(folder, fed, data, count=flood, seconds=flood_seconds, seed=seed)
        finally:
            fed.server.stop()
    targets = [{k: v for k, v in asdict(t).items() if k != "failures"} | {"failures": t.failures} for t in tallies]
    targets.append({"target": "abuse_load", "inputs_tried": load["requests"], "accepted": load["accepted_2xx"],
                    "refused": load["requests"] - load["accepted_2xx"] - load["server_errors"] - load["no_answer"],
                    "unexpected_exceptions": load["no_answer"], "server_errors": load["server_errors"],
                    "state_changes": load["state_changes"], "failures": []})
    return {
        "inputs_tried": sum(t["inputs_tried"] for t in targets),
        "unexpected_exceptions": sum(t["unexpected_exceptions"] for t in targets),
        "server_errors": sum(t["server_errors"] for t in targets),
        "state_changes": sum(t["state_changes"] for t in targets),
        "concurrent_verifications_ok": load["concurrent_verifications_ok"],
        "concurrent_verifications": load["concurrent_verifications"],
        "examples_per_target": examples,
        "targets": targets,
        "abuse_load": load,
    }


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI size: 150 examples per fuzz target")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--data", type=Path, default=data_root(), help="datasets folder holding orl/ (default $FACEPP_DATA)")
    parser.add_argument("--examples", type=int, help="fuzz inputs per target (default 1,000; --quick 150)")
    parser.add_argument("--flood", type=int, default=1000, help="malformed or unauthorised requests (default 1,000)")
    parser.add_argument("--flood-seconds", type=float, default=600.0, help="time bound of the flood (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 0 when every target is clean and every verification was right, else 1."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=UserWarning, module="PIL")  # Pillow's notes on corrupt tags: expected here
    if not (args.data / "orl" / "s31" / "1.pgm").is_file():
        print(f"abuse_bench: error: no ORL faces under {args.data} (set FACEPP_DATA or --data)", file=sys.stderr)
        return 1
    examples = args.examples or (150 if args.quick else 1000)
    result = run(data=args.data, examples=examples, flood=args.flood, flood_seconds=args.flood_seconds, seed=args.seed)
    print_table(f"Fuzzing and abuse load ({examples} examples per fuzz target, {args.flood} flood requests)",
                [{k: t[k] for k in ("target", "inputs_tried", "accepted", "refused", "unexpected_exceptions",
                                    "server_errors", "state_changes")} for t in result["targets"]])
    load = result["abuse_load"]
    print_table("Abuse load per service", [{"service": name, **{k: v for k, v in s.items() if k != "statuses"}}
                                           for name, s in load["per_service"].items()])
    print(f"\n{load['requests']} requests in {load['wall_s']:.1f} s; concurrent verifications right: "
          f"{result['concurrent_verifications_ok']}/{result['concurrent_verifications']} "
          f"(sent again after the flood, when any was wrong: {load['quiet_verifications_ok']}); matcher audit rows added: "
          f"{load['matcher_audit_rows_added']} ({load['matcher_audit_rows_of_the_verifications']} of the verifications)")
    for t in result["targets"]:
        for failure in t["failures"]:
            print(f"{t['target']}: {failure.splitlines()[0]}")
    write_json(args.json, result)
    clean = not (result["unexpected_exceptions"] or result["server_errors"] or result["state_changes"])
    return 0 if clean and result["concurrent_verifications_ok"] == result["concurrent_verifications"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
