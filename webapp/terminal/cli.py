"""``facepp-terminal``: serve the trusted terminal, create operators.

Examples::

    FACEPP_TERMINAL_MATCHER_API_KEY=... FACEPP_TERMINAL_API_TOKEN=... \\
        facepp-terminal serve --port 8500     # the shipped model; --checkpoint M for another
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
from facepp.errors import ConfigError
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
    common.add_argument("--threshold", type=float, help="cosine decision threshold (overrides the checkpoint's)")
    common.add_argument("--instance-dir", help="folder for keys and the database")
    common.add_argument("--matcher-url", help="matcher base URL, e.g. http://127.0.0.1:8600")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", parents=[common], help="run the terminal (waitress; --debug: Flask dev server)")
    serve.add_argument("--host", help="interface (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8500)")
    serve.add_argument("--threads", type=int, help="waitress worker threads")
    serve.add_argument("--debug", action="store_true", help="Flask development server with the debugger (never in production)")
    serve.add_argument("--insecure-cookies", action="store_true",
                       help="send session cookies over plain HTTP (development without TLS only)")
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
    }
    if args.command == "serve":
        values.update(host=args.host, port=args.port, threads=args.threads)
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

    logger.info("settings: %s", config.describe())
    app = create_app(config)
    if debug:
        logger.warning("Flask development server with debugger: never expose it")
        app.run(host=config.host, port=config.port, debug=True, use_reloader=False)
        return 0
    import waitress  # noqa: PLC0415

    waitress.serve(app, host=config.host, port=config.port, threads=config.threads,
                   max_request_body_size=config.max_upload_bytes + 1024 * 1024, ident="facepp-terminal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
