"""Console entry points of the federation: ``facepp-server`` and ``facepp-federation``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def build_server_parser() -> argparse.ArgumentParser:
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
    return parser


def server_main(argv: list[str] | None = None) -> int:
    args = build_server_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    import waitress

    from training.server import create_app

    app = create_app({"FEDERATION": args.federation, "STATE_DIR": args.state, "RECORD_REQUESTS": args.record_requests})
    logging.getLogger(__name__).info("parameter server on http://%s:%d", args.host, args.port)
    waitress.serve(app, host=args.host, port=args.port, threads=args.threads, 
                   # Flask answers 413 (JSON) above MAX_CONTENT_LENGTH; waitress is the hard backstop.
                   max_request_body_size=2 * app.config["MAX_CONTENT_LENGTH"] + 2**20)
    return 0
