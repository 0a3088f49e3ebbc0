"""``facepp-participant``: take part in a federation (key holder: holds the shared Paillier secret key).

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
    """The ``facepp-participant`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="facepp-participant",
        description="Take part in a federation: download the encrypted global model, decrypt it, train on your "
        "own data, encrypt and upload your weighted update, until the last round.",
    )
    parser.add_argument("--dir", required=True, type=Path, help="your folder from the key ceremony (secret_key.json, token, training.json)")
    parser.add_argument("--server", required=True, help="parameter server URL, e.g. https://fl.example:8700")
    parser.add_argument("--data", required=True, type=Path, help="your dataset folder (LFW or ORL layout)")
    parser.add_argument("--out", type=Path, help="final model checkpoint (default: DIR/global_model.pt)")
    parser.add_argument("--cache-dir", type=Path, help="crop cache folder (default: none)")
    parser.add_argument("--workers", type=int, help="encryption worker processes (default: all cores)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: the spec's)")
    parser.add_argument("--keep-contributions", type=Path, help="save each plaintext contribution here (audits only)")
    parser.add_argument("--dp-noise-seed", type=int,
                        help="simulations only: reproducible DP noise (in a real federation the others could subtract it)")
    tls = parser.add_argument_group("TLS (files from facepp-federation pki)")
    tls.add_argument("--ca-file", metavar="PEM", help="verify the server's certificate against this CA only "
                     "(default: the system's CAs)")
    tls.add_argument("--client-cert", metavar="PEM", help="your client certificate, for a server that requires "
                     "mutual TLS (its CN is your participant name)")
    tls.add_argument("--client-key", metavar="PEM", help="its private key")
    add_verbosity_flags(parser)
    return parser


def _participate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from facepp.crypto.paillier.secret_key import SecretKey
    from facepp.errors import UsageError
    from training.fedavg import AggregateRejectedError
    from training.participant.client import Participant
    from training.participant.local import build_model, load_flat_weights, local_trainer, save_global_model
    from training.participant.spec import TrainingSpec, participant_crops, preprocessing_for, split_for_federation

    if bool(args.client_cert) != bool(args.client_key):
        raise UsageError("--client-cert and --client-key go together")
    name = args.dir.resolve().name
    spec = TrainingSpec.from_json((args.dir / "training.json").read_text())
    secret_key = SecretKey.load(args.dir / "secret_key.json")
    participant = Participant(server_url=args.server, token=(args.dir / "token").read_text().strip(),
                              secret_key=secret_key, plan=spec.federation_plan(secret_key.public_key.key_bits),
                              workers=args.workers,
                              keep_contributions=args.keep_contributions, ca_file=args.ca_file,
                              client_cert=(args.client_cert, args.client_key) if args.client_cert else None)
    status = participant.check()  # the server, our credentials and our key, before any preprocessing
    logger.info("server %s: round %d of %d", args.server, status.round, status.total_rounds)
    if args.threads:
        spec = replace(spec, train=replace(spec.train, num_threads=args.threads))
    split = split_for_federation(args.data, spec)
    crops, labels = participant_crops(split, spec, spec.index_of(name), cache_dir=args.cache_dir)
    trainer = local_trainer(spec, crops, labels, spec.index_of(name), state_path=args.dir / "local_state.pt",
                            dp_noise_seed=args.dp_noise_seed)

    def save(weights, round_: int) -> Path:  # type: ignore[no-untyped-def]
        model = build_model(spec.train, spec.input_size)
        load_flat_weights(model, weights)
        return save_global_model(args.out or args.dir / "global_model.pt", model, config=spec.train,
                                 preprocessing=preprocessing_for(split, spec),
                                 extra={"federation": {"rounds": round_, "participants": len(spec.participants),
                                                       "init": spec.init}})

    try:
        weights = participant.run(trainer)
    except AggregateRejectedError as exc:
        if participant.last_model is None:
            raise
        round_, kept = participant.last_model
        raise AggregateRejectedError(f"{exc}; the global model of round {round_} is kept in {save(kept, round_)}") from None
    logger.info("final global model written to %s", save(weights, spec.total_rounds))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``facepp-participant``; returns the exit status."""
    return run_console(build_parser(), _participate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
