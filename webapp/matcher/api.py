"""The matcher's ``/api/v1`` blueprint (docs/matcher_api.md): bearer auth, scopes, body bounds, audit.

Matcher only. Ciphertext bodies are raw ``application/octet-stream``; everything
else is JSON. Every refusal is ``{"error": ..., "code": ...}`` with the status of
the :class:`~facepp.errors.FaceppError` raised, and stores nothing.

Each route declares the scopes that may call it and the message its body
carries (:func:`_route`). Before the body is touched, the caller is
authenticated (401, from the headers alone), its key's scopes are checked (403)
and the declared length is compared with the bound of that message for the
registered CKKS parameters (413): an unauthenticated or oversized body is never
read. Every answer to an authenticated caller, refusals included, is audited;
unauthenticated requests write nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, LengthRequired, RequestEntityTooLarge

from facepp.crypto.ckks.wire import Kind
from facepp.errors import FaceppError
from webapp.matcher.auth import ApiClient, Scope, authenticate
from webapp.matcher.config import MatcherConfig
from webapp.matcher.protocol import API_PREFIX, OCTET_STREAM, check_subject_id, parse_dim
from webapp.matcher.service import MatcherService
from webapp.matcher.store import MatcherStore

logger = logging.getLogger(__name__)
api = Blueprint("matcher_api", __name__, url_prefix=API_PREFIX)
EXTENSION = "facepp_matcher"
SCORE, ENROL, ADMIN = Scope.SCORE, Scope.ENROL, Scope.ADMIN


@dataclass(frozen=True)
class RoutePolicy:
    """Who may call a route and what its body carries.

    Attributes:
        scopes: a key needs one of them; empty: the route is public (no key, not audited).
        body: the message kind of the body (its size bound), ``None`` for no body.
    """

    scopes: frozenset[Scope]
    body: Kind | None = None


#: Endpoint name -> policy, filled by :func:`_route`.
POLICIES: dict[str, RoutePolicy] = {}


@dataclass(frozen=True)
class MatcherState:
    """Per-app objects, kept in ``app.extensions["facepp_matcher"]``."""

    config: MatcherConfig
    store: MatcherStore
    service: MatcherService


def state() -> MatcherState:
    """The current app's matcher state."""
    found: MatcherState = current_app.extensions[EXTENSION]
    return found


def _route(method: str, rule: str, *scopes: Scope, body: Kind | None = None) -> Callable[[Any], Any]:
    """Register a view for ``method rule`` with its :class:`RoutePolicy`."""

    def register(view: Any) -> Any:
        api.add_url_rule(rule, view_func=view, methods=[method])
        POLICIES[f"{api.name}.{view.__name__}"] = RoutePolicy(frozenset(scopes), body)
        return view

    return register


def _client() -> ApiClient:
    client: ApiClient = g.client
    return client


def _body() -> bytes:
    """The raw request body (its declared length was checked against the route's bound in :func:`_before`)."""
    return request.get_data(cache=False) if request.content_length else b""


def _audit_subject(subject_id: str) -> str:
    """Validate a subject id from the URL and remember it for the audit log."""
    g.audit_subject = check_subject_id(subject_id)
    return subject_id


def _operation() -> str:
    """The current route's name, as audited (``enrol``, ``verify``, ...)."""
    return (request.endpoint or "").rpartition(".")[2]


def _octets(data: bytes) -> Response:
    return Response(data, mimetype=OCTET_STREAM)


# -- hooks ------------------------------------------------------------------------------------


@api.before_request
def _before() -> None:
    """Authenticate, authorise and bound the body, all before a byte of the body is read."""
    policy = POLICIES[request.endpoint or ""]
    limit = state().service.body_limit(policy.body)
    request.max_content_length = limit  # also bounds a chunked body while it is read
    if not policy.scopes:
        return
    client = authenticate(state().store, request.headers.get("Authorization"))
    g.client = client  # from here on, the answer is audited
    operation = _operation()
    client.require(policy.scopes, operation)
    if policy.body and request.content_length is None:
        raise LengthRequired(f"{operation} needs a Content-Length header (bodies are bounded before they are read)")
    if (request.content_length or 0) > limit:
        what = f"a {policy.body.name} message under the registered CKKS parameters" if policy.body else "no body"
        raise RequestEntityTooLarge(f"{operation} takes {what}: at most {limit} bytes, got {request.content_length}")


@api.after_request
def _after(response: Response) -> Response:
    client: ApiClient | None = g.get("client")
    if client is not None:
        outcome = "ok" if response.status_code < 400 else g.get("error_code", str(response.status_code))
        operation = _operation()
        try:
            state().store.audit(client=client.name, operation=operation, subject_id=g.get("audit_subject"),
                                outcome=outcome)
        except Exception:  # noqa: BLE001 - the audit must not turn an answer into a 500
            logger.exception("could not write the audit log entry for %s", operation)
    return response


