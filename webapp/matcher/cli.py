"""``facepp-matcher``: serve the untrusted matcher, create API keys, migrate the database.

Subcommands::

    facepp-matcher serve [--host H] [--port P] [--db URL|PATH] [--config FILE] [--threads N] [--debug]
                         [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]] [--insecure-http]
    facepp-matcher create-api-key --name NAME [--scope score|enrol|admin ...] [--db URL|PATH]   # prints the key once
    facepp-matcher list-api-keys [--db URL|PATH]
    facepp-matcher delete-api-key --name NAME [--db URL|PATH]
    facepp-matcher db upgrade [--db URL|PATH]
    facepp-matcher db current [--db URL|PATH]

Settings: defaults < ``--config``/``$FACEPP_MATCHER_CONFIG`` TOML < ``FACEPP_MATCHER_*`` < flags.
Follows the command-line convention of :mod:`facepp.console` (exit 0/1/2, ``-v``/``-q``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from facepp.console import add_verbosity_flags, run_console, subcommand_parent
from facepp.errors import UsageError
from facepp.serving import add_tls_arguments, serve

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The ``facepp-matcher`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="facepp-matcher",
        description="The untrusted matcher: stores and scores CKKS-encrypted face templates (public keys only).",
    )
    add_verbosity_flags(parser)
    common = argparse.ArgumentParser(add_help=False, parents=[subcommand_parent()])
    common.add_argument("--db", help="SQLAlchemy URL or SQLite file path (env FACEPP_MATCHER_DB)")
    common.add_argument("--config", help="TOML settings file (env FACEPP_MATCHER_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="serve the HTTP API (gunicorn; HTTPS with --tls-cert)")
    serve.add_argument("--host", help="interface (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8600)")
    serve.add_argument("--threads", type=int, help="worker threads (default 4)")
    serve.add_argument("--engine", help="auto, local, ray or a Ray address (default auto; env FACEPP_MATCHER_ENGINE)")
    serve.add_argument("--shards", type=int, help="Ray actors holding the gallery (default 0: one per core)")
    serve.add_argument("--debug", action="store_true", help="Flask development server on loopback instead of gunicorn")
    add_tls_arguments(serve)

    key = sub.add_parser("create-api-key", parents=[common], help="create a client API key and print it once")
    key.add_argument("--name", required=True, help="client name, e.g. terminal-1")
    key.add_argument("--scope", action="append", choices=["score", "enrol", "admin"], dest="scopes",
                     help="what the key may do; repeat for several (default: score and enrol, what a terminal needs)")
    sub.add_parser("list-api-keys", parents=[common], help="list the API keys: name, scopes, creation time")
    revoke = sub.add_parser("delete-api-key", parents=[common], help="revoke an API key")
    revoke.add_argument("--name", required=True, help="client name")

    db = sub.add_parser("db", parents=[subcommand_parent()], help="database schema (Alembic)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", parents=[common], help="upgrade the schema to the newest revision")
    db_sub.add_parser("current", parents=[common], help="print the schema revision")
    return parser


def _config(args: argparse.Namespace, **extra: Any) -> Any:
    from webapp.matcher.config import MatcherConfig

    return MatcherConfig.load(file=args.config, overrides={"db": args.db, **extra})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``facepp-matcher``; returns the exit status."""
    return run_console(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args)
    if args.command in ("create-api-key", "list-api-keys", "delete-api-key"):
        return _api_keys(args)
    return _db(args)


def _serve(args: argparse.Namespace) -> int:
    from webapp.matcher.app import create_app, load_gallery

    cfg = _config(args, host=args.host, port=args.port, threads=args.threads, engine=args.engine, shards=args.shards,
                  tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
                  insecure_http=args.insecure_http)
    tls = cfg.tls
    if not args.debug:
        return serve(lambda: create_app(cfg, load_gallery=False), name="matcher", host=cfg.host, port=cfg.port,
                     threads=cfg.threads, tls=tls, worker_init=load_gallery)
    if tls.enabled:
        raise UsageError("--debug serves plain HTTP only; drop the TLS settings or --debug")
    tls.check(cfg.host)
    logger.warning("Flask development server (--debug): not for production")
    create_app(cfg).run(host=cfg.host, port=cfg.port, debug=True, use_reloader=False)
    return 0


def _api_keys(args: argparse.Namespace) -> int:
    from webapp.matcher.auth import TERMINAL_SCOPES, create_api_key, parse_scopes
    from webapp.matcher.db import make_engine, upgrade
    from webapp.matcher.store import MatcherStore

    engine = make_engine(_config(args).db)
    upgrade(engine)
    store = MatcherStore(engine)
    if args.command == "list-api-keys":
        for row in store.api_keys():
            print(f"{row['name']}\t{row['scopes']}\t{row['created_at']}")
        return 0
    if args.command == "delete-api-key":
        store.delete_api_key(args.name)
        logger.info("revoked the API key %r", args.name)
        return 0
    scopes = parse_scopes(args.scopes) if args.scopes else TERMINAL_SCOPES
    key = create_api_key(store, args.name, scopes)
    print(key)  # the only time the key is shown; the database keeps its SHA-256
    logger.info("created API key for %r (store it now: it is not shown again)", args.name)
    return 0


def _db(args: argparse.Namespace) -> int:
    from webapp.matcher.db import current_revision, make_engine, upgrade

    engine = make_engine(_config(args).db)
    if args.db_command == "upgrade":
        upgrade(engine)
    print(current_revision(engine) or "(empty database)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
