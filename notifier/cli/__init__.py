"""The ``notifier`` command: argument parsing, output and exit statuses.

This package is the only place that prints and the only place that turns an
exception into text and an exit status. Each subcommand lives in a module of
its own that provides ``register(subparsers)``; the parser it adds sets
``handler``, a function of the parsed arguments returning the exit status.

Every command but ``run`` (which sets up the daemon's logging itself) shows
log records of WARNING and above on stderr as ``notifier: <message>``; that
is how a plugin that failed to load is reported, once.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Final

from notifier import __version__
from notifier.errors import EX_SOFTWARE, EX_USAGE, NotifierError

EX_SIGPIPE: Final = 128 + 13
"""Exit status when the reader of our output went away, as after SIGPIPE."""

COMMAND_MODULES: Final[dict[str, str]] = {
    "check": "notifier.cli.check_cmd",
    "config": "notifier.cli.config_cmd",
    "plugins": "notifier.cli.plugins_cmd",
    "queue": "notifier.cli.queue_cmd",
    "replay": "notifier.cli.replay_cmd",
    "run": "notifier.cli.run_cmd",
    "silence": "notifier.cli.silence_cmd",
    "status": "notifier.cli.status_cmd",
    "test-send": "notifier.cli.test_send_cmd",
}
"""The module that registers each command."""


SELF_LOGGING_COMMANDS: Final = frozenset({"notifier.cli.run_cmd"})
"""Modules of commands that set up logging themselves."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors exit 64 (EX_USAGE), not 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EX_USAGE)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the parser with every subcommand registered, or with only
    ``command`` when it is one of :data:`COMMAND_MODULES`.

    The daemon is started as ``notifier run``, and stays resident with
    whatever it imported: with only its own command registered, it never
    loads the other commands' modules, nor what they import (the mail
    composer, the replay engine; about 1 MiB in all).
    """
    parser = _Parser(
        prog="notifier",
        description="Watch this server and email a person when something is wrong.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    subparsers = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=_Parser
    )
    if command in COMMAND_MODULES:
        module_names = [COMMAND_MODULES[command]]
    else:
        module_names = list(COMMAND_MODULES.values())
    for module_name in module_names:
        importlib.import_module(module_name).register(subparsers)
    return parser


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` the ``-c/--config`` option every command takes."""
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="configuration file (default: $NOTIFIER_CONFIG or "
        "/etc/notifier/notifier.toml)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(arguments[0] if arguments else None)
    args = parser.parse_args(arguments)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EX_USAGE

    own_logging = getattr(handler, "__module__", None) in SELF_LOGGING_COMMANDS
    with contextlib.nullcontext() if own_logging else _warnings_on_stderr():
        return _run(handler, args)


def _run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Return the handler's exit status, turning exceptions into text."""
    try:
        status: int = handler(args)
    except NotifierError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"notifier: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`notifier status | head`): stop quietly, as a
        # program killed by SIGPIPE would, and keep the interpreter's final
        # flush from failing on the same pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EX_SIGPIPE
    except Exception as exc:
        # A bug of ours: one line by default, the traceback on request.
        if os.environ.get("NOTIFIER_DEBUG"):
            logging.getLogger(__name__).exception("internal error")
        print(
            f"notifier: internal error: {type(exc).__name__}: {exc} "
            "(set NOTIFIER_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EX_SOFTWARE
    return status


@contextlib.contextmanager
def _warnings_on_stderr() -> Iterator[None]:
    """Show log records of WARNING and above on stderr, prefixed
    ``notifier: ``, while a one-shot command runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("notifier: %(message)s"))
    handler.addFilter(_not_quieted)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def _not_quieted(record: logging.LogRecord) -> bool:
    """Return whether ``record`` should be shown: not when a command gave its
    logger (or one above it) a ``NullHandler``, which is how a command says
    "I report this myself"."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None and logger is not logging.getLogger():
        if any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            return False
        logger = logger.parent
    return True
