"""``facepp-federation``: the key ceremony, the private CA (``pki``), and the DP flags shared with ``facepp simulate``.

Trusted: the ceremony is run by one participant (it generates the Paillier key
pair); ``pki`` by the federation operator (it holds the CA key). Follows the
command-line convention of :mod:`facepp.console`::

    facepp-federation --dir DIR --participants a,b [...]          # the key ceremony
    facepp-federation pki DIR --server NAME=HOST[,HOST...] --client NAME [--days N]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from facepp.console import add_verbosity_flags, run_console
from facepp.pki import DEFAULT_DAYS

if TYPE_CHECKING:
    from training.participant.privacy import DPConfig


def build_parser() -> argparse.ArgumentParser:
    """The ``facepp-federation`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="facepp-federation",
        description="Key ceremony: generate the Paillier key pair and participant tokens, encrypt the initial "
        "model, and write one folder for the server (public key only) and one per participant (secret key, token). "
        "Who keeps what: the server gets only server/ (and its own TLS key); each participant its own folder "
        "(the shared Paillier secret key and its token) and its TLS client key.",
        epilog="TLS certificates: facepp-federation pki DIR --server NAME=HOST[,HOST...] --client NAME "
        "(see facepp-federation pki --help).",
    )
    parser.add_argument("--dir", required=True, type=Path, help="new folder to write the federation into")
    parser.add_argument("--participants", required=True, help="comma-separated participant names, e.g. hospital-a,hospital-b")
    parser.add_argument("--rounds", type=int, default=10, help="training rounds (default 10)")
    parser.add_argument("--quorum", type=int, help="uploads that close a round at its deadline (default: a majority)")
    parser.add_argument("--round-timeout", type=float, default=3600.0, help="seconds before a round may close with a quorum")
    parser.add_argument("--key-bits", type=int, default=2048, choices=(2048, 3072), help="Paillier modulus size")
    parser.add_argument("--partition", default="own", choices=("own", "iid", "skewed"),
                        help="own (default): every participant trains on its whole --data folder; iid, skewed: every "
                             "participant is given the same dataset and trains on its share of it (simulations)")
    parser.add_argument("--local-epochs", type=int, default=1, help="local epochs per round")
    parser.add_argument("--sample-scale", type=float, default=10000.0,
                        help="public upper bound on any participant's sample count (FedAvg weights n/scale stay <= 1)")
    parser.add_argument("--max-weight", type=float, default=1.0,
                        help="largest FedAvg weight n/scale a contribution may carry; participants refuse aggregates "
                             "outside [1/scale, K * max-weight] (default 1.0)")
    parser.add_argument("--seed", type=int, default=0)
    add_init_arguments(parser)
    add_dp_arguments(parser)
    add_verbosity_flags(parser)
    return parser


def add_dp_arguments(parser: argparse.ArgumentParser) -> None:
    """Optional client-level differential privacy (off unless --dp-noise is given)."""
    group = parser.add_argument_group("optional client-level differential privacy (training.participant.privacy)")
    group.add_argument("--dp-noise", type=float, help="noise multiplier: aggregate noise std / clip (enables DP)")
    group.add_argument("--dp-clip", type=float, default=1.0, help="L2 bound on a participant's per-round update (default 1.0)")
    group.add_argument("--dp-delta", type=float, default=1e-5, help="delta of the reported (epsilon, delta) (default 1e-5)")


def dp_config(args: argparse.Namespace, min_contributors: int) -> DPConfig | None:
    """The DPConfig the flags ask for, or None."""
    from training.participant.privacy import DPConfig

    if args.dp_noise is None:
        return None
    return DPConfig(clip=args.dp_clip, noise_multiplier=args.dp_noise, min_contributors=min_contributors, delta=args.dp_delta)


def add_init_arguments(parser: argparse.ArgumentParser) -> None:
    """``--init`` / ``--from-scratch``: which weights a federation starts from."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--init", type=Path,
                       help="fine-tune this checkpoint (default: the shipped model); its architecture, input size and "
                            "crop mode become the federation's")
    group.add_argument("--from-scratch", action="store_true", help="start from seeded random weights instead")


def init_checkpoint(args: argparse.Namespace) -> Path | None:
    """The checkpoint ``--init`` / ``--from-scratch`` ask for (None: random weights)."""
    from facepp.models import model_or_shipped

    return None if args.from_scratch else model_or_shipped(args.init)


def _ceremony(args: argparse.Namespace) -> int:
    from training.ceremony import create_federation
    from training.participant.local import initial_weights
    from training.participant.spec import TrainingSpec, fine_tuning

    names = tuple(n.strip() for n in args.participants.split(",") if n.strip())
    quorum = args.quorum or len(names) // 2 + 1  # the DP noise shares are sized for it
    spec = TrainingSpec(total_rounds=args.rounds, participants=names, partition=args.partition,
                        local_epochs=args.local_epochs, sample_scale=args.sample_scale, max_weight=args.max_weight, seed=args.seed,
                        dp=dp_config(args, min_contributors=quorum))
    init = init_checkpoint(args)
    if init is not None:
        spec = fine_tuning(spec, init)
    fed = create_federation(args.dir, participants=names, initial_weights=initial_weights(spec.train, spec.input_size, init),
                            total_rounds=args.rounds, quorum=quorum, round_timeout_s=args.round_timeout,
                            key_bits=args.key_bits, spec_json=spec.to_json())
    print(f"server folder (public key only): {fed.root / 'server'}")
    for name in names:
        print(f"participant {name}: {fed.participant_dir(name)}  (secret key + token: hand over out of band)")
    print(f"operator: {fed.operator_token}  (reads the server's status pages: Bearer token, or the password in a browser)")
    print(f"start the server: facepp-server --federation {fed.server_config} --state {fed.server_state}")
    return 0


def build_pki_parser() -> argparse.ArgumentParser:
    """The ``facepp-federation pki`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="facepp-federation pki",
        description="Private CA for TLS between the roles: create DIR/ca.pem and DIR/ca.key (or reuse them), then "
        "DIR/NAME.pem and DIR/NAME.key for each server and client. Keys are written with mode 0600; nothing is "
        "overwritten. Who keeps what: ca.key stays offline with the federation operator; each server gets its own "
        "NAME.key and the CA it verifies clients with (ca.pem); each participant its client NAME.key and ca.pem; the "
        "terminal ca.pem as the matcher's pinned CA.",
    )
    parser.add_argument("dir", type=Path, metavar="DIR", help="folder of the CA and the certificates")
    parser.add_argument("--server", action="append", default=[], metavar="NAME=HOST[,HOST...]", type=_server_spec,
                        help="a server certificate for these DNS names and IP addresses (repeatable)")
    parser.add_argument("--client", action="append", default=[], metavar="NAME",
                        help="a client certificate with CN NAME, e.g. a participant's name (repeatable)")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"validity in days (default {DEFAULT_DAYS})")
    add_verbosity_flags(parser)
    return parser


def _server_spec(text: str) -> tuple[str, list[str]]:
    name, sep, hosts = text.partition("=")
    addresses = [h.strip() for h in hosts.split(",") if h.strip()]
    if not sep or not name.strip() or not addresses:
        raise argparse.ArgumentTypeError(f"expected NAME=HOST[,HOST...], got {text!r}")
    return name.strip(), addresses


def _pki(args: argparse.Namespace) -> int:
    from facepp.errors import UsageError
    from facepp.pki import issue_deployment

    servers = dict(args.server)
    if len(servers) != len(args.server):
        raise UsageError("each --server NAME may be given once")
    for path in issue_deployment(args.dir, servers=servers, clients=args.client, days=args.days):
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``facepp-federation`` (and of ``facepp-federation pki``); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args if a not in _VERBOSITY), None)
    if first == "pki":
        args.remove("pki")
        return run_console(build_pki_parser(), _pki, args)
    return run_console(build_parser(), _ceremony, args)


_VERBOSITY = {"-v", "-vv", "--verbose", "-q", "--quiet"}


if __name__ == "__main__":
    raise SystemExit(main())
