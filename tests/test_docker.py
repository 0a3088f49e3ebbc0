"""The deployment files in docker/, read without a container engine (``make docker-test`` runs them).

The secret-mount rules are derived from the compose file itself: a participant's
Paillier secret key lies in the folder its ``--dir`` names, the terminal's CKKS
secret key in its ``FACEPP_TERMINAL_INSTANCE_DIR``; the volumes holding those
folders must never be mounted into the parameter server or the matcher.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("docker_requirements", ROOT / "docker" / "requirements.py")
assert _spec is not None and _spec.loader is not None
docker_requirements = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docker_requirements)
FACE_STACK, TORCH = docker_requirements.FACE_STACK, docker_requirements.TORCH
name_of, requirements = docker_requirements.name_of, docker_requirements.requirements
COMPOSE = ROOT / "docker" / "compose.yaml"
PARTICIPANTS = ("org1", "org2", "org3")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every volume or bind mount of a service (short syntax)."""
    return [(v.split(":")[0], v.split(":")[1]) for v in service.get("volumes", [])]


def _holding(service: dict[str, Any], path: str) -> str:
    """The source (named volume or host path) whose mount holds ``path`` inside the service."""
    targets = [(source, target) for source, target in _mounts(service) if path == target or path.startswith(target + "/")]
    assert targets, f"{path} is on no mount: it would not survive the container"
    return max(targets, key=lambda m: len(m[1]))[0]


def _argument(service: dict[str, Any], flag: str) -> str:
    command = service["command"]
    return command[command.index(flag) + 1]


def secret_sources(compose: dict[str, Any]) -> dict[str, set[str]]:
    """Which mount sources hold the Paillier secret key and which the CKKS secret key."""
    services = compose["services"]
    paillier = {_holding(services[name], _argument(services[name], "--dir")) for name in PARTICIPANTS}
    terminal = services["terminal"]
    ckks = {_holding(terminal, terminal["environment"]["FACEPP_TERMINAL_INSTANCE_DIR"])}
    return {"paillier": paillier, "ckks": ckks}


def secret_mount_violations(compose: dict[str, Any]) -> list[str]:
    """Breaches of: no Paillier secret key in the server, no CKKS secret key in the matcher, no secret
    shared between roles except through the setup job."""
    services = compose["services"]
    held = secret_sources(compose)
    found = []
    for service, kind in (("server", "paillier"), ("server", "ckks"), ("matcher", "ckks"), ("matcher", "paillier")):
        for source, target in _mounts(services[service]):
            if source in held[kind]:
                found.append(f"{service} mounts {source} (holds the {kind} secret key) at {target}")
    owners: dict[str, list[str]] = {}
    for name, service in services.items():
        if name != "setup":
            for source, _ in _mounts(service):
                owners.setdefault(source, []).append(name)
    found += [f"{source} is shared by {', '.join(names)}" for source, names in owners.items() if len(names) > 1]
    return found


def test_the_server_and_the_matcher_mount_no_secret_key() -> None:
    compose = _compose()
    assert secret_sources(compose) == {"paillier": {"org1", "org2", "org3"}, "ckks": {"terminal"}}
    assert secret_mount_violations(compose) == []


@pytest.mark.parametrize(("service", "source"), [("server", "org2"), ("matcher", "terminal"), ("server", "terminal")])
def test_the_secret_mount_check_catches_a_leak(service: str, source: str) -> None:
    compose = copy.deepcopy(_compose())
    compose["services"][service]["volumes"].append(f"{source}:/extra:ro")
    assert any(f"{service} mounts {source}" in v for v in secret_mount_violations(compose))


def test_each_participant_mounts_only_its_own_partition_certificate_and_key() -> None:
    services = _compose()["services"]
    for name in PARTICIPANTS:
        service = services[name]
        assert _mounts(service) == [(name, "/facepp")]
        for flag in ("--dir", "--data", "--ca-file", "--client-cert", "--client-key"):
            assert _holding(service, _argument(service, flag)) == name
        assert _argument(service, "--client-cert").endswith(f"/{name}.pem")
        assert _argument(service, "--server").startswith("https://")


def test_only_the_terminals_https_port_is_published() -> None:
    services = _compose()["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert list(published) == ["terminal"] and len(published["terminal"]) == 1
    assert published["terminal"][0].endswith(":8443") and _argument(services["terminal"], "--port") == "8443"
    assert "--tls-cert" in services["terminal"]["command"]


def test_every_service_speaks_tls_and_the_server_requires_client_certificates() -> None:
    services = _compose()["services"]
    for name in ("server", "matcher", "terminal"):
        command = services[name]["command"]
        assert "--tls-cert" in command and "--tls-key" in command and "--insecure-http" not in command, name
    assert "--tls-client-ca" in services["server"]["command"]
    assert services["terminal"]["environment"]["FACEPP_TERMINAL_MATCHER_URL"].startswith("https://")
    assert "--matcher-ca" in services["terminal"]["command"]


def test_services_wait_and_retry_instead_of_health_conditions() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        assert isinstance(service.get("depends_on", []), list), f"{name}: depends_on conditions"
        if name not in ("setup", "postgres"):
            assert service["command"][:3] == ["wait-for", "/facepp/ready", "--"], name
            assert service["restart"] in ("unless-stopped", "on-failure"), name


def test_the_untrusted_image_has_no_face_stack_and_the_images_cover_every_dependency() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    untrusted = {name_of(r) for r in requirements("untrusted", dependencies)}
    trusted = {name_of(r) for r in requirements("trusted", dependencies)}
    assert not untrusted & FACE_STACK and {"pyfhel", "gmpy2", "flask"} <= untrusted
    assert untrusted | trusted | TORCH == {name_of(r) for r in dependencies}


def test_the_dockerfile_pins_torch_as_pyproject_does() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = re.search(r'ARG TORCH_PINS="([^"]+)"', (ROOT / "docker" / "Dockerfile").read_text())
    assert pins is not None
    assert sorted(pins.group(1).split()) == sorted(r for r in dependencies if name_of(r) in TORCH)


def test_the_images_run_as_an_unprivileged_user_and_the_build_context_leaves_data_out() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    for target in ("untrusted", "trusted"):
        stage = dockerfile.split(f"AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert "USER facepp" in stage, target
    assert "USER postgres" in (ROOT / "docker" / "postgres.Dockerfile").read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".cache", "out", "data", ".git"} <= set(ignored)


def test_each_image_is_built_once_and_never_pulled() -> None:
    services = _compose()["services"]
    builders: dict[str, list[str]] = {}
    for name, service in services.items():
        if "build" in service:
            builders.setdefault(service["image"], []).append(name)
        else:
            assert service.get("pull_policy") == "never", name
    assert all(len(names) == 1 for names in builders.values()), builders
    assert {s["image"] for s in services.values()} == set(builders)
