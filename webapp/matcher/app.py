"""The matcher's Flask app factory (matcher only; no module-level app).

``create_app(config)`` opens the database, upgrades the schema (Alembic) unless
``auto_migrate`` is off, loads the gallery and registers the ``/api/v1``
blueprint. Serve it with ``facepp-matcher serve`` (gunicorn).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from webapp.matcher import api
from webapp.matcher.config import MatcherConfig
from webapp.matcher.db import check_schema, make_engine, safe_url, upgrade
from webapp.matcher.service import MatcherService
from webapp.matcher.store import MatcherStore

logger = logging.getLogger(__name__)


def create_app(config: MatcherConfig | Mapping[str, Any] | None = None, *, load_gallery: bool = True) -> Flask:
    """Build a matcher app.

    Args:
        config: a :class:`MatcherConfig`; or a mapping of settings overlaid on the
            defaults (tests); or ``None`` for defaults < ``$FACEPP_MATCHER_CONFIG``
            file < ``FACEPP_MATCHER_*`` environment.
        load_gallery: load the gallery now; ``False`` leaves it to :func:`load_gallery`, called in
            the process that serves (``facepp-matcher serve``: the gunicorn worker, as Ray does not
            survive a fork).

    Raises:
        ConfigError: bad settings, an unusable database or an outdated schema.
        ProtocolError: stored data that does not load (corruption).
    """
    if config is None:
        cfg = MatcherConfig.load()
    elif isinstance(config, MatcherConfig):
        cfg = config
    else:
        cfg = MatcherConfig().with_overrides(config)
    engine = make_engine(cfg.db)
    if cfg.auto_migrate:
        upgrade(engine)
    else:
        check_schema(engine)
    store = MatcherStore(engine)
    service = MatcherService(store, pinned_fingerprint=cfg.pinned_fingerprint, engine=cfg.engine, shards=cfg.shards,
                             load=load_gallery)
    app = Flask(__name__)
    app.extensions[api.EXTENSION] = api.MatcherState(cfg, store, service)
    api.init_app(app)
    logger.info("matcher app ready on %s", safe_url(str(engine.url)))
    return app


def load_gallery(app: Flask) -> None:
    """Load the gallery of an app built with ``load_gallery=False`` (the slot table and its engine).

    Raises:
        ProtocolError, KeyMismatchError: stored data that does not load (corruption).
        ConfigError: the engine cannot start (Ray unreachable).
    """
    state: api.MatcherState = app.extensions[api.EXTENSION]
    state.service.reload()
