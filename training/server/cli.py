"""``facepp-server``: serve the parameter server (untrusted: Paillier public key and ciphertexts only).

HTTPS with ``--tls-cert``/``--tls-key``; ``--tls-client-ca`` adds mutual TLS: every
participant presents a client certificate whose CN is its name, checked in
addition to its bearer token. Plain HTTP listens on loopback only (or with
``--insecure-http``). Follows the command-line convention of :mod:`facepp.console`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from facepp.console import add_verbosity_flags, run_console
from facepp.serving import add_tls_arguments, serve, tls_of


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
    parser.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    parser.add_argument("--record-requests", type=Path, help="append every request body to this file (privacy audits)")
    add_tls_arguments(parser)
    add_verbosity_flags(parser)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from training.server.app import create_app

    tls = tls_of(args)
    config = {"FEDERATION": args.federation, "STATE_DIR": args.state, "RECORD_REQUESTS": args.record_requests,
              "CLIENT_CERT_REQUIRED": tls.mutual}
    return serve(lambda: create_app(config), name="parameter server", host=args.host, port=args.port,
                 threads=args.threads, tls=tls)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``facepp-server``; returns the exit status."""
    return run_console(build_parser(), _serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
