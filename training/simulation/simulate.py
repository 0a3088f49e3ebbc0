"""``facepp simulate``: a whole federation on loopback, next to its plaintext twin.

Trusted simulation host: it runs the key ceremony, so it may decrypt. It starts
the parameter server and K participant processes (real HTTP, separate
processes), follows the rounds with a progress bar, evaluates the final model
identity-disjoint, runs plaintext FedAvg with the same seeds and partitions
(K worker processes, no network, no encryption), and audits every byte the
server received and stored. With ``fixed_point_twin`` it also runs the encrypted
protocol's fixed-point arithmetic in the clear: that twin must equal the
encrypted run bit for bit after round 1 and after the last round (any difference
in between would have grown by then), which separates what encryption
costs (nothing) from what fixed-point rounding does to training (chaotic
divergence from the float twin, no systematic loss).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import requests
from tqdm import tqdm

from facepp.crypto.paillier.encrypted_vector import EncryptedVector
from facepp.crypto.paillier.packing import PackingPlan
from facepp.crypto.paillier.secret_cipher import SecretKey, VectorCipher
from facepp.errors import ConfigError, FaceppError
from facepp.evaluation.verify import evaluate_folder
from facepp.model import TrainConfig
from facepp.vision.align import PreprocessConfig
from training.simulation.audit import find_leaks, read_tree
from training.ceremony import create_federation
from training.fedavg import average_from_sum, fedavg
from training.participant.local import (
    build_model,
    initial_weights,
    load_flat_weights,
    local_trainer,
    save_global_model,
)
from training.participant.client import LocalTrainer
from training.participant.privacy import DPConfig, epsilon_after
from training.participant.spec import (
    DataSplit,
    TrainingSpec,
    fine_tuning,
    participant_crops,
    preprocessing_for,
    split_for_federation,
)

log = logging.getLogger(__name__)


class SimulationError(FaceppError):
    """A simulated federation did not complete: a process failed or the server did not come up."""

    code = "simulation_failed"
    http_status = 500


@dataclass(frozen=True)
class SimulationConfig:
    data: Path
    participants: int = 3
    rounds: int = 3
    partition: str = "iid"
    local_epochs: int = 1
    seed: int = 0
    key_bits: int = 2048
    input_size: int = 64
    train: TrainConfig = TrainConfig(batch_size=32, lr=3e-3, num_threads=1)
    encryption_workers: int = 1
    workdir: Path | None = None
    cache_dir: Path | None = None
    dp: DPConfig | None = None
    fixed_point_twin: bool = False
    init: Path | None = None  # fine-tune this checkpoint (None: seeded random weights)
    held_out: tuple[str, ...] = ()  # a validation fold of training identities (see TrainingSpec.held_out)


def _dp_noise_seed(spec: TrainingSpec, index: int) -> int:
    """Reproducible DP noise so the twin repeats it (simulation only, see training.participant.privacy)."""
    return 1_000_003 * spec.seed + index


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


_trainer: LocalTrainer | None = None


def _init_twin(spec_json: str, data: str, index: int, cache_dir: str | None) -> None:
    global _trainer
    spec = TrainingSpec.from_json(spec_json)
    split = split_for_federation(data, spec)
    crops, labels = participant_crops(split, spec, index, cache_dir=Path(cache_dir) if cache_dir else None)
    _trainer = local_trainer(spec, crops, labels, index, dp_noise_seed=_dp_noise_seed(spec, index))


def _twin_train(weights: np.ndarray, round_: int) -> tuple[np.ndarray, int]:
    assert _trainer is not None
    update = _trainer.train(weights, round_)
    return update.weights, update.samples


def run_plaintext_twin(spec: TrainingSpec, data: Path, initial: np.ndarray, cache_dir: Path | None, *,
                       plan: PackingPlan | None = None, desc: str = "plaintext FedAvg") -> tuple[list[np.ndarray], list[float]]:
    """Plaintext FedAvg with the same seeds and partitions: weights after each round, and round times.

    Args:
        plan: Aggregate with this fixed-point plan in the clear (see :func:`training.fedavg.fedavg`).
    """
    context = multiprocessing.get_context("forkserver")
    pools = [ProcessPoolExecutor(1, mp_context=context, initializer=_init_twin,
                                 initargs=(spec.to_json(), str(data), i, str(cache_dir) if cache_dir else None))
             for i in range(len(spec.participants))]
    try:
        for pool in pools:  # build the trainers before timing (as participants do before round 1)
            pool.submit(time.sleep, 0).result()
        weights, history, times = initial, [], []
        for round_ in tqdm(range(1, spec.total_rounds + 1), desc=desc, unit="round"):
            start = time.perf_counter()
            results = [f.result() for f in [p.submit(_twin_train, weights, round_) for p in pools]]
            weights = fedavg(results, sample_scale=spec.sample_scale, plan=plan)
            times.append(time.perf_counter() - start)
            history.append(weights)
        return history, times
    finally:
        for pool in pools:
            pool.shutdown()


def federation_spec(config: SimulationConfig) -> TrainingSpec:
    """What the participants ``org1`` ... ``orgK`` of this simulation agree on (before
    :func:`simulate` sets the public ``sample_scale`` from their data sizes)."""
    names = tuple(f"org{i + 1}" for i in range(config.participants))
    spec = TrainingSpec(total_rounds=config.rounds, participants=names, partition=config.partition,
                        local_epochs=config.local_epochs, input_size=config.input_size, seed=config.seed, train=config.train,
                        dp=config.dp, held_out=config.held_out)
    return spec if config.init is None else fine_tuning(spec, config.init)


def ready_spec(config: SimulationConfig, cache_dir: Path | None) -> tuple[TrainingSpec, DataSplit]:
    """:func:`federation_spec` with its public ``sample_scale``, and the data split.

    Fills the crop cache once, before processes race for it. The largest local dataset
    becomes the public ``sample_scale``, so every FedAvg weight n_k / sample_scale is in (0, 1].
    """
    spec = federation_spec(config)
    split = split_for_federation(config.data, spec)
    sizes = [len(participant_crops(split, spec, i, cache_dir=cache_dir)[1]) for i in range(len(spec.participants))]
    return replace(spec, sample_scale=float(max(sizes))), split


def simulate(config: SimulationConfig) -> dict[str, Any]:
    """Run the encrypted federation and its plaintext twin; return the report (see module docstring).

    Raises:
        ConfigError: ``config.workdir`` exists and is not an empty folder.
        SimulationError: the server or a participant process failed (their logs are in the workdir).
        FaceppError: the dataset or a parameter is unusable (raised before any process starts).
    """
    workdir = Path(config.workdir or tempfile.mkdtemp(prefix="facepp-sim-"))
    if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
        raise ConfigError(f"workdir {workdir} is not an empty folder: give a new or empty one")
    cache_dir = config.cache_dir or workdir / "cache"
    spec, split = ready_spec(config, cache_dir)
    names = spec.participants
    initial = initial_weights(spec.train, spec.input_size, config.init)
    fed = create_federation(workdir / "federation", participants=names, initial_weights=initial,
                            total_rounds=config.rounds, quorum=len(names), round_timeout_s=24 * 3600,
                            key_bits=config.key_bits, spec_json=spec.to_json())
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    received = workdir / "server-received.bin"
    logs = workdir / "logs"
    logs.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        _python("from training.server.cli import main; main()", "--federation", str(fed.server_config),
                "--state", str(fed.server_state), "--port", str(port), "--record-requests", str(received)),
        stdout=(logs / "server.log").open("wb"), stderr=subprocess.STDOUT, env=env)
    participants = []
    try:
        _wait_for(url, server, logs)
        for name in names:
            participants.append(subprocess.Popen(
                _python("from training.participant.cli import main; main()", "--dir", str(fed.participant_dir(name)),
                        "--server", url, "--data", str(config.data), "--cache-dir", str(cache_dir), "--workers", str(config.encryption_workers),
                        "--keep-contributions", str(workdir / "audit" / name),
                        *(["--dp-noise-seed", str(_dp_noise_seed(spec, names.index(name)))] if spec.dp else [])),
                stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT, env=env))
        status = _follow(url, fed.operator_token.read_text(), config.rounds, participants)
        failed = [names[i] for i, p in enumerate(participants) if p.returncode not in (None, 0)]
    finally:
        for p in participants:
            if p.poll() is None:
                p.kill()
        server.terminate()
        server.wait(timeout=30)
    if failed:
        raise SimulationError(f"participants {failed} failed; see their logs in {logs}")

    secret = SecretKey.load(fed.participant_dir(names[0]) / "secret_key.json")
    # The twin starts from the model the participants decrypted (W_0 after fixed-point
    # encoding), so round-1 local updates are identical and only aggregation differs.
    start = _decrypt_model(secret, fed.server_state / "models" / "model-00000.bin")
    plain_history, plain_times = run_plaintext_twin(spec, config.data, start, cache_dir)
    round1 = _decrypt_model(secret, fed.server_state / "models" / "model-00001.bin")
    plan = EncryptedVector.from_bytes((fed.server_state / "models" / "model-00000.bin").read_bytes(), secret.public_key).plan
    preprocessing = preprocessing_for(split, spec)
    encrypted_model = fed.participant_dir(names[0]) / "global_model.pt"
    plaintext_model = workdir / "plaintext_model.pt"
    model = build_model(spec.train, spec.input_size)
    load_flat_weights(model, plain_history[-1])
    save_global_model(plaintext_model, model, config=spec.train, preprocessing=preprocessing, extra={})
    eval_kwargs: dict[str, Any] = ({"pairs_file": split.eval_pairs_file} if split.eval_pairs_file
                                   else {"identities": split.eval_identities})
    encrypted_eval = evaluate_folder(encrypted_model, config.data, cache_dir=cache_dir, **eval_kwargs).summary()
    plaintext_eval = evaluate_folder(plaintext_model, config.data, cache_dir=cache_dir, **eval_kwargs).summary()

    contributions = {f"{p.parent.name} {p.stem}": np.load(p) for p in sorted((workdir / "audit").rglob("*.npy"))}
    leaks = find_leaks(received.read_bytes() + read_tree([fed.root / "server"]), contributions, plan)
    rounds = status["rounds"]
    timed = rounds[1:] if len(rounds) > 1 else rounds  # round 1 also includes participant start-up
    upload_bytes = int(np.mean([r["bytes"] for r in rounds]))
    report = {
        "rounds": config.rounds,
        "participants": config.participants,
        "partition": config.partition,
        "data": str(config.data),
        "encrypted_accuracy": encrypted_eval["accuracy"],
        "plaintext_accuracy": plaintext_eval["accuracy"],
        "accuracy_gap_points": 100 * abs(encrypted_eval["accuracy"] - plaintext_eval["accuracy"]),
        "encrypted_auc": encrypted_eval["auc"],
        "plaintext_auc": plaintext_eval["auc"],
        "eval_pairs": encrypted_eval["pairs"],
        "max_abs_weight_diff": float(np.max(np.abs(round1 - plain_history[0]))),
        "fixed_point_step": 2.0 ** -plan.frac_bits,
        "model_parameters": int(initial.size),
        "upload_bytes_per_round": upload_bytes,
        "plaintext_bytes_per_round": config.participants * (initial.size + 1) * 4,
        "encrypted_round_s": float(np.mean([r["closed_at"] - r["opened_at"] for r in timed])),
        "plaintext_round_s": float(np.mean(plain_times[1:] if len(plain_times) > 1 else plain_times)),
        "plaintext_leak_found": bool(leaks),
        "leaks": leaks,
        "contributions_audited": len(contributions),
        "workdir": str(workdir),
        "encrypted_model": str(encrypted_model),
        "plaintext_model": str(plaintext_model),
        "dp": None if config.dp is None else {
            "clip": config.dp.clip, "noise_multiplier": config.dp.noise_multiplier, "delta": config.dp.delta,
            "epsilon": epsilon_after(config.rounds, config.dp)},
    }
    report["round_time_ratio"] = report["encrypted_round_s"] / report["plaintext_round_s"]
    if config.fixed_point_twin:
        report.update(_fixed_point_twin(spec, config, secret, fed.server_state / "models", start, round1, plan, cache_dir,
                                        workdir, preprocessing, eval_kwargs))
    if config.workdir is None:
        shutil.rmtree(workdir / "cache", ignore_errors=True)
    return report


def _fixed_point_twin(spec: TrainingSpec, config: SimulationConfig, secret: SecretKey, models: Path, start: np.ndarray,
                      round1: np.ndarray, plan: PackingPlan, cache_dir: Path, workdir: Path,
                      preprocessing: PreprocessConfig, eval_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The encrypted protocol's arithmetic in the clear; compared with the encrypted run after rounds 1 and R."""
    history, _ = run_plaintext_twin(spec, config.data, start, cache_dir, plan=plan, desc="fixed-point FedAvg")
    last = _decrypt_model(secret, models / f"model-{spec.total_rounds:05d}.bin")
    path = workdir / "fixed_point_model.pt"
    model = build_model(spec.train, spec.input_size)
    load_flat_weights(model, history[-1])
    save_global_model(path, model, config=spec.train, preprocessing=preprocessing, extra={})
    return {
        "fixed_point_twin_max_abs_diff": float(max(np.max(np.abs(round1 - history[0])), np.max(np.abs(last - history[-1])))),
        "fixed_point_twin_accuracy": evaluate_folder(path, config.data, cache_dir=cache_dir, **eval_kwargs).summary()["accuracy"],
    }


