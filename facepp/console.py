"""The command-line convention shared by every facepp console script.

``facepp``, ``facepp-federation``, ``facepp-server``, ``facepp-participant``,
``facepp-matcher`` and ``facepp-terminal`` each build an :mod:`argparse` parser
(``build_parser()``) and hand it to :func:`run_console` from ``main(argv=None) -> int``:

* exit status 0: success;
* exit status 1: a project error (:class:`~facepp.errors.FaceppError`, or an
  operating-system error on a named file), printed as ONE line
  ``PROG: error: MESSAGE`` on stderr, never a traceback;
* exit status 2: a usage error (argparse prints the usage and the problem; a
  :class:`~facepp.errors.UsageError` found after parsing prints one line);
* exit status 130: interrupted (Ctrl-C).

Every script takes the same ``-v/--verbose`` (debug logging) and ``-q/--quiet``
(warnings and errors only) flags, before or after a subcommand; the
``FACEPP_LOG_LEVEL`` environment variable (``DEBUG``, ``INFO``, ...) overrides
both. Logging goes to stderr and is configured here only, never in library code.

Any role may import this module: it loads no crypto, model or web code.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from facepp.errors import FaceppError, UsageError

#: Exit status of a project error (status 2 is argparse's usage error).
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_verbosity_flags(parser: argparse.ArgumentParser, *, subcommand: bool = False) -> None:
    """Add ``-v/--verbose`` and ``-q/--quiet``.

    Args:
        parser: The parser to extend.
        subcommand: ``True`` for a subcommand's parser: the flags then default to
            "not given" so that they do not overwrite the top-level parser's values.
    """
    verbose_default: int | str = argparse.SUPPRESS if subcommand else 0
    quiet_default: bool | str = argparse.SUPPRESS if subcommand else False
    group = parser.add_argument_group("logging")
    group.add_argument("-v", "--verbose", action="count", default=verbose_default, help="debug logging")
    group.add_argument("-q", "--quiet", action="store_true", default=quiet_default, help="only warnings and errors")


def subcommand_parent() -> argparse.ArgumentParser:
    """A parent parser carrying the verbosity flags, for ``add_parser(..., parents=[...])``."""
    parent = argparse.ArgumentParser(add_help=False)
    add_verbosity_flags(parent, subcommand=True)
    return parent


def log_level(*, verbose: int = 0, quiet: bool = False, env: dict[str, str] | None = None) -> str:
    """The logging level name the flags (or ``FACEPP_LOG_LEVEL``) ask for; ``quiet`` wins over ``verbose``."""
    override = (os.environ if env is None else env).get("FACEPP_LOG_LEVEL", "").strip().upper()
    if override:
        return override
    return "WARNING" if quiet else "DEBUG" if verbose else "INFO"


def configure_logging(*, verbose: int = 0, quiet: bool = False) -> None:
    """Send log records to stderr at the level of :func:`log_level` (entry points only)."""
    level = log_level(verbose=verbose, quiet=quiet)
    if not isinstance(logging.getLevelName(level), int):
        level = "INFO"
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger().setLevel(level)  # also when a handler was installed before (tests, embedding)
    if level != "DEBUG":
        for chatty in ("alembic", "urllib3", "matplotlib", "PIL"):
            logging.getLogger(chatty).setLevel(logging.WARNING)


def error_message(exc: BaseException) -> str:
    """One line describing a project or file error (no traceback, no type names a user cannot act on)."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def run_console(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv``, configure logging and run; map errors to the exit statuses above.

    Args:
        parser: The script's parser; it must carry the verbosity flags (:func:`add_verbosity_flags`).
        run: Does the work; returns the exit status.
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status; a usage error (or ``--help``) returns argparse's status instead of exiting.
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 after printing the usage error, 0 after --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    configure_logging(verbose=getattr(args, "verbose", 0), quiet=getattr(args, "quiet", False))
    try:
        return int(run(args))
    except UsageError as exc:
        print(f"{parser.prog}: error: {error_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except (FaceppError, OSError) as exc:
        print(f"{parser.prog}: error: {error_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
