"""``notifier config check`` and ``notifier config show``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from notifier.cli import add_config_argument
from notifier.config import render_config
from notifier.errors import EX_OK
from notifier.loader import config_path, load


def register(subparsers: Any) -> None:
    """Add the ``config`` command and its two actions."""
    parser = subparsers.add_parser("config", help="validate or print the configuration")
    actions = parser.add_subparsers(
        title="actions", metavar="ACTION", parser_class=type(parser)
    )
    check = actions.add_parser(
        "check", help="validate the file; print every problem found"
    )
    add_config_argument(check)
    check.set_defaults(handler=run_check)
    show = actions.add_parser(
        "show", help="print the effective configuration as TOML, secrets redacted"
    )
    add_config_argument(show)
    show.set_defaults(handler=run_show)


def run_check(args: argparse.Namespace) -> int:
    """Validate the configuration; problems raise ConfigError (exit 78)."""
    path = config_path(args.config)
    loaded = load(path)
    for failure in loaded.registry.failures:
        print(f"notifier: warning: {failure}", file=sys.stderr)
    count = len(loaded.config.checks)
    print(f"{path}: OK ({count} check{'s' if count != 1 else ''})")
    return EX_OK


def run_show(args: argparse.Namespace) -> int:
    """Print the configuration in force, with defaults filled in."""
    loaded = load(config_path(args.config))
    sys.stdout.write(render_config(loaded.config, loaded.registry.check_type_map()))
    return EX_OK
