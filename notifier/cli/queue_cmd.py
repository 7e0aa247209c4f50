"""``notifier queue [list|flush|retry ID|drop ID]``: look at and act on the outbox.

``list`` (the default) shows each queued message and each dead letter with
its age, attempts, next try and last error; ``flush`` delivers every queued
message now, ignoring next-try times and the transport's backoff; ``retry``
makes one message due now (a dead letter goes back in the queue); ``drop``
deletes one without asking and says what it was. IDs may be shortened to any
unique prefix. Every row has an ID of its own: when a message was refused
for good for some recipients while others still wait, the dead letter's ID
is the queued one's plus ``-r1``, so each part can be retried or dropped
alone. Changes are made under the outbox lock, which a sender holds only
while it changes files (never while it waits for a mail server), so they
neither race the daemon's sender nor wait for a hung server.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Final

from notifier.cli import add_config_argument
from notifier.cli.output import load_reserved
from notifier.delivery import DeliveryStatus, Sender, read_status
from notifier.errors import EX_CONFIG, EX_NOPERM, EX_OK, EX_UNAVAILABLE
from notifier.loader import Loaded, config_path
from notifier.outbox import Entry, Outbox
from notifier.transport import create_transport
from notifier.units import human_duration

_ERROR_WIDTH: Final = 60
_SUBJECT_WIDTH: Final = 50


def register(subparsers: Any) -> None:
    """Add the ``queue`` command and its actions."""
    parser = subparsers.add_parser(
        "queue",
        help="look at and act on the outbox of undelivered mail",
        description="Without an action, list the outbox. Every message has an "
        "ID of its own: when a message was refused for good for some "
        "recipients while others still wait, the refused part is listed as a "
        "failed message whose ID is the queued one's plus -r1.",
    )
    add_config_argument(parser)
    parser.set_defaults(handler=run_list)
    actions = parser.add_subparsers(
        title="actions", metavar="ACTION", parser_class=type(parser)
    )
    listing = actions.add_parser("list", help="show queued and failed messages")
    add_config_argument(listing)
    listing.set_defaults(handler=run_list)
    flush = actions.add_parser(
        "flush", help="deliver every queued message now, ignoring next-try times"
    )
    add_config_argument(flush)
    flush.set_defaults(handler=run_flush)
    for name, handler, text in (
        ("retry", run_retry, "make one message (queued or failed) due now"),
        ("drop", run_drop, "delete one message from the outbox"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument(
            "id", metavar="ID", help="the message's id, or a unique prefix"
        )
        add_config_argument(action)
        action.set_defaults(handler=handler)


def _outbox(loaded: Loaded) -> Outbox:
    return Outbox.in_state_dir(loaded.config.notifier.state_dir)


def _ago(then: float, now: float) -> str:
    return human_duration(now - then)


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _row(entry: Entry, now: float, failed: bool, status: DeliveryStatus) -> list[str]:
    # While the transport backs off, nothing goes before its next try, even
    # a message queued after the last attempt.
    not_before = entry.next_try
    if status.failing_since is not None:
        not_before = max(not_before, status.next_try)
    if failed:
        next_try = "failed"
    elif not_before <= now:
        next_try = "due"
    else:
        next_try = "in " + human_duration(not_before - now)
    return [
        entry.id,
        _ago(entry.created, now),
        str(entry.attempts),
        next_try,
        _clip(entry.last_error, _ERROR_WIDTH) or "-",
        _clip(entry.subject, _SUBJECT_WIDTH),
    ]


def _print_table(rows: list[list[str]]) -> None:
    header = ["ID", "AGE", "ATTEMPTS", "NEXT TRY", "LAST ERROR", "SUBJECT"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())


def _print_delivery(status: DeliveryStatus, now: float) -> None:
    if status.failing_since is None:
        return
    print(
        f"delivery failing for {_ago(status.failing_since, now)} "
        f"({status.failures} attempt(s)): {status.last_error}"
    )
    if status.next_try > now:
        print(f"next try in {human_duration(status.next_try - now)}")
    print()


def run_list(args: argparse.Namespace) -> int:
    """Print the queued messages, then the dead letters."""
    loaded = load_reserved(config_path(args.config))
    outbox = _outbox(loaded)
    now = time.time()
    queued, failed = outbox.entries(), outbox.failed()
    status = read_status(loaded.config.notifier.state_dir)
    _print_delivery(status, now)
    if not queued and not failed:
        print(f"the outbox is empty ({outbox.folder})")
        return EX_OK

    rows = [_row(entry, now, False, status) for entry in queued]
    rows += [_row(entry, now, True, status) for entry in failed]
    _print_table(rows)
    print()
    print(f"{len(queued)} queued, {len(failed)} failed ({outbox.folder})")
    return EX_OK


def run_flush(args: argparse.Namespace) -> int:
    """Deliver every queued message now; exit 69/77/78 when the transport fails."""
    loaded = load_reserved(config_path(args.config))
    outbox = _outbox(loaded)
    transport = create_transport(loaded.config, loaded.registry.transport_map())
    sender = Sender(loaded.config, transport, outbox)

    report = sender.deliver_due(force=True)

    print(
        f"{len(report.sent)} sent, {len(report.retrying)} to retry later, "
        f"{len(report.failed)} moved to failed, {report.queued} still queued"
    )
    if not report.error:
        return EX_OK
    print(
        f"notifier: delivery via {transport.describe()} failed: {report.error}",
        file=sys.stderr,
    )
    if report.error_kind == "auth":
        return EX_NOPERM
    if report.error_kind == "config":
        return EX_CONFIG
    return EX_UNAVAILABLE


def run_retry(args: argparse.Namespace) -> int:
    """Make one message due now.

    :raises UsageError: when the ID is unknown (exit 64).
    """
    loaded = load_reserved(config_path(args.config))
    outbox = _outbox(loaded)
    with outbox.lock():
        entry = outbox.retry(args.id, now=time.time())
    print(
        f"{entry.id} {entry.subject!r} is due now for {', '.join(entry.recipients)}; "
        "the daemon sends it on its next round, `notifier queue flush` at once"
    )
    return EX_OK


def run_drop(args: argparse.Namespace) -> int:
    """Delete one message and say what it was.

    :raises UsageError: when the ID is unknown (exit 64).
    """
    loaded = load_reserved(config_path(args.config))
    outbox = _outbox(loaded)
    with outbox.lock():
        entry, failed = outbox.drop(args.id)
    where = "failed message" if failed else "queued message"
    age = _ago(entry.created, time.time())
    print(
        f"dropped {where} {entry.id} {entry.subject!r} "
        f"(to {', '.join(entry.recipients)}, queued {age} ago)"
    )
    return EX_OK
