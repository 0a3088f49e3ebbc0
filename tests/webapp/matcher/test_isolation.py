"""The matcher cannot import or construct a secret key, and loads no face code, proven two ways:

* a fresh interpreter imports every matcher module, serves the app with waitress
  on a loopback port and, over real HTTP, registers a bundle, enrols, verifies
  and identifies (bytes made by this test's key holder); then it checks that no
  secret-key module and no face code was ever loaded;
* the matcher's sources import no secret-key module and call no decryption or
  key-generation function (AST scan).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from facepp.crypto.ckks.secret_key import CkksKeyHolder
from tests.helpers.isolation import ROOT, face_modules, imported_modules, secret_key_modules, within
from tests.helpers.matcher import DIM

MATCHER_DIR = ROOT / "webapp" / "matcher"
FORBIDDEN_CALLS = ("decrypt", "decryptFrac", "decrypt_scores", "decrypt_score_slots", "keyGen", "generate",
                   "from_secret_bytes", "to_secret_bytes", "refresh_block", "from_bytes_secret_key")

SCRIPT = r"""
import importlib, json, pkgutil, sys, threading
import waitress
import webapp.matcher
for info in pkgutil.walk_packages(webapp.matcher.__path__, "webapp.matcher."):
    if ".migrations" not in info.name:
        importlib.import_module(info.name)
from webapp.matcher.api import EXTENSION
from webapp.matcher.app import create_app
from webapp.matcher.auth import create_api_key
from webapp.matcher.client import MatcherClient
work = sys.argv[1]
app = create_app({"db": f"sqlite:///{work}/isolated.db"})
key = create_api_key(app.extensions[EXTENSION].store, "terminal")
server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2)
threading.Thread(target=server.run, daemon=True).start()
client = MatcherClient(f"http://127.0.0.1:{server.effective_port}", key, timeout=120)
read = lambda name: open(f"{work}/{name}", "rb").read()
client.register_bundle(read("bundle"), dim=int(sys.argv[2]))
client.enrol("alice", read("template"))
open(f"{work}/scores", "wb").write(client.verify("alice", read("probe")))
client.identify(read("identify"))
print(json.dumps(sorted(sys.modules)))
"""


def test_a_serving_matcher_never_loads_secret_key_or_face_code(tmp_path: Path, key_holder: CkksKeyHolder,
                                                             embeddings: np.ndarray) -> None:
    (tmp_path / "bundle").write_bytes(key_holder.export_public_bundle())
    (tmp_path / "template").write_bytes(key_holder.encrypt_template(embeddings[0]))
    (tmp_path / "probe").write_bytes(key_holder.encrypt_probe(embeddings[1]))
    (tmp_path / "identify").write_bytes(key_holder.encrypt_probe(embeddings[1], verification=False))
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(DIM)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "webapp.matcher.service" in loaded and "webapp.matcher.shard" in loaded
    assert secret_key_modules(loaded) == []
    assert face_modules(loaded) == []
    assert within(loaded, ("webapp.terminal", "training")) == []
    score = key_holder.decrypt_scores((tmp_path / "scores").read_bytes(), dim=DIM)["alice"]
    assert abs(score - float(embeddings[0] @ embeddings[1])) < 1e-4, "the isolated matcher computed correctly"


def _sources() -> list[Path]:
    return sorted(MATCHER_DIR.rglob("*.py"))


def test_matcher_sources_import_no_secret_module_and_never_decrypt() -> None:
    sources = _sources()
    assert len(sources) >= 8
    for path in sources:
        assert secret_key_modules(imported_modules(path)) == [], f"{path.name} imports a secret-key module"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Attribute | ast.Name):
                name = node.attr if isinstance(node, ast.Attribute) else node.id
                assert name not in FORBIDDEN_CALLS and "CkksKeyHolder" != name, f"{path.name} uses {name}"
