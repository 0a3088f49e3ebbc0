"""The parameter server: Flask app factory, JSON/binary API and status pages.

Untrusted role: loads the Paillier public key only. Serve it with
``facepp-server`` (gunicorn, optionally over TLS and mutual TLS). With
``CLIENT_CERT_REQUIRED`` every API request needs, besides its bearer token, a
verified client certificate whose CN is the token's participant. The status pages
show who uploaded when and the metrics participants reported, so they need a
participant or operator token, and are rate limited per client address.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, render_template, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import HTTPException

from facepp.errors import AuthenticationError, FaceppError
from facepp.serving import client_common_name
from training.protocol import API_PREFIX, ROUND_HEADER, UPLOAD_MAC_HEADER, parse_metrics
from training.server.coordinator import Coordinator, FederationConfig
from training.server.store import Store

STATUS_RATE_LIMIT = "120 per minute"

log = logging.getLogger(__name__)

api = Blueprint("api", __name__, url_prefix=API_PREFIX)
status_page = Blueprint("status", __name__)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the parameter server.

    Args:
        config: Must hold ``FEDERATION`` (path of ``federation.json``) and
            ``STATE_DIR`` (where ciphertexts and the SQLite state live);
            ``CLIENT_CERT_REQUIRED`` (mutual TLS) ties each token to its client certificate;
            ``STATUS_RATE_LIMIT`` (flask-limiter rate, per client address) is optional.
    """
    app = Flask(__name__)
    app.config.update(config or {})
    federation = FederationConfig.load(app.config["FEDERATION"])
    store = Store(Path(app.config["STATE_DIR"]))
    coordinator = Coordinator(federation, store, **({"clock": app.config["CLOCK"]} if "CLOCK" in app.config else {}))
    app.extensions["coordinator"] = coordinator
    # An upload is exactly header + ciphertexts; allow a little slack, refuse anything bigger (413).
    app.config["MAX_CONTENT_LENGTH"] = coordinator.upload_bytes + 4096
    app.extensions["metrics_plot"] = MetricsPlot()
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", headers_enabled=True)
    limiter.limit(app.config.get("STATUS_RATE_LIMIT", STATUS_RATE_LIMIT))(status_page)
    app.register_blueprint(api)
    app.register_blueprint(status_page)
    if app.config.get("RECORD_REQUESTS"):
        _record_requests(app, Path(app.config["RECORD_REQUESTS"]))
    return app


def _record_requests(app: Flask, path: Path) -> None:
    """Append every request body to ``path``: lets the privacy audit scan all bytes received."""

    @app.before_request
    def record() -> None:
        body = request.get_data(cache=True)
        with path.open("ab") as handle:
            handle.write(body)


def _coordinator() -> Coordinator:
    return current_app.extensions["coordinator"]


def _participant() -> str:
    """The participant of this request's bearer token (and, under mutual TLS, of its client certificate).

    Raises:
        AuthenticationError: a bad token, or a client certificate missing or naming someone else.
    """
    participant = _coordinator().authenticate(request.headers.get("Authorization"))
    if current_app.config.get("CLIENT_CERT_REQUIRED"):
        name = client_common_name(request.environ)
        if name != participant:
            raise AuthenticationError(f"client certificate CN {name!r} does not match the token's participant")
    return participant


@api.errorhandler(FaceppError)
@status_page.errorhandler(FaceppError)
def _facepp_error(exc: FaceppError) -> Response:
    log.info("refused %s %s: %s", request.method, request.path, exc)
    response = jsonify(error=str(exc), code=exc.code)
    response.status_code = exc.http_status
    if isinstance(exc, AuthenticationError) and request.blueprint == status_page.name:
        response.headers["WWW-Authenticate"] = 'Basic realm="facepp parameter server (password: your token)"'
    return response


@api.errorhandler(HTTPException)
@status_page.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[Response, int]:
    code = "payload_too_large" if exc.code == 413 else (exc.name or "error").lower().replace(" ", "_")
    return jsonify(error=exc.description or exc.name, code=code), exc.code or 500


