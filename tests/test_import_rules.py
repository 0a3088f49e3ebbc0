"""The import rules of the layout (see docs/design.md, "Layout and import rules").

Static rules read every source file's imports (inside functions too); runtime
rules import a role's modules in a fresh interpreter and inspect ``sys.modules``.
The parameter server and the matcher are also checked after serving requests,
in ``tests/training/test_isolation.py`` and ``tests/webapp/matcher/test_isolation.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.isolation import (
    ROOT,
    face_modules,
    imported_modules,
    module_name,
    python_files,
    secret_key_modules,
    within,
)

APPLICATIONS = ("training", "webapp", "attacks", "benchmarks", "scripts", "tests")
UNTRUSTED_TRAINING_FORBIDDEN = ("training.participant", "training.simulation", "training.ceremony", "training.cli")
MATCHER_FOR_THE_TERMINAL = ("webapp.matcher.client", "webapp.matcher.protocol")


def _violations(folder: str, rule) -> list[str]:  # type: ignore[no-untyped-def]
    found = []
    for path in python_files(folder):
        bad = rule(imported_modules(path))
        if bad:
            found.append(f"{path.relative_to(ROOT)} imports {bad}")
    return found


def test_the_library_imports_no_application() -> None:
    assert _violations("facepp", lambda mods: within(mods, APPLICATIONS)) == []


def test_the_parameter_server_imports_no_secret_key_face_or_key_holder_code() -> None:
    assert len(python_files("training/server")) >= 5
    assert _violations("training/server", lambda mods: secret_key_modules(mods) + face_modules(mods)
                       + within(mods, UNTRUSTED_TRAINING_FORBIDDEN + ("facepp.data", "facepp.pki", "webapp"))) == []


def test_the_matcher_imports_no_secret_key_face_or_terminal_code() -> None:
    assert len(python_files("webapp/matcher")) >= 8
    assert _violations("webapp/matcher", lambda mods: secret_key_modules(mods) + face_modules(mods)
                       + within(mods, ("webapp.terminal", "training", "facepp.data", "facepp.pki"))) == []


def test_the_terminal_uses_only_the_matchers_client_and_protocol() -> None:
    def rule(mods: set[str]) -> list[str]:
        matcher = [m for m in within(mods, ("webapp.matcher",)) if m != "webapp.matcher"]
        return [m for m in matcher if not within([m], MATCHER_FOR_THE_TERMINAL)] + within(mods, ("training",))

    assert _violations("webapp/terminal", rule) == []


def test_participants_never_import_the_server_or_the_simulation() -> None:
    assert _violations("training/participant", lambda mods: within(mods, ("training.server", "training.simulation",
                                                                           "training.ceremony", "webapp"))) == []


def test_shared_training_modules_belong_to_no_role() -> None:
    for name in ("training/protocol.py", "training/fedavg.py"):
        mods = imported_modules(ROOT / name)
        assert within(mods, ("training.server", "training.participant", "training.simulation")) == [], name
        assert secret_key_modules(mods) == [] and face_modules(mods) == [], name


def test_no_role_imports_the_attack_lab() -> None:
    """The attack lab plays every role at once (it holds every key); only benchmarks and tests use it."""
    for folder in ("training", "webapp"):
        assert _violations(folder, lambda mods: within(mods, ("attacks",))) == []


def test_public_crypto_modules_never_import_secret_key_modules() -> None:
    for path in python_files("facepp/crypto"):
        if not module_name(path).rpartition(".")[2].startswith("secret_"):
            assert secret_key_modules(imported_modules(path)) == [], path.relative_to(ROOT)


def test_no_test_imports_a_conftest() -> None:
    """Fixtures come from conftest files through pytest; plain helpers live in tests/helpers/."""
    assert _violations("tests", lambda mods: sorted(m for m in mods if m.rpartition(".")[2] == "conftest")) == []


def _loaded_after_importing(*packages: str) -> list[str]:
    script = (
        "import importlib, json, pkgutil, sys\n"
        f"for name in {list(packages)!r}:\n"
        "    package = importlib.import_module(name)\n"
        "    for info in pkgutil.walk_packages(package.__path__, name + '.'):\n"
        "        if '.migrations' not in info.name:\n"
        "            importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_importing_the_whole_library_loads_no_application() -> None:
    loaded = _loaded_after_importing("facepp")
    assert "facepp.cli" in loaded and "facepp.crypto.ckks.secret_key" in loaded
    assert within(loaded, ("training", "webapp", "attacks", "benchmarks")) == []


def test_importing_every_server_module_loads_no_secret_key_or_face_code() -> None:
    loaded = _loaded_after_importing("training.server")
    assert "training.server.app" in loaded and "training.server.cli" in loaded
    assert secret_key_modules(loaded) == [] and face_modules(loaded) == []
    assert within(loaded, UNTRUSTED_TRAINING_FORBIDDEN) == []


@pytest.mark.slow
def test_importing_every_terminal_module_loads_no_matcher_service_or_storage() -> None:
    loaded = _loaded_after_importing("webapp.terminal")
    assert "webapp.terminal.service" in loaded and "webapp.matcher.client" in loaded
    assert [m for m in within(loaded, ("webapp.matcher",))
            if m != "webapp.matcher" and not within([m], MATCHER_FOR_THE_TERMINAL)] == []
