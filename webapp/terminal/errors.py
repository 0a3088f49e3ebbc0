"""Terminal-side errors (on top of :mod:`facepp.errors`) and their HTTP mapping.

Terminal only. Messages never echo images, embeddings, keys or full-precision scores.
"""

from __future__ import annotations

from facepp.errors import FaceppError, ImageError, NoFaceError
from webapp.matcher.client import MatcherError

__all__ = ["BadRequestError", "MatcherError", "SubjectIdError", "http_status"]


class BadRequestError(FaceppError):
    """A missing or malformed form/API field (not an image problem)."""

    code = "bad_request"
    http_status = 400


class SubjectIdError(BadRequestError):
    """A subject id that breaks the naming rules (see :func:`webapp.terminal.subjects.check_subject_id`)."""

    code = "bad_subject_id"


#: Status codes that differ from the exception's own ``http_status`` at the terminal's HTTP boundary.
STATUS_OVERRIDES: dict[type[FaceppError], int] = {NoFaceError: 422, ImageError: 400}


def http_status(exc: FaceppError) -> int:
    """The HTTP status the terminal answers ``exc`` with (422 for "no face", else ``exc.http_status``)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_OVERRIDES:
            return STATUS_OVERRIDES[cls]
    return exc.http_status
