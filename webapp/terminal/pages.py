"""Server-rendered operator pages (blueprint ``pages``). Terminal only.

Enrol (webcam or upload, several images), verify (1:1), identify (1:N) and the
subject list with delete. Every POST carries a CSRF token (flask-wtf); verify and
identify are rate limited. Scores are shown rounded (``score_decimals``).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from facepp.errors import FaceppError
from webapp.terminal.app import error_page, terminal_service
from webapp.terminal.errors import BadRequestError, http_status
from webapp.terminal.uploads import uploaded_images

logger = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)

#: Subjects per page of the subject list; names offered as suggestions on the verify page.
PAGE_SIZE = 100
MAX_SUGGESTIONS = 500

TEMPLATES = {
    "pages.index": "index.html",
    "pages.enrol": "enrol.html",
    "pages.verify": "verify.html",
    "pages.identify": "identify.html",
    "pages.subjects": "subjects.html",
    "pages.delete": "subjects.html",
}


def _render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    service = terminal_service()
    count = service.db.count_subjects()
    names = [s.name for s in service.db.subjects()] if count <= MAX_SUGGESTIONS else []
    return render_template(template, names=names, subject_count=count, threshold=service.threshold, service=service,
                           max_images=service.config.max_images, top_k=service.config.top_k,
                           max_top_k=service.config.max_top_k, form=_form_or_empty(), **context), status


def _form_or_empty() -> Any:
    """The submitted form for re-filling fields, or ``{}`` when it cannot be read (e.g. 413)."""
    try:
        return request.form
    except HTTPException:
        return {}


@bp.errorhandler(Exception)
def _error(exc: Exception) -> tuple[str, int]:
    """Re-render the page with a clear message: bad image (400), no face (422), 404, 409, 413, CSRF (400), 429.

    Only for a logged-in operator: anyone else gets the bare :func:`error_page`, which holds no data
    (a CSRF or size refusal happens before the login check, so the caller may be anonymous).
    """
    if isinstance(exc, FaceppError):
        status, message = http_status(exc), str(exc)
    elif isinstance(exc, HTTPException):
        status = exc.code or 500
        message = {
            413: f"The upload is too large (limit {terminal_service().config.max_upload_bytes // 1024} KiB).",
            429: "Too many requests: wait a minute and try again.",
        }.get(status, exc.description or exc.name)
    else:
        logger.exception("unexpected error on %s", request.path)
        status, message = 500, "Internal error: see the terminal log."
    if status >= 500:
        logger.error("%s %s -> %d: %s", request.method, request.path, status, message)
    if not current_user.is_authenticated:
        return error_page(status)
    return _render(TEMPLATES.get(request.endpoint or "", "index.html"), status, error=message, **_subject_page())


@bp.get("/")
@login_required
def index() -> tuple[str, int]:
    """Home: links to the four pages and the gallery size."""
    return _render("index.html")


@bp.route("/enrol", methods=["GET", "POST"])
@login_required
def enrol() -> tuple[str, int]:
    """Enrol a subject from webcam captures and/or uploaded files."""
    if request.method == "GET":
        return _render("enrol.html")
    result = terminal_service().enrol(request.form.get("subject_id", ""), uploaded_images(),
                                      operator=current_user.username)
    return _render("enrol.html", 201, result=result)


@bp.route("/verify", methods=["GET", "POST"])
@login_required
def verify() -> tuple[str, int]:
    """1:1 verification against a claimed subject."""
    if request.method == "GET":
        return _render("verify.html")
    images = uploaded_images()
    if len(images) != 1:
        raise BadRequestError(f"verification takes exactly one image (capture or file), got {len(images)}")
    result = terminal_service().verify(request.form.get("subject_id", ""), images[0])
    return _render("verify.html", result=result)


@bp.route("/identify", methods=["GET", "POST"])
@login_required
def identify() -> tuple[str, int]:
    """1:N identification: the top-k enrolled subjects."""
    if request.method == "GET":
        return _render("identify.html")
    images = uploaded_images()
    if len(images) != 1:
        raise BadRequestError(f"identification takes exactly one image (capture or file), got {len(images)}")
    result = terminal_service().identify(images[0], top_k=_int_field("top_k"))
    return _render("identify.html", result=result)


@bp.get("/subjects")
@login_required
def subjects() -> tuple[str, int]:
    """The enrolled subjects, :data:`PAGE_SIZE` per page, with a delete button each."""
    return _render("subjects.html", **_subject_page())


def _subject_page() -> dict[str, Any]:
    raw = request.args.get("page", "1")
    page = int(raw) if raw.isdigit() and int(raw) >= 1 else 1
    subjects = terminal_service().list_subjects(offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    return {"subjects": subjects, "page": page, "page_size": PAGE_SIZE}


@bp.post("/subjects/delete")
@login_required
def delete() -> WerkzeugResponse:
    """Delete a subject (and re-encrypt the matcher blocks that held it)."""
    name = request.form.get("subject_id", "")
    refreshed = terminal_service().delete(name)
    flash(f"Deleted {name.strip()} ({refreshed} encrypted block(s) re-encrypted).")
    return redirect(url_for("pages.subjects"))


def _int_field(name: str) -> int | None:
    value = request.form.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise BadRequestError(f"{name} must be a positive integer")
    return int(value)