def _error(message: str, code: str, status: int) -> tuple[Response, int]:
    g.error_code = code
    return jsonify(error=message, code=code), status


@api.errorhandler(FaceppError)
def _facepp_error(exc: FaceppError) -> tuple[Response, int]:
    logger.info("refused %s %s: %s (%s)", request.method, request.endpoint, exc.code, exc)
    return _error(str(exc), exc.code, exc.http_status)


def http_error(exc: HTTPException) -> tuple[Response, int]:
    """JSON for Werkzeug errors (404 routing, 405, 413, ...); also registered app-wide."""
    status = exc.code or 500
    code = {413: "payload_too_large", 404: "not_found", 405: "method_not_allowed", 411: "length_required"}.get(
        status, (exc.name or "error").lower().replace(" ", "_"))
    return _error(exc.description or exc.name or "error", code, status)


def internal_error(exc: Exception) -> tuple[Response, int]:
    """A 500 that reveals nothing (details go to the log)."""
    logger.exception("internal error in %s %s", request.method, request.path)
    return _error("internal error", "internal_error", 500)


api.register_error_handler(HTTPException, http_error)
api.register_error_handler(Exception, internal_error)


def init_app(app: Flask) -> None:
    """Register the blueprint and app-wide JSON error handlers (routing errors happen outside blueprints)."""
    app.register_blueprint(api)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(FaceppError, _facepp_error)


# -- routes -----------------------------------------------------------------------------------


@_route("GET", "/health")
def health() -> Response:
    return jsonify(status="ok")


@_route("PUT", "/bundle", ENROL, ADMIN, body=Kind.PUBLIC_BUNDLE)
def register_bundle() -> tuple[Response, int]:
    dim = parse_dim(request.args.get("dim"))
    replace = request.args.get("replace", "false").lower() == "true"
    if replace:
        _client().require(frozenset({ADMIN}), "replacing the registered bundle")
    info, created = state().service.register_bundle(_body(), dim=dim, replace=replace)
    return jsonify(fingerprint=info.fingerprint, dim=info.dim), 201 if created else 200


@_route("GET", "/bundle", SCORE, ENROL, ADMIN)
def get_bundle() -> Response:
    info = state().service.bundle_info()
    return jsonify(fingerprint=info.fingerprint, dim=info.dim)


@_route("GET", "/subjects", ADMIN)
def list_subjects() -> Response:
    return jsonify(subjects=state().service.subjects())


@_route("POST", "/subjects/<path:subject_id>", ENROL, body=Kind.TEMPLATE)
def enrol(subject_id: str) -> tuple[Response, int]:
    _audit_subject(subject_id)
    state().service.enrol(subject_id, _body())
    return jsonify(subject_id=subject_id), 201


@_route("PUT", "/subjects/<path:subject_id>", ENROL, body=Kind.TEMPLATE)
def replace(subject_id: str) -> Response:
    _audit_subject(subject_id)
    state().service.replace(subject_id, _body())
    return jsonify(subject_id=subject_id)


@_route("DELETE", "/subjects/<path:subject_id>", ENROL)
def delete(subject_id: str) -> Response:
    _audit_subject(subject_id)
    block = state().service.delete(subject_id)
    return jsonify(subject_id=subject_id, stale_block=block)


@_route("POST", "/subjects/<path:subject_id>/score", SCORE, body=Kind.PROBE)
def verify(subject_id: str) -> Response:
    _audit_subject(subject_id)
    return _octets(state().service.score_one(subject_id, _body()))


@_route("POST", "/identify", SCORE, body=Kind.PROBE)
def identify() -> Response:
    return _octets(state().service.identify(_body()))


@_route("GET", "/locations", SCORE)
def locations() -> Response:
    version, subjects = state().service.locations()
    return jsonify(version=version, subjects=[list(s) for s in subjects])


@_route("GET", "/blocks/stale", ENROL, ADMIN)
def stale_blocks() -> Response:
    return jsonify(blocks=state().service.stale_blocks())


@_route("GET", "/blocks/<int:index>", ENROL, ADMIN)
def export_block(index: int) -> Response:
    stale_only = ADMIN not in _client().scopes
    return _octets(state().service.export_block(index, stale_only=stale_only))


@_route("PUT", "/blocks/<int:index>", ENROL, body=Kind.BLOCK)
def install_block(index: int) -> Response:
    state().service.install_block(index, _body())
    return jsonify(block=index)
