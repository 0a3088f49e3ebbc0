"""`make demo`: encrypted collaborative training, then the web app, on this machine.

1. Three participants fine-tune the shipped face model together on ORL s1-s30
   through a parameter server that holds only Paillier ciphertexts (`facepp
   simulate`: real processes, real HTTP on loopback), beside a plaintext FedAvg twin.
2. The decision threshold is calibrated at FAR 1% on the training identities s1-s30
   (never on the people it will decide about), then its FAR and FRR on s31-s40 are reported.
3. The untrusted matcher and the trusted terminal start on localhost; the
   held-out subjects are enrolled through the terminal's API (their templates
   reach the matcher only as CKKS ciphertexts), then one genuine and one
   impostor verification and one identification run.
4. The URL and the operator login are printed; Ctrl-C stops both services.

Environment: FACEPP_DATA (datasets), FACEPP_DEMO_ROUNDS (default 3),
FACEPP_DEMO_LOCAL_EPOCHS (default 8), FACEPP_DEMO_LR (default 3e-4; the schedule was
chosen on validation folds of s1-s30, see docs/training.md), FACEPP_DEMO_DIR (default out/demo).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from facepp.data import data_root
from facepp.evaluation.verify import evaluate_folder, store_calibration
from facepp.model import TrainConfig
from facepp.models import shipped_model
from training.simulation.simulate import SimulationConfig, simulate

log = logging.getLogger("demo")
TRAINING = [f"s{i}" for i in range(1, 31)]
ENROLLED = [f"s{i}" for i in range(31, 41)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the {what} exited during start-up; see its log")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.3)
    raise SystemExit(f"the {what} did not start within {timeout:.0f} s")


def env_number(name: str, default: str, kind: type[int] | type[float]) -> int | float:
    """A positive ``kind`` from the environment variable ``name`` (``default`` when unset).

    Raises:
        SystemExit: the value is not a positive number of that kind.
    """
    text = os.environ.get(name, default)
    try:
        value = kind(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise SystemExit(f"{name}={text!r}: expected a positive {kind.__name__}, e.g. {default}")
    return value


def train(data: Path, workdir: Path) -> Path:
    rounds = int(env_number("FACEPP_DEMO_ROUNDS", "3", int))
    epochs = int(env_number("FACEPP_DEMO_LOCAL_EPOCHS", "8", int))
    lr = float(env_number("FACEPP_DEMO_LR", "3e-4", float))
    log.info("1/3 encrypted collaborative fine-tuning of the shipped model: 3 participants, %d rounds x %d local "
             "epochs at lr %g on %s", rounds, epochs, lr, data)
    report = simulate(SimulationConfig(data=data, participants=3, rounds=rounds, local_epochs=epochs, init=shipped_model(),
                                       train=TrainConfig(batch_size=32, lr=lr, num_threads=1), workdir=workdir))
    (workdir.parent / "simulate.json").write_text(json.dumps(report, indent=2) + "\n")
    log.info("encrypted FedAvg accuracy %.1f%% vs plaintext FedAvg %.1f%% on s31-s40 (900 pairs); "
             "encrypted round %.0f s vs plaintext %.0f s; %.1f MB uploaded per round; plaintext leak found: %s",
             100 * report["encrypted_accuracy"], 100 * report["plaintext_accuracy"], report["encrypted_round_s"],
             report["plaintext_round_s"], report["upload_bytes_per_round"] / 1e6, report["plaintext_leak_found"])
    return workdir / "federation" / "participants" / "org1" / "global_model.pt"


def calibrate(model: Path, data: Path) -> float:
    values = store_calibration(model, evaluate_folder(model, data, identities=TRAINING), far=0.01)
    threshold = float(values["threshold"])
    held_out = evaluate_folder(model, data, identities=ENROLLED)
    impostor, genuine = held_out.scores[~held_out.labels], held_out.scores[held_out.labels]
    log.info("2/3 threshold %.3f calibrated at FAR 1%% on s1-s30; on s31-s40 it gives FAR %.2f%% and FRR %.2f%% "
             "(10-fold accuracy %.1f%%)", threshold, 100 * (impostor >= threshold).mean(),
             100 * (genuine < threshold).mean(), 100 * held_out.summary()["accuracy"])
    return threshold


def serve(model: Path, data: Path, root: Path) -> None:
    bin_dir = Path(sys.executable).parent
    matcher_db = root / "matcher.db"
    api_key = subprocess.run([bin_dir / "facepp-matcher", "create-api-key", "--name", "demo-terminal", "--db", str(matcher_db)],
                             check=True, capture_output=True, text=True).stdout.strip()
    password, token = secrets.token_urlsafe(9), secrets.token_urlsafe(24)
    matcher_port, terminal_port = free_port(), free_port()
    instance = root / "terminal"
    env = {**os.environ, "FACEPP_TERMINAL_MATCHER_API_KEY": api_key, "FACEPP_TERMINAL_API_TOKEN": token}
    common = ["--checkpoint", str(model), "--instance-dir", str(instance), "--matcher-url", f"http://127.0.0.1:{matcher_port}"]
    subprocess.run([bin_dir / "facepp-terminal", "create-operator", *common, "--username", "operator", "--password-stdin"],
                   input=password + "\n", text=True, check=True, env=env, capture_output=True)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    matcher = subprocess.Popen([bin_dir / "facepp-matcher", "serve", "--db", str(matcher_db), "--port", str(matcher_port)],
                               stdout=(logs / "matcher.log").open("wb"), stderr=subprocess.STDOUT)
    terminal = None
    try:
        wait_http(f"http://127.0.0.1:{matcher_port}/api/v1/health", matcher, "matcher")
        terminal = subprocess.Popen([bin_dir / "facepp-terminal", "serve", *common, "--port", str(terminal_port),
                                     "--insecure-cookies"], env=env, stdout=(logs / "terminal.log").open("wb"),
                                    stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{terminal_port}"
        wait_http(url + "/login", terminal, "terminal")
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        orl = data
        for subject in ENROLLED:
            files = [("image", (f"{n}.pgm", (orl / subject / f"{n}.pgm").read_bytes())) for n in (1, 2, 3)]
            response = api.post(url + "/api/enroll", data={"subject_id": subject}, files=files, timeout=300)
            response.raise_for_status()
        log.info("3/3 enrolled %d subjects (s31-s40, 3 images each): the matcher holds only CKKS ciphertexts", len(ENROLLED))
        probe = ("image", ("probe.pgm", (orl / "s31" / "7.pgm").read_bytes()))
        for claimed in ("s31", "s32"):
            result = api.post(url + "/api/verify", data={"subject_id": claimed}, files=[probe], timeout=300).json()
            log.info("verify s31/7.pgm as %s: %s", claimed, result)
        result = api.post(url + "/api/identify", data={"top_k": "3"}, files=[probe], timeout=300).json()
        log.info("identify s31/7.pgm: %s", result)
        print(f"\n  facepp is running: open {url} and log in as 'operator' with password '{password}'"
              f"\n  (matcher on 127.0.0.1:{matcher_port}; logs in {logs}). Ctrl-C stops both.\n", flush=True)
        if os.environ.get("FACEPP_DEMO_EXIT"):
            return
        terminal.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in (terminal, matcher):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


def main() -> int:
    # `kill` stops the demo as Ctrl-C does: the services it started stop with it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("facepp", "training", "webapp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    data = data_root("orl")
    if not data.is_dir():
        raise SystemExit(f"ORL faces not found at {data}: set FACEPP_DATA to the folder holding orl/")
    root = Path(os.environ.get("FACEPP_DEMO_DIR", "out/demo")).resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    model = train(data, root / "federation-run")
    calibrate(model, data)
    serve(model, data, root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