@status_page.before_request
def _viewer_only() -> None:
    g.viewer = _coordinator().viewer(request.headers.get("Authorization"))


@api.get("/round")
def round_status() -> Response:
    participant = _participant()
    return Response(_coordinator().status(participant).to_json(), mimetype="application/json")


@api.get("/model")
def model() -> Response:
    _participant()
    round_, data = _coordinator().model()
    return Response(data, mimetype="application/octet-stream", headers={ROUND_HEADER: str(round_)})


@api.post("/rounds/<int:round_>/update")
def upload(round_: int) -> tuple[Response, int]:
    coordinator = _coordinator()
    participant = _participant()
    data = request.get_data(cache=False)
    coordinator.accept_upload(participant, round_, data, request.headers.get(UPLOAD_MAC_HEADER))
    return jsonify(accepted=True, round=round_, bytes=len(data)), 201


@api.post("/rounds/<int:round_>/metrics")
def metrics(round_: int) -> tuple[Response, int]:
    coordinator = _coordinator()
    participant = _participant()
    coordinator.accept_metrics(participant, round_, parse_metrics(request.get_data(cache=False)))
    return jsonify(accepted=True), 201


def _round_history(coordinator: Coordinator) -> list[dict[str, Any]]:
    """Every round's timing, contributors and bytes received (no model data)."""
    coordinator.tick()
    store = coordinator.store
    return [
        {"round": r.round, "opened_at": r.opened_at, "closed_at": r.closed_at,
         "duration_s": (r.closed_at - r.opened_at) if r.closed_at else None,
         "contributors": r.contributors, "bytes": sum(store.uploads(r.round).values())}
        for r in store.rounds()
    ]


@status_page.get("/")
def status_html() -> str:
    coordinator = _coordinator()
    history = _round_history(coordinator)
    current = history[-1]
    uploaded = coordinator.store.uploads(current["round"])
    everyone = sorted(coordinator.config.participants)
    return render_template(
        "status.html",
        current=current,
        finished=current["closed_at"] is not None,
        total_rounds=coordinator.config.total_rounds,
        seen=[p for p in everyone if p in uploaded],
        missing=[p for p in everyone if p not in uploaded],
        history=history,
        fingerprint=coordinator.key.fingerprint,
        has_metrics=bool(coordinator.store.metrics()),
    )


@status_page.get("/status.json")
def status_json() -> Response:
    """Progress summary for participants and the operator (round numbers, timings, sizes)."""
    coordinator = _coordinator()
    history = _round_history(coordinator)
    current = history[-1]
    return jsonify(
        round=current["round"],
        total_rounds=coordinator.config.total_rounds,
        finished=current["closed_at"] is not None,
        uploads=len(coordinator.store.uploads(current["round"])),
        participants=len(coordinator.config.participants),
        rounds=history,
    )


@status_page.get("/metrics.png")
def metrics_plot() -> Response:
    return Response(current_app.extensions["metrics_plot"].png(_coordinator().store), mimetype="image/png")


class MetricsPlot:
    """The metrics plot, drawn again only when a new report arrived (reports are never overwritten,
    so at most once per participant and round)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drawn: tuple[int, bytes] | None = None

    def png(self, store: Store) -> bytes:
        with self._lock:
            version = store.metrics_count()
            if self._drawn is None or self._drawn[0] != version:
                self._drawn = (version, _draw(store.metrics()))
            return self._drawn[1]


def _draw(rows: list[tuple[int, str, str, float]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    series: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for round_, participant, name, value in rows:
        series[(name, participant)].append((round_, value))
    names = sorted({name for name, _ in series}) or ["no metrics yet"]
    fig = Figure(figsize=(6, 2.6 * len(names)))
    for i, name in enumerate(names, 1):
        ax = fig.add_subplot(len(names), 1, i)
        for (metric, participant), points in sorted(series.items()):
            if metric == name:
                ax.plot(*zip(*points), marker="o", label=participant)
        ax.set_title(name)
        ax.set_xlabel("round")
        if ax.lines:
            ax.legend(fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
