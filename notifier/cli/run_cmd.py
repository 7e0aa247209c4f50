"""``notifier run``: the daemon in the foreground, logging to stderr."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from notifier.cli import add_config_argument
from notifier.config import parse_notifier_table, read_toml
from notifier.logsetup import setup_logging
from notifier.sdnotify import SystemdNotifier

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``run`` command."""
    parser = subparsers.add_parser(
        "run",
        help="run the daemon in the foreground (what the systemd unit starts)",
        description="Run the checks on their schedules and deliver alerts until "
        "SIGTERM or SIGINT. SIGHUP reloads the configuration. Logs go to stderr "
        "(with journald priorities under systemd).",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="overrides [notifier] log_level",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Start the daemon and return its exit status when it stops."""
    # Imported here so the one-shot commands do not pay for APScheduler.
    from notifier.daemon import Daemon
    from notifier.loader import config_path
    from notifier.mallocsettings import tune_malloc

    path = config_path(args.config)
    level = args.log_level
    if level is None:
        # The level is needed before the full load, whose errors it logs.
        level = parse_notifier_table(read_toml(path), path).log_level
    setup_logging(level)
    tune_malloc()  # before the first thread, so that it applies to all

    # Read once and hidden from children, so command checks do not inherit it.
    systemd = SystemdNotifier.from_environment(unset_environment=True)
    daemon = Daemon(path, systemd)
    return daemon.run()
