"""``facepp-terminal``: serve the trusted terminal, create operators.

Examples::

    FACEPP_TERMINAL_MATCHER_API_KEY=... FACEPP_TERMINAL_API_TOKEN=... \\
        facepp-terminal serve --port 8500     # the shipped model; --checkpoint M for another
    facepp-terminal serve --host 0.0.0.0 --tls-cert pki/terminal.pem --tls-key pki/terminal.key \\
        --matcher-url https://matcher.example:8600 --matcher-ca pki/ca.pem --trusted-proxy 10.0.0.5
    facepp-terminal create-operator --username alice          # asks for the password
    echo "$PASSWORD" | facepp-terminal create-operator --username bob --password-stdin

Secrets (``matcher_api_key``, ``api_token``, ``secret_key``) come from the TOML file
or the environment (``FACEPP_TERMINAL_*``), never from command-line flags, which
other users can read in the process list. Follows the command-line convention of
:mod:`facepp.console` (exit 0/1/2, ``-v``/``-q``).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facepp.console import add_verbosity_flags, run_console, subcommand_parent
from facepp.errors import ConfigError, UsageError
from facepp.serving import add_tls_arguments, serve
from webapp.terminal.config import TerminalConfig

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The ``facepp-terminal`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="facepp-terminal",
        description="Trusted terminal of facepp: face capture, embedding, CKKS encryption, decisions.",
    )
    add_verbosity_flags(parser)
    common = argparse.ArgumentParser(add_help=False, parents=[subcommand_parent()])
    common.add_argument("--config", type=Path, help="TOML config file (default $FACEPP_TERMINAL_CONFIG)")
    common.add_argument("--checkpoint", help="model checkpoint (.pt; default: the shipped model)")
    common.add_argument("--threshold", type=float, help="decision threshold, overriding the checkpoint's: a cosine, or an "
                        "S-normalised score for a model with a cohort")
    common.add_argument("--instance-dir", help="folder for keys and the database")
    common.add_argument("--matcher-url", help="matcher base URL, e.g. https://matcher.example:8600")
    common.add_argument("--matcher-ca", metavar="PEM",
                        help="CA the matcher's certificate must chain to (pinned; default: the system's CAs)")
    common.add_argument("--matcher-client-cert", metavar="PEM", help="client certificate for a mutual-TLS matcher")
    common.add_argument("--matcher-client-key", metavar="PEM", help="its private key")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", parents=[common], help="run the terminal (gunicorn; --debug: Flask dev server)")
    serve.add_argument("--host", help="interface (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8500)")
    serve.add_argument("--threads", type=int, help="worker threads (default 8)")
    serve.add_argument("--debug", action="store_true", help="Flask development server with the debugger (never in production)")
    serve.add_argument("--insecure-cookies", action="store_true",
                       help="send session cookies over plain HTTP (development without TLS only)")
    serve.add_argument("--trusted-proxy", action="append", metavar="ADDR",
                       help="reverse proxy address or network whose X-Forwarded-* headers are believed (repeatable)")
    add_tls_arguments(serve)
    op = sub.add_parser("create-operator", parents=[common], help="add an operator account")
    op.add_argument("--username", required=True)
    op.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {
        "checkpoint": args.checkpoint,
        "threshold": args.threshold,
        "instance_dir": args.instance_dir,
        "matcher_url": args.matcher_url,
        "matcher_ca": args.matcher_ca,
        "matcher_client_cert": args.matcher_client_cert,
        "matcher_client_key": args.matcher_client_key,
    }
    if args.command == "serve":
        values.update(host=args.host, port=args.port, threads=args.threads, tls_cert=args.tls_cert,
                      tls_key=args.tls_key, tls_client_ca=args.tls_client_ca, insecure_http=args.insecure_http,
                      trusted_proxies=tuple(args.trusted_proxy) if args.trusted_proxy else None)
        if args.insecure_cookies or args.debug:
            values["secure_cookies"] = False
    return values


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat: "):
        raise ConfigError("the two passwords differ")
    return first


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``facepp-terminal``; returns the exit status."""
    return run_console(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    config = TerminalConfig.load(file=args.config, overrides=_overrides(args))
    if args.command == "create-operator":
        return _create_operator(config, args)
    return _serve(config, debug=args.debug)


def _create_operator(config: TerminalConfig, args: argparse.Namespace) -> int:
    from webapp.terminal.db import Database  # noqa: PLC0415
    from webapp.terminal.keystore import ensure_private_dir  # noqa: PLC0415

    ensure_private_dir(Path(config.instance_dir))
    database = Database(config.db_url)
    database.create_operator(args.username, _read_password(args))
    print(f"operator {args.username!r} created")  # CLI output, not library logging
    return 0


def _serve(config: TerminalConfig, *, debug: bool) -> int:
    from webapp.terminal.app import create_app  # noqa: PLC0415

    tls = config.tls
    logger.info("settings: %s", config.describe())
    if not debug:
        return serve(lambda: create_app(config), name="terminal", host=config.host, port=config.port,
                     threads=config.threads, tls=tls)
    if tls.enabled:
        raise UsageError("--debug serves plain HTTP only; drop the TLS settings or --debug")
    tls.check(config.host)
    logger.warning("Flask development server with debugger: never expose it")
    create_app(config).run(host=config.host, port=config.port, debug=True, use_reloader=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
