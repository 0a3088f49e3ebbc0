"""``create_app``: the trusted terminal's Flask application.

Terminal only. Wires the model, the CKKS key holder, the subject database and
the matcher client into a :class:`~webapp.terminal.service.TerminalService`,
then registers the blueprints (``auth``, ``pages``, ``api``), CSRF protection,
operator login, rate limits, the upload limit, the security headers and, behind
a reverse proxy, ``X-Forwarded-*`` from the trusted proxies only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, render_template, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

from facepp.errors import FaceppError
from facepp.serving import TrustedProxies
from facepp.model.embedder import Embedder
from facepp.models import SHIPPED_FILE, model_or_shipped
from webapp.terminal.config import TerminalConfig
from webapp.terminal.db import Database, Operator
from webapp.terminal.keystore import TerminalKeys, ensure_private_dir
from webapp.matcher.client import MatcherClient
from webapp.terminal.service import TerminalService, resolve_threshold
from webapp.terminal.uploads import InMemoryRequest

logger = logging.getLogger(__name__)

#: Content Security Policy: only this origin's scripts/styles; camera frames are blob: URLs.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class OperatorUser(UserMixin):
    """The flask-login view of an operator in one login session.

    Its id is the session's random id (what the signed cookie carries): every request
    looks it up in the database, so a session ended by logout or expiry is gone for
    every copy of the cookie.
    """

    def __init__(self, operator: Operator, session_id: str) -> None:
        self.id = session_id
        self.username = operator.username


def create_app(config: TerminalConfig | Mapping[str, Any] | None = None) -> Flask:
    """Build the terminal.

    Args:
        config: a :class:`TerminalConfig`, or a mapping of setting overrides applied on top
            of defaults < ``$FACEPP_TERMINAL_CONFIG`` file < ``FACEPP_TERMINAL_*`` env;
            ``None`` loads file and env only.

    Returns:
        The Flask app; ``app.extensions["terminal"]`` is the :class:`TerminalService`.

    Raises:
        ConfigError: invalid settings, no decision threshold (checkpoint uncalibrated and none
            set), or subjects enrolled with another embedder (weights or inference recipe).
        CheckpointError: unusable checkpoint.
    """
    cfg = config if isinstance(config, TerminalConfig) else TerminalConfig.load(overrides=config or {})
    instance = ensure_private_dir(Path(cfg.instance_dir).resolve())
    app = Flask(__name__, instance_path=str(instance))
    app.request_class = InMemoryRequest  # uploaded images stay in memory, never spooled to disk
    if cfg.trusted_proxies:  # X-Forwarded-* only from these peers; rate limits then key on the real client
        app.wsgi_app = TrustedProxies(app.wsgi_app, cfg.trusted_proxies)  # type: ignore[method-assign]

    embedder = Embedder.from_checkpoint(model_or_shipped(cfg.checkpoint), num_threads=cfg.torch_threads)
    threshold = resolve_threshold(cfg, embedder)
    keys = TerminalKeys.load(instance)
    database = Database(cfg.db_url)
    database.bind_embedder(embedder.fingerprint)
    client = MatcherClient(cfg.matcher_url, api_key=cfg.matcher_api_key, timeout=cfg.matcher_timeout, **cfg.matcher_tls)
    service = TerminalService(config=cfg, embedder=embedder, keys=keys, database=database, client=client,
                              threshold=threshold)
    app.extensions["terminal"] = service
    app.extensions["terminal_config"] = cfg

    app.config.update(
        SECRET_KEY=cfg.secret_key or keys.session_key,
        MAX_CONTENT_LENGTH=cfg.max_upload_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=cfg.secure_cookies,
        SESSION_COOKIE_NAME="facepp_terminal",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=cfg.secure_cookies,
        REMEMBER_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=cfg.session_lifetime,
        WTF_CSRF_TIME_LIMIT=cfg.session_lifetime,
    )

    csrf = CSRFProtect(app)
    _init_login(app, database, cfg)
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", headers_enabled=True)
    app.extensions["terminal_limiter"] = limiter

    from webapp.terminal import api, auth, pages  # noqa: PLC0415 (blueprints import current_app helpers)

    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_error_handler(Exception, _unhandled_error)
    csrf.exempt(api.bp)  # bearer-token API: no cookies, so no CSRF
    _rate_limit(app, limiter, {
        "auth.login": (cfg.login_rate_limit, ["POST"]),
        "pages.verify": (cfg.match_rate_limit, ["POST"]),
        "pages.identify": (cfg.match_rate_limit, ["POST"]),
        "api.verify": (cfg.match_rate_limit, None),
        "api.identify": (cfg.match_rate_limit, None),
    })
    limiter.limit(cfg.api_rate_limit)(api.bp)
    app.after_request(_security_headers)

    if cfg.register_on_start:
        try:
            service.ensure_registered()
            refreshed = service.refresh_stale_blocks()
            if refreshed:
                logger.info("refreshed %d stale block(s) left from earlier deletions", refreshed)
        except FaceppError as exc:
            if exc.code == "bad_config":
                raise
            logger.error("matcher not ready at start (%s); will register at the first request", exc)
    logger.info("terminal ready: model %s (dim %d), threshold %.3f, matcher %s, key %s",
                Path(cfg.checkpoint or SHIPPED_FILE).name, service.dim, threshold, cfg.matcher_url, keys.holder.fingerprint_hex[:16])
    return app


def _init_login(app: Flask, database: Database, cfg: TerminalConfig) -> None:
    manager = LoginManager(app)
    manager.login_view = "auth.login"
    manager.login_message = "Please log in."
    manager.session_protection = "strong"

    @manager.user_loader
    def load_user(session_id: str) -> OperatorUser | None:
        operator = database.session_operator(session_id, idle_timeout=cfg.session_idle_timeout,
                                             lifetime=cfg.session_lifetime)
        return OperatorUser(operator, session_id) if operator else None


def _rate_limit(app: Flask, limiter: Limiter, limits: dict[str, tuple[str, list[str] | None]]) -> None:
    """Wrap the named endpoints with per-client rate limits (per app: no shared limiter state)."""
    for endpoint, (rate, methods) in limits.items():
        app.view_functions[endpoint] = limiter.limit(rate, methods=methods)(app.view_functions[endpoint])  # type: ignore[assignment]


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def error_page(status: int) -> tuple[str, int]:
    """The bare error page: the status and a link to the login, no data (what anonymous callers get)."""
    return render_template("error.html", status=status, reason=HTTP_STATUS_CODES.get(status, "Error")), status


def _unhandled_error(exc: Exception) -> Any:
    """Errors no blueprint handles (unrouted URLs, static files, failures in login): JSON under ``/api``, else
    the bare :func:`error_page`."""
    if request.path == "/api" or request.path.startswith("/api/"):
        from webapp.terminal.api import json_error  # noqa: PLC0415

        return json_error(exc)
    if not isinstance(exc, HTTPException):
        logger.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
        exc = InternalServerError()
    return error_page(exc.code or 500)


def terminal_service() -> TerminalService:
    """The service of the current app."""
    return current_app.extensions["terminal"]
