"""``facepp-server``: serve the parameter server (untrusted: Paillier public key and ciphertexts only).

Follows the command-line convention of :mod:`facepp.console`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from facepp.console import add_verbosity_flags, run_console

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The ``facepp-server`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="facepp-server",
        description="Run the parameter server (holds the Paillier public key and ciphertexts only).",
    )
    parser.add_argument("--federation", required=True, type=Path, help="federation.json written by the key ceremony")
    parser.add_argument("--state", required=True, type=Path, help="state directory (ciphertexts + SQLite)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback)")
    parser.add_argument("--port", type=int, default=8700, help="TCP port (default 8700)")
    parser.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    parser.add_argument("--record-requests", type=Path, help="append every request body to this file (privacy audits)")
    add_verbosity_flags(parser)
    return parser


def _serve(args: argparse.Namespace) -> int:
    import waitress

    from training.server.app import create_app

    app = create_app({"FEDERATION": args.federation, "STATE_DIR": args.state, "RECORD_REQUESTS": args.record_requests})
    logger.info("parameter server on http://%s:%d", args.host, args.port)
    waitress.serve(app, host=args.host, port=args.port, threads=args.threads,
                   # Flask answers 413 (JSON) above MAX_CONTENT_LENGTH; waitress is the hard backstop.
                   max_request_body_size=2 * app.config["MAX_CONTENT_LENGTH"] + 2**20)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``facepp-server``; returns the exit status."""
    return run_console(build_parser(), _serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
