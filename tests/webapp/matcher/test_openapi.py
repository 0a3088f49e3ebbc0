"""The hand-kept OpenAPI document is valid and lists exactly the app's routes and their scopes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from flask import Flask
from openapi_spec_validator import validate

from webapp.matcher.app import create_app

SPEC = Path(__file__).resolve().parents[3] / "webapp" / "matcher" / "openapi.yaml"


def _spec() -> dict:
    return yaml.safe_load(SPEC.read_text(encoding="utf-8"))


def _app_routes(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routes |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_spec_is_valid_openapi() -> None:
    validate(_spec())


def test_spec_lists_every_route(tmp_path: Path) -> None:
    app = create_app({"db": f"sqlite:///{tmp_path / 'm.db'}"})
    spec_routes = {(method, path) for path, item in _spec()["paths"].items() for method in item
                   if method in {"get", "put", "post", "delete", "patch"}}
    assert spec_routes == _app_routes(app)
    app.extensions["facepp_matcher"].store.engine.dispose()


def test_spec_lists_every_routes_scopes(tmp_path: Path) -> None:
    from webapp.matcher.api import POLICIES

    app = create_app({"db": f"sqlite:///{tmp_path / 'm.db'}"})
    documented = {(method, path): set(operation.get("x-facepp-scopes", []))
                  for path, item in _spec()["paths"].items() for method, operation in item.items()
                  if method in {"get", "put", "post", "delete"}}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert documented[(method.lower(), path)] == {s.value for s in POLICIES[rule.endpoint].scopes}, path
    app.extensions["facepp_matcher"].store.engine.dispose()


def test_error_codes_match_the_facepp_errors() -> None:
    from facepp.errors import (AuthenticationError, ConflictError, ForbiddenError, KeyMismatchError, NotFoundError,
                               ProtocolError)

    codes = set(_spec()["components"]["schemas"]["Error"]["properties"]["code"]["enum"])
    assert {e.code for e in (ProtocolError, KeyMismatchError, AuthenticationError, ForbiddenError, NotFoundError,
                             ConflictError)} <= codes
