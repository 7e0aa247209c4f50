"""``notifier config check`` and ``notifier config show``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from notifier.cli import add_config_argument
from notifier.cli.output import load_reserved
from notifier.config import render_config
from notifier.errors import EX_OK, ConfigError
from notifier.loader import config_path
from notifier.plugins import DISABLE_ENV


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
    """Validate the configuration and the plugins it loads.

    :raises ConfigError: when the file has problems, or a plugin failed to
        load (exit 78); each failed plugin was already reported by the
        plugin loader's log.
    """
    path = config_path(args.config)
    loaded = load_reserved(path)
    failed = len(loaded.registry.failures)
    if failed:
        msg = (
            f"{_plural(failed, 'plugin')} failed to load (reported above), so the "
            "check types it provides are missing; fix or remove it, or name it in "
            f"${DISABLE_ENV}"
        )
        raise ConfigError.single(path, "", None, msg)
    count = len(loaded.config.checks)
    print(f"{path}: OK ({_plural(count, 'check')})")
    return EX_OK


def run_show(args: argparse.Namespace) -> int:
    """Print the configuration in force, with defaults filled in."""
    loaded = load_reserved(config_path(args.config))
    sys.stdout.write(render_config(loaded.config, loaded.registry.check_type_map()))
    return EX_OK


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
