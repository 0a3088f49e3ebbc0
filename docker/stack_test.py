"""``make docker-test``: build the images, run the whole stack once, check it end to end, tear it down.

1. Build the three images (``compose build``) and report their sizes.
2. ``compose up -d``: the setup job (dataset partition, key ceremony, PKI, database),
   the parameter server, three participants, PostgreSQL, the matcher and the terminal.
3. One encrypted training round over mutual TLS: every participant must finish the
   federation (exit 0); a client without a certificate must be refused by the server.
4. No secret key where it must not be: no Paillier secret key in the server's
   container, no CKKS secret key in the matcher's, and no torch in either.
5. Through the terminal's published HTTPS port, with its certificate checked against the
   stack's CA (and refused without it): enrol the dataset's last identity (held out of
   training) from five images, verify a sixth (must match) and another identity's image
   (must not).
6. ``compose down -v`` (always), exit 1 on any failure.

Standard library only, so it runs before ``make install``. Environment: FACEPP_DATASET
(default $FACEPP_DATA/orl), FACEPP_ENGINE (podman or docker, default whichever is found),
FACEPP_COMPOSE (default podman-compose or ``docker compose``), and the build arguments
PYTHON_IMAGE, DEBIAN_IMAGE, TORCH_INDEX_URL (docker/compose.yaml).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
PROJECT = "facepp-test"
PARTICIPANTS = ("org1", "org2", "org3")
IMAGES = ("facepp-trusted:latest", "facepp-untrusted:latest", "facepp-postgres:latest")


class StackError(Exception):
    """A check of the stack failed."""


def log(message: str) -> None:
    print(f"[docker-test] {message}", file=sys.stderr, flush=True)


def natural_key(text: str) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


class Stack:
    """The compose project under test, driven through the engine's command-line tools."""

    def __init__(self, engine: str, compose: list[str], env: dict[str, str]) -> None:
        self.engine_cmd = engine
        self.compose_cmd = [*compose, "-f", str(COMPOSE_FILE), "-p", PROJECT]
        self.env = env

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.compose_cmd, *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        # podman-compose 1.0 exits 0 when a podman command it ran failed; it prints "exit code: N".
        failed = result.returncode != 0 or re.search(r"^exit code: [1-9]", result.stdout, re.MULTILINE)
        if check and failed:
            raise StackError(f"{' '.join(args[:2])} failed ({result.returncode}): "
                             f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return result

    def engine(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.engine_cmd, *args], capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise StackError(f"{self.engine_cmd} {' '.join(args[:3])} failed: {(result.stderr or result.stdout)[-2000:]}")
        return result

    def run(self, volume: str, *command: str, network: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in a one-off trusted container with the project's ``volume`` at /facepp (read-only)."""
        return self.engine("run", "--rm", "-v", f"{PROJECT}_{volume}:/facepp:ro",
                           *(["--network", f"{PROJECT}_{network}"] if network else []), IMAGES[0], *command, check=check)

    def exec(self, service: str, *command: str, root: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.engine("exec", *(["--user", "0"] if root else []), self.container(service), *command, check=check)

    def container(self, service: str) -> str:
        ids = self.engine("ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}",
                          "--filter", f"label=com.docker.compose.service={service}").stdout.split()
        if len(ids) != 1:
            raise StackError(f"expected one container of {service}, found {len(ids)}")
        return ids[0]

    def state(self, service: str) -> tuple[str, int]:
        """(status, exit code) of the service's container."""
        status, code = self.engine("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                                   self.container(service)).stdout.split()
        return status, int(code)

    def logs(self, service: str) -> str:
        result = self.engine("logs", self.container(service), check=False)
        return result.stdout + result.stderr

    def wait_exit(self, services: tuple[str, ...], timeout: float) -> None:
        """Wait until every service's container has exited 0 (a non-zero exit fails at once)."""
        deadline = time.monotonic() + timeout
        pending = list(services)
        while pending:
            for service in list(pending):
                status, code = self.state(service)
                if status == "exited" and code == 0:
                    pending.remove(service)
                elif status == "exited":
                    raise StackError(f"{service} exited with {code}:\n{self.logs(service)[-3000:]}")
            if time.monotonic() > deadline:
                raise StackError(f"{', '.join(pending)} did not finish within {timeout:.0f} s")
            time.sleep(2)

    def image_size(self, image: str) -> int:
        return int(self.engine("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())

    def down(self) -> None:
        self.compose("down", "-v", "-t", "1", timeout=300, check=False)
        if self.engine_cmd == "podman":  # podman-compose leaves the project's networks behind
            names = subprocess.run(["podman", "network", "ls", "-q", "--filter", f"label=io.podman.compose.project={PROJECT}"],
                                   capture_output=True, text=True, check=False).stdout.split()
            if names:
                subprocess.run(["podman", "network", "rm", "-f", *names], capture_output=True, check=False)


def multipart(fields: dict[str, str], files: list[tuple[str, Path]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    for name, path in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + path.read_bytes() + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Terminal:
    """The terminal's JSON API over HTTPS, its certificate checked against the stack's CA."""

    def __init__(self, port: int, ca_file: Path, token: str) -> None:
        self.base = f"https://localhost:{port}/api"
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self.token = token

    def call(self, path: str, fields: dict[str, str] | None = None, files: list[tuple[str, Path]] | None = None,
             context: ssl.SSLContext | None = None) -> tuple[int, dict[str, object]]:
        body, content_type = multipart(fields or {}, files or []) if fields or files else (None, "")
        request = urllib.request.Request(self.base + path, data=body, method="POST" if body else "GET",
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  **({"Content-Type": content_type} if body else {})})
        try:
            with urllib.request.urlopen(request, context=context or self.context, timeout=300) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, body = self.call("/subjects")
                if status == 200:
                    return
                raise StackError(f"GET /api/subjects answered {status}: {body}")
            except (urllib.error.URLError, ConnectionError, socket.timeout) as exc:
                if time.monotonic() > deadline:
                    raise StackError(f"the terminal did not answer over HTTPS within {timeout:.0f} s: {exc}") from exc
                time.sleep(2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_tls_between_roles(stack: Stack) -> None:
    """A participant's container without its client certificate is refused by the server (mutual TLS)."""
    probe = ("import requests, sys\n"
             "url, ca = 'https://server:8700/api/v1/round', '/facepp/tls/ca.pem'\n"
             "with_cert = requests.get(url, verify=ca, cert=('/facepp/tls/org1.pem', '/facepp/tls/org1.key'), timeout=30)\n"
             "print('with its certificate:', with_cert.status_code)\n"
             "try:\n"
             "    requests.get(url, verify=ca, timeout=30)\n"
             "except (requests.exceptions.SSLError, requests.exceptions.ConnectionError) as exc:\n"
             "    print('without: refused,', type(exc).__name__); sys.exit(0)\n"
             "sys.exit('the server answered a client without a certificate')\n")
    result = stack.run("org1", "python3", "-c", probe, network="federation", check=False)
    if result.returncode != 0:
        raise StackError(f"mutual TLS check failed: {(result.stderr or result.stdout)[-1500:]}")
    log("mutual TLS: " + result.stdout.strip().replace("\n", "; "))


def check_no_secrets(stack: Stack) -> None:
    """No Paillier secret key in the server, no CKKS secret key in the matcher, no torch in either."""
    for service, secret in (("server", "secret_key.json"), ("matcher", "ckks_secret.key")):
        found = stack.exec(service, "find", "/", "(", "-path", "/proc", "-o", "-path", "/sys", ")", "-prune", "-o",
                           "-name", secret, "-print", root=True).stdout
        if found.strip():
            raise StackError(f"{service} holds {secret}: {found.strip()}")
        if stack.exec(service, "python3", "-c", "import torch", check=False).returncode == 0:
            raise StackError(f"{service}'s image has torch: it should hold no face code")
    # The searches above mean something only if the same search finds the keys where they belong.
    for volume, secret in (("org1", "secret_key.json"), ("terminal", "ckks_secret.key")):
        if not stack.run(volume, "find", "/facepp", "-name", secret).stdout.strip():
            raise StackError(f"the {volume} volume holds no {secret}")
    log("no Paillier secret key in the server, no CKKS secret key in the matcher, no torch in either")


def check_terminal(terminal: Terminal, dataset: Path) -> None:
    identities = sorted((p for p in dataset.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
    subject, other = identities[-1], identities[-2]
    images = sorted((p for p in subject.iterdir() if p.is_file()), key=lambda p: natural_key(p.name))
    impostor = sorted((p for p in other.iterdir() if p.is_file()), key=lambda p: natural_key(p.name))[0]
    try:
        urllib.request.urlopen(terminal.base + "/subjects", context=ssl.create_default_context(), timeout=30)
        raise StackError("the terminal's certificate was accepted without the stack's CA")
    except urllib.error.URLError as exc:
        if not isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise StackError(f"expected a certificate verification error without the CA, got {exc!r}") from exc
    status, body = terminal.call("/enroll", {"subject_id": subject.name}, [("image", p) for p in images[:5]])
    if status != 201:
        raise StackError(f"enrolment of {subject.name} answered {status}: {body}")
    log(f"enrolled {subject.name} from {len(images[:5])} images over HTTPS")
    status, genuine = terminal.call("/verify", {"subject_id": subject.name}, [("image", images[5])])
    if status != 200 or genuine.get("match") is not True:
        raise StackError(f"genuine verification of {subject.name} with {images[5].name}: {status} {genuine}")
    status, other_result = terminal.call("/verify", {"subject_id": subject.name}, [("image", impostor)])
    if status != 200 or other_result.get("match") is not False:
        raise StackError(f"impostor verification with {other.name}/{impostor.name}: {status} {other_result}")
    log(f"verified {subject.name}: genuine score {genuine['score']} matches, {other.name}'s image "
        f"({other_result['score']}) does not; threshold {genuine['threshold']}")
    status, found = terminal.call("/identify", {}, [("image", images[6])])
    candidates = found.get("candidates") or [{}]
    if status != 200 or candidates[0].get("subject_id") != subject.name or candidates[0].get("match") is not True:
        raise StackError(f"identification of {subject.name}'s {images[6].name}: {status} {found}")
    log(f"identified {subject.name} from {images[6].name} (score {candidates[0]['score']})")


def check_matcher_engine(stack: Stack, engine: str) -> None:
    """The matcher scored on the engine the stack asked for (its log names it when the gallery loads)."""
    logs = stack.logs("matcher")
    if f"on the {engine} engine" not in logs:
        raise StackError(f"the matcher did not report scoring on the {engine} engine:\n{logs[-1500:]}")
    log(f"the matcher served enrolment, verification and identification on its {engine} engine")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="docker/stack_test.py", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the measurements here")
    parser.add_argument("--keep", action="store_true", help="leave the stack up (debugging; `compose down -v` later)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the training round (default 1800)")
    parser.add_argument("--matcher-engine", choices=("ray", "local"), default="ray",
                        help="the matcher's engine (default ray: the sharded engine that serves large galleries)")
    args = parser.parse_args(argv)

    engine = os.environ.get("FACEPP_ENGINE") or ("podman" if shutil.which("podman") else "docker")
    compose = shlex.split(os.environ.get("FACEPP_COMPOSE") or ("podman-compose" if engine == "podman" else "docker compose"))
    data_root = Path(os.environ.get("FACEPP_DATA") or ROOT.parent / "shared" / "data")
    dataset = Path(os.environ.get("FACEPP_DATASET") or data_root / "orl").resolve()
    if not dataset.is_dir():
        log(f"no dataset at {dataset}: set FACEPP_DATASET to a one-folder-per-identity dataset")
        return 1
    port = free_port()
    env = {**os.environ, "FACEPP_DATASET": str(dataset), "FACEPP_ROUNDS": "1", "FACEPP_LOCAL_EPOCHS": "1",
           "FACEPP_TERMINAL_PORT": str(port), "FACEPP_MATCHER_ENGINE": args.matcher_engine}
    stack = Stack(engine, compose, env)
    report: dict[str, object] = {"engine": engine, "compose": " ".join(compose), "dataset": str(dataset)}
    stack.down()  # a stack left over from an interrupted run
    try:
        log(f"building the images ({' '.join(compose)} build)")
        start = time.monotonic()
        stack.compose("build", timeout=4 * 3600)
        report["build_s"] = round(time.monotonic() - start, 1)
        sizes = {image: stack.image_size(image) for image in IMAGES}
        report["image_bytes"] = sizes
        log(f"built in {report['build_s']} s; " + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sizes.items()))

        start = time.monotonic()
        stack.compose("up", "-d", timeout=600)
        stack.wait_exit(("setup",), timeout=600)
        report["setup_s"] = round(time.monotonic() - start, 1)
        log(f"setup job done after {report['setup_s']} s")
        with tempfile.TemporaryDirectory() as tmp:
            ca_file = Path(tmp) / "ca.pem"
            ca_file.write_text(stack.run("setup", "cat", "/facepp/ca/ca.pem").stdout)
            token = stack.run("setup", "cat", "/facepp/terminal-api-token").stdout.strip()
            terminal = Terminal(port, ca_file, token)
            terminal.wait_ready(timeout=300)
            report["start_up_s"] = round(time.monotonic() - start, 1)
            log(f"stack up: the terminal answers over HTTPS {report['start_up_s']} s after `up`")

            check_tls_between_roles(stack)
            stack.wait_exit(PARTICIPANTS, timeout=args.timeout)
            report["training_s"] = round(time.monotonic() - start, 1)
            log(f"one encrypted round over mutual TLS: all participants finished {report['training_s']} s after `up`")
            check_no_secrets(stack)
            check_terminal(terminal, dataset)
            check_matcher_engine(stack, args.matcher_engine)
        report["passed"] = True
    except (StackError, subprocess.SubprocessError, OSError) as exc:
        report["passed"] = False
        log(f"FAILED: {exc}")
        for service in ("setup", "server", *PARTICIPANTS, "matcher", "terminal"):
            try:
                log(f"--- {service} log (tail) ---\n{stack.logs(service)[-1500:]}")
            except (StackError, subprocess.SubprocessError):
                pass
    finally:
        if not args.keep:
            stack.down()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
