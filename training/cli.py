"""Console entry points of the federation: ``facepp-server`` and ``facepp-federation``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.participant.privacy import DPConfig


def _guarded(run, argv: list[str] | None) -> int:  # type: ignore[no-untyped-def]
    """Run an entry point; a facepp error or a missing file becomes one clear line and exit code 1."""
    from facepp.errors import FaceppError

    try:
        return int(run(argv))
    except (FaceppError, FileNotFoundError, FileExistsError) as exc:
        logging.getLogger("training").error("%s: %s", type(exc).__name__, exc)
        return 1


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
    return _guarded(_server_main, argv)


def _server_main(argv: list[str] | None) -> int:
    args = build_server_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    import waitress

    from training.server.app import create_app

    app = create_app({"FEDERATION": args.federation, "STATE_DIR": args.state, "RECORD_REQUESTS": args.record_requests})
    logging.getLogger(__name__).info("parameter server on http://%s:%d", args.host, args.port)
    waitress.serve(app, host=args.host, port=args.port, threads=args.threads, 
                   # Flask answers 413 (JSON) above MAX_CONTENT_LENGTH; waitress is the hard backstop.
                   max_request_body_size=2 * app.config["MAX_CONTENT_LENGTH"] + 2**20)
    return 0


def build_participant_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facepp-participant",
        description="Take part in a federation: download the encrypted global model, decrypt it, train on your "
        "own data, encrypt and upload your weighted update, until the last round.",
    )
    parser.add_argument("--dir", required=True, type=Path, help="your folder from the key ceremony (secret_key.json, token, training.json)")
    parser.add_argument("--server", required=True, help="parameter server URL, e.g. http://127.0.0.1:8700")
    parser.add_argument("--data", required=True, type=Path, help="your dataset folder (LFW or ORL layout)")
    parser.add_argument("--out", type=Path, help="final model checkpoint (default: DIR/global_model.pt)")
    parser.add_argument("--cache-dir", type=Path, help="crop cache folder (default: none)")
    parser.add_argument("--workers", type=int, help="encryption worker processes (default: all cores)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: the spec's)")
    parser.add_argument("--keep-contributions", type=Path, help="save each plaintext contribution here (audits only)")
    parser.add_argument("--dp-noise-seed", type=int,
                        help="simulations only: reproducible DP noise (in a real federation the others could subtract it)")
    return parser


def participant_main(argv: list[str] | None = None) -> int:
    return _guarded(_participant_main, argv)


def _participant_main(argv: list[str] | None) -> int:
    args = build_participant_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    from dataclasses import replace

    from facepp.crypto.paillier.secret_cipher import SecretKey
    from training.participant.local import build_model, load_flat_weights, local_trainer, save_global_model
    from training.participant.client import Participant
    from training.participant.spec import TrainingSpec, participant_crops, preprocessing_for, split_for_federation

    name = args.dir.resolve().name
    spec = TrainingSpec.from_json((args.dir / "training.json").read_text())
    if args.threads:
        spec = replace(spec, train=replace(spec.train, num_threads=args.threads))
    split = split_for_federation(args.data, spec)
    crops, labels = participant_crops(split, spec, spec.index_of(name), cache_dir=args.cache_dir)
    trainer = local_trainer(spec, crops, labels, spec.index_of(name), state_path=args.dir / "local_state.pt",
                            dp_noise_seed=args.dp_noise_seed)
    participant = Participant(server_url=args.server, token=(args.dir / "token").read_text().strip(),
                              secret_key=SecretKey.load(args.dir / "secret_key.json"), trainer=trainer,
                              sample_scale=spec.sample_scale, workers=args.workers,
                              keep_contributions=args.keep_contributions)
    weights = participant.run()
    model = build_model(spec.train, spec.input_size)
    load_flat_weights(model, weights)
    out = save_global_model(args.out or args.dir / "global_model.pt", model, config=spec.train,
                            preprocessing=preprocessing_for(split, spec),
                            extra={"federation": {"rounds": spec.total_rounds, "participants": len(spec.participants)}})
    logging.getLogger(__name__).info("final global model written to %s", out)
    return 0


def build_federation_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facepp-federation",
        description="Key ceremony: generate the Paillier key pair and participant tokens, encrypt the initial "
        "model, and write one folder for the server (public key only) and one per participant (secret key, token).",
    )
    parser.add_argument("--dir", required=True, type=Path, help="new folder to write the federation into")
    parser.add_argument("--participants", required=True, help="comma-separated participant names, e.g. hospital-a,hospital-b")
    parser.add_argument("--rounds", type=int, default=10, help="training rounds (default 10)")
    parser.add_argument("--quorum", type=int, help="uploads that close a round at its deadline (default: a majority)")
    parser.add_argument("--round-timeout", type=float, default=3600.0, help="seconds before a round may close with a quorum")
    parser.add_argument("--key-bits", type=int, default=2048, choices=(2048, 3072), help="Paillier modulus size")
    parser.add_argument("--partition", default="iid", choices=("iid", "skewed"), help="how a shared dataset is split (simulations)")
    parser.add_argument("--local-epochs", type=int, default=1, help="local epochs per round")
    parser.add_argument("--sample-scale", type=float, default=10000.0,
                        help="public upper bound on any participant's sample count (FedAvg weights n/scale stay <= 1)")
    parser.add_argument("--seed", type=int, default=0)
    add_dp_arguments(parser)
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


def federation_main(argv: list[str] | None = None) -> int:
    return _guarded(_federation_main, argv)


def _federation_main(argv: list[str] | None) -> int:
    args = build_federation_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    from training.ceremony import create_federation
    from training.participant.local import build_model, flat_weights
    from training.participant.spec import TrainingSpec

    names = tuple(n.strip() for n in args.participants.split(",") if n.strip())
    quorum = args.quorum or len(names) // 2 + 1  # the DP noise shares are sized for it
    spec = TrainingSpec(total_rounds=args.rounds, participants=names, partition=args.partition,
                        local_epochs=args.local_epochs, sample_scale=args.sample_scale, seed=args.seed,
                        dp=dp_config(args, min_contributors=quorum))
    fed = create_federation(args.dir, participants=names, initial_weights=flat_weights(build_model(spec.train, spec.input_size)),
                            total_rounds=args.rounds, quorum=quorum, round_timeout_s=args.round_timeout,
                            key_bits=args.key_bits, spec_json=spec.to_json())
    print(f"server folder (public key only): {fed.root / 'server'}")
    for name in names:
        print(f"participant {name}: {fed.participant_dir(name)}  (secret key + token: hand over out of band)")
    print(f"start the server: facepp-server --federation {fed.server_config} --state {fed.server_state}")
    return 0


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--participants", type=int, default=3, help="number of participants (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="training rounds (default 5)")
    parser.add_argument("--data", type=Path, help="dataset folder (default $FACEPP_DATA/orl)")
    parser.add_argument("--partition", default="iid", choices=("iid", "skewed"), help="identity partition across participants")
    parser.add_argument("--local-epochs", type=int, default=2, help="local epochs per round (default 2)")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--workdir", type=Path, help="keep the federation, logs and models here (default: a temp dir)")
    parser.add_argument("--key-bits", type=int, default=2048, choices=(2048, 3072))
    parser.add_argument("--backbone", default="mobilefacenet", help="embedding backbone (see facepp train --help)")
    parser.add_argument("--input-size", type=int, default=64, help="crop side in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixed-point-twin", action="store_true",
                        help="also run the encrypted protocol's fixed-point aggregation in the clear; it must equal the "
                             "encrypted run bit for bit (reports fixed_point_twin_max_abs_diff and its accuracy)")
    add_dp_arguments(parser)


def run_simulate(args: argparse.Namespace) -> int:
    import json
    import os

    from facepp.model import TrainConfig
    from training.simulation.simulate import SimulationConfig, simulate

    data = args.data or Path(os.environ.get("FACEPP_DATA", "../shared/data")) / "orl"
    config = SimulationConfig(
        data=data, participants=args.participants, rounds=args.rounds, partition=args.partition,
        local_epochs=args.local_epochs, seed=args.seed, key_bits=args.key_bits, input_size=args.input_size,
        train=TrainConfig(backbone=args.backbone, batch_size=args.batch_size, lr=args.lr, num_threads=1, seed=args.seed),
        workdir=args.workdir, dp=dp_config(args, min_contributors=args.participants), fixed_point_twin=args.fixed_point_twin,
    )
    report = simulate(config)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0 if not report["plaintext_leak_found"] else 1


def _simulate_command():  # type: ignore[no-untyped-def]
    from facepp.cli import Command

    return Command(
        "simulate",
        "run a whole encrypted federation on loopback (server + K participant processes), its plaintext "
        "FedAvg twin with the same seeds, identity-disjoint evaluation and a privacy audit; writes a JSON report",
        add_simulate_arguments,
        run_simulate,
    )


SIMULATE = _simulate_command()
