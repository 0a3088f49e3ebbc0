"""JSON API for scripts (blueprint ``api``, prefix ``/api``). Terminal only.

Every call needs ``Authorization: Bearer <api_token>`` (compared in constant
time; with no token configured the API refuses everything). Errors are
``{"error": "...", "code": "..."}`` with 400 (bad image / request / subject id),
401, 404, 409 (duplicate enrolment), 413 (upload too large), 422 (no face),
429 (rate limit), 502 (matcher unavailable).
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from facepp.errors import AuthenticationError, FaceppError
from webapp.terminal.app import terminal_service
from webapp.terminal.errors import BadRequestError, http_status
from webapp.terminal.service import Upload
from webapp.terminal.uploads import uploaded_images

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

#: The operator name recorded for enrolments made through the API.
API_OPERATOR = "api"


@bp.errorhandler(Exception)
def json_error(exc: Exception) -> tuple[Response, int]:
    """Map project errors and HTTP errors to JSON with the right status code."""
    if isinstance(exc, FaceppError):
        status, code, message = http_status(exc), exc.code, str(exc)
    elif isinstance(exc, HTTPException):
        status = exc.code or 500
        code = {413: "payload_too_large", 429: "rate_limited", 405: "method_not_allowed", 404: "not_found"}.get(
            status, (exc.name or "error").lower().replace(" ", "_"))
        message = exc.description or exc.name
    else:
        logger.exception("unexpected error on %s %s", request.method, request.path)
        status, code, message = 500, "internal_error", "internal error: see the terminal log"
    if status >= 500:
        logger.error("%s %s -> %d %s: %s", request.method, request.path, status, code, message)
    else:
        logger.info("refused %s %s: %d %s", request.method, request.path, status, code)
    return jsonify(error=message, code=code), status


@bp.before_request
def _authenticate() -> None:
    token = terminal_service().config.api_token
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if not token:
        raise AuthenticationError("the terminal API is disabled: no api_token is configured")
    if scheme.lower() != "bearer" or not given:
        raise AuthenticationError("missing bearer token (Authorization: Bearer <token>)")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise AuthenticationError("invalid bearer token")


def _one_image() -> Upload:
    images = uploaded_images()
    if len(images) != 1:
        raise BadRequestError(f"send exactly one 'image' file part, got {len(images)}")
    return images[0]


@bp.post("/enroll")
def enroll() -> tuple[Response, int]:
    """Multipart ``subject_id`` + one or more ``image`` parts -> 201 ``{"subject_id", "images", "enrolled_at", "notes"}``."""
    result = terminal_service().enrol(request.form.get("subject_id", ""), uploaded_images(), operator=API_OPERATOR)
    return jsonify(subject_id=result.subject_id, images=result.images, enrolled_at=result.enrolled_at.isoformat(),
                   notes=list(result.notes)), 201


@bp.post("/verify")
def verify() -> Response:
    """Multipart ``subject_id`` + ``image`` -> ``{"match": bool, "score": float, "threshold": float}`` (score rounded)."""
    result = terminal_service().verify(request.form.get("subject_id", ""), _one_image())
    return jsonify(subject_id=result.subject_id, match=result.match, score=result.score,
                   threshold=result.threshold, notes=list(result.notes))


@bp.post("/identify")
def identify() -> Response:
    """Multipart ``image`` (+ optional ``top_k``) -> ``{"candidates": [{"subject_id", "score", "match"}], "threshold"}``."""
    raw_k = request.form.get("top_k", "").strip()
    if raw_k and not raw_k.isdigit():
        raise BadRequestError("top_k must be a positive integer")
    result = terminal_service().identify(_one_image(), top_k=int(raw_k) if raw_k else None)
    return jsonify(
        candidates=[{"subject_id": c.subject_id, "score": c.score, "match": c.match} for c in result.candidates],
        threshold=result.threshold, gallery_size=result.gallery_size, notes=list(result.notes),
    )


@bp.get("/subjects")
def subjects() -> Response:
    """``{"subjects": [{"subject_id", "enrolled_at", "images"}]}``."""
    return jsonify(subjects=terminal_service().list_subjects())


@bp.delete("/subjects/<subject_id>")
def delete(subject_id: str) -> Response:
    """Delete a subject; ``{"deleted": id, "blocks_refreshed": n}``."""
    refreshed = terminal_service().delete(subject_id)
    return jsonify(deleted=subject_id.strip(), blocks_refreshed=refreshed)
