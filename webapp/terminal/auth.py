"""Operator login and logout (blueprint ``auth``). Terminal only.

Passwords are checked against salted scrypt hashes; a failed login says nothing
about whether the username exists. Login POSTs are rate limited (``login_rate_limit``).
Each login opens a server-side session (``Database.open_session``) and logout
ends it, so the cookie of an ended session is worthless even if it was copied.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, Response, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from webapp.terminal.app import OperatorUser, terminal_service

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)


@bp.errorhandler(HTTPException)
def _error(exc: HTTPException) -> tuple[str, int]:
    """CSRF failures, rate limits and other HTTP errors on the login page."""
    message = "Too many login attempts: wait a minute." if exc.code == 429 else (exc.description or exc.name)
    return render_template("login.html", error=message), exc.code or 500


def _safe_next(target: str | None) -> str:
    """A same-site redirect target (no scheme, no host), else the home page."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("pages.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | WerkzeugResponse | tuple[str, int]:
    """Show the login form; on POST check the credentials."""
    if current_user.is_authenticated:
        return redirect(url_for("pages.index"))
    if request.method == "POST":
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        operator = terminal_service().db.authenticate(username, password) if username and password else None
        if operator is None:
            logger.info("failed login from %s", request.remote_addr)
            return render_template("login.html", error="Unknown username or wrong password."), 401
        login_user(OperatorUser(operator, terminal_service().db.open_session(operator.id)))
        logger.info("operator %s logged in", operator.username)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html")


@bp.post("/logout")
@login_required
def logout() -> Response | WerkzeugResponse:
    """End the operator's session, here and in the database."""
    terminal_service().db.close_session(current_user.id)
    logout_user()
    session.clear()
    flash("Logged out.")
    return redirect(url_for("auth.login"))
