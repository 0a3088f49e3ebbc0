"""The matcher's ``/api/v1`` blueprint (docs/matcher_api.md): bearer auth, strict validation, audit.

Matcher only. Ciphertext bodies are raw ``application/octet-stream``; everything
else is JSON. Every refusal is ``{"error": ..., "code": ...}`` with the status of
the :class:`~facepp.errors.FaceppError` raised, and stores nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from facepp.errors import FaceppError
from webapp.matcher.auth import authenticate
from webapp.matcher.config import MatcherConfig
from webapp.matcher.protocol import API_PREFIX, OCTET_STREAM, check_subject_id, parse_dim
from webapp.matcher.service import MatcherService
from webapp.matcher.store import MatcherStore

logger = logging.getLogger(__name__)
api = Blueprint("matcher_api", __name__, url_prefix=API_PREFIX)
EXTENSION = "facepp_matcher"
#: Endpoints reachable without an API key (and not audited).
PUBLIC_ENDPOINTS = frozenset({"matcher_api.health"})
#: Endpoints whose body may be a whole block (larger limit).
BLOCK_BODY_ENDPOINTS = frozenset({"matcher_api.install_block"})


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


def _body() -> bytes:
    """The raw request body (413 above the endpoint's limit, set in :func:`_before`)."""
    return request.get_data(cache=False)


def _audit_subject(subject_id: str) -> str:
    """Validate a subject id from the URL and remember it for the audit log."""
    g.audit_subject = check_subject_id(subject_id)
    return subject_id


def _octets(data: bytes) -> Response:
    return Response(data, mimetype=OCTET_STREAM)


# -- hooks ------------------------------------------------------------------------------------


@api.before_request
def _before() -> None:
    cfg = state().config
    endpoint = request.endpoint or ""
    request.max_content_length = cfg.max_block_bytes if endpoint in BLOCK_BODY_ENDPOINTS else cfg.max_message_bytes
    if endpoint in PUBLIC_ENDPOINTS:
        return
    g.audit_operation = endpoint.rpartition(".")[2]
    g.client = authenticate(state().store, request.headers.get("Authorization"))


@api.after_request
def _after(response: Response) -> Response:
    operation = g.get("audit_operation")
    if operation:
        outcome = "ok" if response.status_code < 400 else g.get("error_code", str(response.status_code))
        try:
            state().store.audit(client=g.get("client"), operation=operation, subject_id=g.get("audit_subject"),
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
    code = {413: "payload_too_large", 404: "not_found", 405: "method_not_allowed"}.get(
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


@api.get("/health")
def health() -> Response:
    return jsonify(status="ok")


@api.put("/bundle")
def register_bundle() -> tuple[Response, int]:
    dim = parse_dim(request.args.get("dim"))
    info, created = state().service.register_bundle(_body(), dim=dim)
    return jsonify(fingerprint=info.fingerprint, dim=info.dim), 201 if created else 200


@api.get("/bundle")
def get_bundle() -> Response:
    info = state().service.bundle_info()
    return jsonify(fingerprint=info.fingerprint, dim=info.dim)


@api.get("/subjects")
def list_subjects() -> Response:
    return jsonify(subjects=state().service.subjects())


@api.post("/subjects/<path:subject_id>")
def enrol(subject_id: str) -> tuple[Response, int]:
    _audit_subject(subject_id)
    state().service.enrol(subject_id, _body())
    return jsonify(subject_id=subject_id), 201


@api.put("/subjects/<path:subject_id>")
def replace(subject_id: str) -> Response:
    _audit_subject(subject_id)
    state().service.replace(subject_id, _body())
    return jsonify(subject_id=subject_id)


@api.delete("/subjects/<path:subject_id>")
def delete(subject_id: str) -> Response:
    _audit_subject(subject_id)
    block = state().service.delete(subject_id)
    return jsonify(subject_id=subject_id, stale_block=block)


@api.post("/subjects/<path:subject_id>/score")
def verify(subject_id: str) -> Response:
    _audit_subject(subject_id)
    return _octets(state().service.score_one(subject_id, _body()))


@api.post("/identify")
def identify() -> Response:
    return _octets(state().service.identify(_body()))


@api.get("/locations")
def locations() -> Response:
    version, subjects = state().service.locations()
    return jsonify(version=version, subjects=[list(s) for s in subjects])


@api.get("/blocks/stale")
def stale_blocks() -> Response:
    return jsonify(blocks=state().service.stale_blocks())


@api.get("/blocks/<int:index>")
def export_block(index: int) -> Response:
    return _octets(state().service.export_block(index))


@api.put("/blocks/<int:index>")
def install_block(index: int) -> Response:
    state().service.install_block(index, _body())
    return jsonify(block=index)
