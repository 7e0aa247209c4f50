"""``notifier test-send``: prove that mail gets out, step by step.

Composes the test message and sends it at once through the configured
transport, bypassing the outbox, printing each step: connect, TLS version
and cipher, the certificate's subject and expiry, the EHLO extensions and
AUTH mechanisms, the login, the send and the server's reply; then a verdict.
It names the classic mistakes with their fix (implicit TLS against a STARTTLS
port and the reverse, a certificate for another name, one about to expire).
``--debug`` adds the SMTP dialogue with the AUTH exchange masked.

Exit statuses: 0 sent; 77 login refused; 69 server unreachable, certificate
not verified, or the message or a recipient refused; 75 refused for now
(4xx), including a login the server could not check right now; 64 an
``--attach`` file that cannot be read (a usage error, found before anything
is sent); 78 configuration error.

The work is in :mod:`notifier.cli.test_send`, imported when the command runs:
it needs ``smtplib`` and ``ssl`` (OpenSSL, 5 MiB resident), which every
other command, the daemon first, would otherwise load just to build the
command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from notifier.cli import add_config_argument


def register(subparsers: Any) -> None:
    """Add the ``test-send`` command."""
    parser = subparsers.add_parser(
        "test-send",
        help="send a test message now and show each step",
        description="Compose a test message and send it now through the "
        "configured transport (not through the outbox), printing each step and "
        "a verdict. Exit 0 sent, 77 login refused, 69 unreachable or refused, "
        "75 refused for now, 64 an --attach file that cannot be read, 78 "
        "configuration error.",
    )
    parser.add_argument(
        "--to",
        metavar="ADDR",
        action="append",
        help="recipient (repeatable; default: [mail] to)",
    )
    parser.add_argument(
        "--attach", metavar="FILE", type=Path, help="attach the tail of FILE"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="also show the SMTP dialogue (login credentials masked)",
    )
    add_config_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Send the test message; return the exit status."""
    from notifier.cli.test_send import send_test

    return send_test(args)
