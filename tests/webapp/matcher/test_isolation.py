"""The matcher cannot import or construct a secret key (DESIGN.md §1), proven two ways:

* a fresh interpreter imports every matcher module, builds the app, registers a
  bundle, enrols and scores (bytes made by this test's key holder), and then
  checks that no secret-key module was ever loaded;
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
from tests.helpers.matcher import DIM

ROOT = Path(__file__).resolve().parents[3]
MATCHER_DIR = ROOT / "webapp" / "matcher"
SECRET_MODULES = ("facepp.crypto.ckks.secret_key", "facepp.crypto.paillier.secret_key",
                  "facepp.crypto.paillier.secret_cipher")
FORBIDDEN_CALLS = ("decrypt", "decryptFrac", "decrypt_scores", "decrypt_score_slots", "keyGen", "generate",
                   "from_secret_bytes", "to_secret_bytes", "refresh_block", "from_bytes_secret_key")

SCRIPT = r"""
import json, pkgutil, sys, importlib
import webapp.matcher
for info in pkgutil.walk_packages(webapp.matcher.__path__, "webapp.matcher."):
    if ".migrations" not in info.name:
        importlib.import_module(info.name)
from webapp.matcher.app import create_app
work = sys.argv[1]
app = create_app({"db": f"sqlite:///{work}/isolated.db"})
service = app.extensions["facepp_matcher"].service
read = lambda name: open(f"{work}/{name}", "rb").read()
service.register_bundle(read("bundle"), dim=int(sys.argv[2]))
service.enrol("alice", read("template"))
open(f"{work}/scores", "wb").write(service.score_one("alice", read("probe")))
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("facepp", "webapp")))))
"""


def test_fresh_interpreter_never_loads_a_secret_key_module(tmp_path: Path, key_holder: CkksKeyHolder,
                                                             embeddings: np.ndarray) -> None:
    (tmp_path / "bundle").write_bytes(key_holder.export_public_bundle())
    (tmp_path / "template").write_bytes(key_holder.encrypt_template(embeddings[0]))
    (tmp_path / "probe").write_bytes(key_holder.encrypt_probe(embeddings[1]))
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(DIM)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "webapp.matcher.service" in loaded and "facepp.crypto.ckks.matcher" in loaded
    assert [m for m in SECRET_MODULES if m in loaded] == []
    score = key_holder.decrypt_scores((tmp_path / "scores").read_bytes(), dim=DIM)["alice"]
    assert abs(score - float(embeddings[0] @ embeddings[1])) < 1e-4, "the isolated matcher computed correctly"


def _sources() -> list[Path]:
    return sorted(MATCHER_DIR.rglob("*.py"))


def test_matcher_sources_import_no_secret_module_and_never_decrypt() -> None:
    sources = _sources()
    assert len(sources) >= 8
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                names = []
            assert not [n for n in names if n in SECRET_MODULES], f"{path.name} imports a secret-key module"
            if isinstance(node, ast.Attribute | ast.Name):
                name = node.attr if isinstance(node, ast.Attribute) else node.id
                assert name not in FORBIDDEN_CALLS and "CkksKeyHolder" != name, f"{path.name} uses {name}"