def _decrypt_model(secret: SecretKey, path: Path) -> np.ndarray:
    vector = EncryptedVector.from_bytes(path.read_bytes(), secret.public_key)
    with VectorCipher(secret, vector.plan, workers=1) as cipher:
        return average_from_sum(cipher.decrypt(vector))


def _wait_for(url: str, server: subprocess.Popen[bytes], logs: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SimulationError(f"the parameter server exited during start-up; see {logs / 'server.log'}")
        try:
            requests.get(url + "/status.json", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SimulationError(f"the parameter server did not start within 60 s; see {logs / 'server.log'}")


def _follow(url: str, operator_token: str, rounds: int, participants: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """Show a progress bar over rounds until every participant has exited, or one has failed;
    return the final status.

    Raises:
        SimulationError: the server stopped answering (30 polls in a row failed).
    """
    bar = tqdm(total=rounds, desc="encrypted federation", unit="round", mininterval=5)
    status: dict[str, Any] = {}
    shown: tuple[int, int] | None = None
    misses = 0
    while True:
        finished = all(p.poll() is not None for p in participants)
        failed = any(p.returncode for p in participants)  # the others would wait for its upload forever
        try:
            response = requests.get(url + "/status.json", headers={"Authorization": f"Bearer {operator_token}"},
                                    timeout=10)
            response.raise_for_status()
            status = response.json()
            misses = 0
        except requests.RequestException as exc:  # a busy server (storing an upload) is not a failure
            misses += 1
            if failed:
                break
            if misses >= 30:
                raise SimulationError(f"the parameter server stopped answering ({type(exc).__name__})") from None
            log.warning("status poll failed (%s); retrying", type(exc).__name__)
            time.sleep(2)
            continue
        done = sum(1 for r in status["rounds"] if r["closed_at"] is not None)
        if (done, status["uploads"]) != shown:
            shown = (done, status["uploads"])
            bar.update(done - bar.n)
            bar.set_postfix(uploads=f"{status['uploads']}/{status['participants']}")
        if finished or failed:
            break
        time.sleep(1.0)  # well under the status pages' rate limit
    bar.close()
    return status
