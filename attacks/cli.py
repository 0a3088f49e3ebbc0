"""``facepp attack``: registered as a ``facepp`` subcommand through the ``facepp.commands`` entry point.

``facepp attack gradients`` inverts a participant's update under each server view;
``facepp attack templates`` inverts face templates under each matcher view. Both write a
JSON report, an image grid and (gradients) the DP plot. Only :mod:`argparse` and
:mod:`facepp.cli` are imported here; the attacks are imported when they run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from facepp.cli import Command
from facepp.errors import ConfigError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, help="dataset folder (default $FACEPP_DATA/orl)")
    parser.add_argument("--out", type=Path, default=Path("attack-out"), help="folder for the report and figures")
    parser.add_argument("--iterations", type=_positive_int, help="optimiser steps of each attack")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, help="crop cache folder")


def add_attack_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="attack", metavar="ATTACK", required=True)
    gradients = sub.add_parser("gradients", help="invert a participant's update: plaintext, top 10%%, DP, ciphertext")
    _common(gradients)
    gradients.add_argument("--people", type=_positive_int, default=4,
                           help="images in the victim's batch (>= 2; with 2, every view is also read for their templates)")
    gradients.add_argument("--local-epochs", type=_positive_int, default=1)
    gradients.add_argument("--methods", default="dlg,idlg,geiping", help="attacks on the plaintext update")
    gradients.add_argument("--noise", default="0.001,0.01,0.1,1", help="DP noise multipliers, comma-separated")
    gradients.add_argument("--clip", type=float, default=1.0, help="DP clip norm (default 1.0)")
    gradients.add_argument("--key-bits", type=int, default=2048, choices=(2048, 3072))
    templates = sub.add_parser("templates", help="train a decoder on public faces and invert held-out templates")
    _common(templates)
    templates.add_argument("--epochs", type=_positive_int, default=40, help="decoder training epochs")
    templates.add_argument("--people", type=_positive_int, default=10, help="held-out people whose templates are inverted")


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise ConfigError(f"{flag} needs positive numbers, got {text!r}")
    return values


def run_attack(args: argparse.Namespace) -> int:
    import torch

    from facepp.data import data_root

    torch.set_num_threads(1)
    data = args.data or data_root("orl")
    report: dict[str, Any]
    if args.attack == "gradients":
        from attacks.gradient_lab import GradientLabConfig, run_gradient_lab
        from attacks.inversion import METHODS, InversionConfig

        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise ConfigError(f"--methods takes some of {list(METHODS)}, got {args.methods!r}")
        if args.people < 2:
            raise ConfigError("--people must be at least 2: the participant's BatchNorm needs two images")
        attack = InversionConfig(iterations=args.iterations or 300, seed=args.seed)
        report = {"gradients": run_gradient_lab(GradientLabConfig(
            data=data, out=args.out, people=args.people, local_epochs=args.local_epochs, attack=attack, methods=methods,
            noise_multipliers=_floats(args.noise, "--noise"), clip=args.clip, key_bits=args.key_bits, seed=args.seed,
            cache_dir=args.cache_dir))}
    else:
        from attacks.template_lab import TemplateLabConfig, run_template_lab

        report = {"templates": run_template_lab(TemplateLabConfig(
            data=data, out=args.out, epochs=args.epochs, people=args.people, seed=args.seed, cache_dir=args.cache_dir))}
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2)
    (args.out / f"{args.attack}.json").write_text(text + "\n")
    print(text)  # noqa: T201 - CLI output
    return 0


ATTACK = Command(
    "attack",
    "privacy attack lab: invert participants' updates (gradients) or stored templates (templates) under each "
    "view a server can have, plaintext to ciphertext; writes a JSON report and figures",
    add_attack_arguments,
    run_attack,
)
