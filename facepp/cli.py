"""The ``facepp`` command line: the library's own subcommands plus those other packages register.

The face-pipeline subcommands (``train``, ``evaluate``, ``embed``, ``reduce``) live in
:mod:`facepp.face_commands`. Other installed packages add subcommands through
the ``facepp.commands`` entry-point group, whose objects are :class:`Command`
values; the library never imports an application. For example, in the
project's ``pyproject.toml``::

    [project.entry-points."facepp.commands"]
    simulate = "training.simulation.cli:SIMULATE"

An entry point that cannot be loaded does not vanish silently: its subcommand
stays listed and running it fails with a one-line error naming the cause.
The command line follows :mod:`facepp.console` (exit statuses 0/1/2, ``-v``/``-q``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from facepp.console import add_verbosity_flags, error_message, run_console, subcommand_parent
from facepp.errors import ConfigError

#: The entry-point group through which packages add ``facepp`` subcommands.
ENTRY_POINT_GROUP = "facepp.commands"


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, argument builder and runner (returns the exit status)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _unavailable(name: str, reason: str) -> Command:
    """Stands in for a registered subcommand whose entry point failed to load."""

    def run(args: argparse.Namespace) -> int:
        raise ConfigError(f"the {name!r} subcommand could not be loaded: {reason}")

    return Command(name, f"(unavailable: {reason})", lambda parser: None, run)


def _load(entry_point: EntryPoint) -> Command:
    try:
        command = entry_point.load()
    except Exception as exc:  # noqa: BLE001 - any failure of a plug-in becomes the stand-in's message
        return _unavailable(entry_point.name, f"{entry_point.value}: {type(exc).__name__}: {error_message(exc)}")
    if not isinstance(command, Command) or command.name != entry_point.name:
        return _unavailable(entry_point.name, f"{entry_point.value} is not a facepp.cli.Command named {entry_point.name!r}")
    return command


def registered_commands() -> list[Command]:
    """The subcommands of the ``facepp.commands`` entry-point group, sorted by name."""
    return [_load(ep) for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)]


def available_commands() -> list[Command]:
    """The library's own subcommands followed by the registered ones (a registered name never shadows a built-in)."""
    from facepp import face_commands

    builtin = list(face_commands.COMMANDS)
    names = {c.name for c in builtin}
    return builtin + [c for c in registered_commands() if c.name not in names]


def build_parser(commands: Iterable[Command] | None = None) -> argparse.ArgumentParser:
    """The top-level parser.

    Args:
        commands: The subcommands to offer (default: :func:`available_commands`).
    """
    parser = argparse.ArgumentParser(
        prog="facepp",
        description="Privacy-preserving face recognition: plaintext face pipeline (train, evaluate, embed, reduce) "
        "and the encrypted components. Datasets are found under $FACEPP_DATA.",
    )
    add_verbosity_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parent = subcommand_parent()
    for command in available_commands() if commands is None else commands:
        sp = sub.add_parser(command.name, help=command.help, description=command.help, parents=[parent])
        command.add_arguments(sp)
        sp.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 facepp error, 2 usage)."""
    return run_console(build_parser(), lambda args: args._run(args), argv)


if __name__ == "__main__":
    sys.exit(main())
