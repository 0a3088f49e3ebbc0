"""The ``facepp`` command line: one entry point, subcommands registered in :data:`COMMANDS`.

Other packages add subcommands (``simulate``, crypto demos, ...) by appending a
:class:`Command` to :data:`COMMANDS` (or calling :func:`register`) before
:func:`main` builds the parser; e.g. in ``training/cli.py``::

    from facepp.cli import Command, register
    register(Command("simulate", "run a local federation", add_arguments, run))

The face-pipeline subcommands live in :mod:`facepp.face_commands`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from facepp.errors import FaceppError

logger = logging.getLogger("facepp")


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, argument builder and runner (returns the exit code)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: list[Command] = []


def register(command: Command) -> None:
    """Add a subcommand (replacing one of the same name)."""
    COMMANDS[:] = [c for c in COMMANDS if c.name != command.name]
    COMMANDS.append(command)


def _builtin_commands() -> None:
    from facepp import face_commands

    builtin = list(face_commands.COMMANDS)
    try:  # the composition root: the training adapter adds `simulate` when it is installed
        from training.cli import SIMULATE

        builtin.append(SIMULATE)
    except ImportError:
        pass
    for command in builtin:
        if all(c.name != command.name for c in COMMANDS):
            COMMANDS.append(command)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    _builtin_commands()
    parser = argparse.ArgumentParser(
        prog="facepp",
        description="Privacy-preserving face recognition: plaintext face pipeline (train, evaluate, embed) "
        "and the encrypted components. Datasets are found under $FACEPP_DATA.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sp = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sp)
        sp.set_defaults(_run=command.run)
    return parser


def configure_logging(verbosity: int, quiet: bool) -> None:
    """Log to stderr; level from -v/-q or ``FACEPP_LOG_LEVEL``."""
    level = os.environ.get("FACEPP_LOG_LEVEL", "").upper() or ("WARNING" if quiet else "DEBUG" if verbosity > 1 else "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code (2: usage, 1: facepp error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    configure_logging(args.verbose, args.quiet)
    try:
        return int(args._run(args))
    except FaceppError as exc:
        logger.error("%s: %s", type(exc).__name__, exc)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
