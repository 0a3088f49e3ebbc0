"""The parameter server never loads secret-key or face code, even while it serves a round.

A fresh interpreter imports every ``training.server`` module, runs
``facepp-server`` on a loopback port and, over real HTTP, reads the status page,
the round and the encrypted model, accepts one participant's encrypted update
(made by this test, the key holder), refuses one under another key and takes
metrics; then it reports ``sys.modules`` of the gunicorn worker process that
served those requests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from facepp.crypto.paillier.encrypted_vector import EncryptedVector
from facepp.crypto.paillier.secret_cipher import SecretKey, VectorCipher, generate_keypair
from tests.helpers.federation import PARTICIPANTS
from tests.helpers.isolation import ROOT, face_modules, secret_key_modules, within
from tests.helpers.net import free_port
from training.fedavg import weighted_contribution
from training.protocol import hash_token, upload_mac

SCRIPT = r"""
import importlib, json, os, pkgutil, signal, sys, threading, time, urllib.error, urllib.request
import training.server
for info in pkgutil.walk_packages(training.server.__path__, "training.server."):
    importlib.import_module(info.name)
import training.server.app
from training.server.cli import main

work, port = sys.argv[1], sys.argv[2]
argv = ["-q", "--federation", f"{work}/fed/server/federation.json", "--state", f"{work}/fed/server/state", "--port", port]
base = f"http://127.0.0.1:{port}"
create_app = training.server.app.create_app


def create_reporting_app(config):
    app = create_app(config)

    @app.after_request
    def report_modules(response):  # runs in the worker process that serves the request
        with open(f"{work}/modules.json", "w") as handle:
            json.dump(sorted(sys.modules), handle)
        return response

    return app


training.server.app.create_app = create_reporting_app
token = open(f"{work}/token").read().strip()

def call(method, path, body=None, kind="application/octet-stream", mac=""):
    request = urllib.request.Request(base + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": kind,
                                              "X-Facepp-Upload-MAC": mac})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()

statuses = {}


def client():
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/status.json", timeout=1)
            break
        except urllib.error.HTTPError:  # up (401: the status pages need a token)
            break
        except OSError:
            time.sleep(0.1)
    statuses.update({
        "page": call("GET", "/")[0],
        "status": call("GET", "/status.json")[0],
        "round": call("GET", "/api/v1/round")[0],
        "model": call("GET", "/api/v1/model")[0],
        "foreign": call("POST", "/api/v1/rounds/1/update", open(f"{work}/foreign", "rb").read(), mac=open(f"{work}/foreign.mac").read())[0],
        "update": call("POST", "/api/v1/rounds/1/update", open(f"{work}/update", "rb").read(), mac=open(f"{work}/update.mac").read())[0],
        "metrics": call("POST", "/api/v1/rounds/1/metrics", b'{"version": 1, "metrics": {"loss": 0.5}}', "application/json")[0],
    })
    os.kill(os.getpid(), signal.SIGTERM)  # gunicorn's master stops; main() returns


threading.Thread(target=client, daemon=True).start()
assert main(argv) == 0
print(json.dumps({"statuses": statuses, "modules": json.load(open(f"{work}/modules.json"))}))
"""


def test_a_serving_parameter_server_never_loads_secret_key_or_face_code(make_federation, paillier_key: SecretKey,
                                                                         initial_weights, tmp_path: Path) -> None:
    fed = make_federation(total_rounds=1)
    (tmp_path / "token").write_text(fed.participant_dir(PARTICIPANTS[0]).joinpath("token").read_text())
    initial = fed.server_state / "models" / "model-00000.bin"
    plan = EncryptedVector.from_bytes(initial.read_bytes(), paillier_key.public_key).plan
    contribution = weighted_contribution(initial_weights, 10, sample_scale=100.0)
    token_hash = hash_token((tmp_path / "token").read_text().strip())
    for name, key in (("update", paillier_key), ("foreign", generate_keypair(2048))):
        with VectorCipher(key, plan, workers=1) as cipher:
            data = cipher.encrypt(contribution).to_bytes()
        (tmp_path / name).write_bytes(data)
        (tmp_path / f"{name}.mac").write_text(upload_mac(token_hash, 1, data))

    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(free_port())], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["statuses"] == {"page": 200, "status": 200, "round": 200, "model": 200, "foreign": 400,
                                  "update": 201, "metrics": 201}
    loaded = report["modules"]
    assert "training.server.coordinator" in loaded and "facepp.crypto.paillier.encrypted_vector" in loaded
    assert secret_key_modules(loaded) == []
    assert face_modules(loaded) == []
    assert within(loaded, ("training.participant", "training.simulation", "training.ceremony", "facepp.data")) == []
