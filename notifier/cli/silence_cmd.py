"""``notifier silence``: hold back a check's alerts for a while; list or clear.

``notifier silence NAME --for 2h [--reason TEXT]`` silences one configured
check, or every check with the name ``all``; ``--list`` shows the silences
running now and ``--clear NAME`` ends one. The silences live in the state
folder, where the running daemon reads them at its next check run: no
restart, no signal. Times are printed in local time and in UTC.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from notifier.cli import add_config_argument
from notifier.cli.output import load_reserved
from notifier.config import Config
from notifier.errors import (
    EX_OK,
    PermissionRefusedError,
    TemporaryError,
    UsageError,
)
from notifier.loader import config_path
from notifier.options import suggest
from notifier.silences import ALL, Silence, SilenceStore
from notifier.units import format_duration, parse_duration

_LOCAL_FORMAT: Final = "%Y-%m-%d %H:%M %Z"
_UTC_FORMAT: Final = "%Y-%m-%d %H:%M UTC"


def register(subparsers: Any) -> None:
    """Add the ``silence`` command."""
    parser = subparsers.add_parser(
        "silence",
        help="hold back a check's alerts for a while; list or clear silences",
        description="Hold back the alerts of a check (or of 'all' checks) for a "
        "while. The running daemon honours it from its next check run; a "
        "problem that outlasts the silence is announced when it ends.",
    )
    parser.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help=f"a configured check, or {ALL!r} for every check",
    )
    parser.add_argument(
        "--for",
        dest="duration",
        metavar="DURATION",
        help="how long, such as 30m, 2h or 1d",
    )
    parser.add_argument(
        "--reason", default="", metavar="TEXT", help="why, shown in --list"
    )
    actions = parser.add_mutually_exclusive_group()
    actions.add_argument(
        "--list", action="store_true", help="show the silences running now"
    )
    actions.add_argument("--clear", metavar="NAME", help="end the silence on NAME")
    add_config_argument(parser)
    parser.set_defaults(handler=run_silence)


def run_silence(args: argparse.Namespace) -> int:
    """Add, list or clear silences, as the arguments say.

    :raises UsageError: when the arguments do not fit together, the name is
        not a configured check, or the duration is not one.
    :raises PermissionRefusedError: when the state folder cannot be written.
    """
    _check_arguments(args)
    config = load_reserved(config_path(args.config)).config
    store = SilenceStore(config.notifier.state_dir)
    now = datetime.now(UTC)

    # The store logs for the daemon; here the one-line warning below says it.
    logging.getLogger("notifier.silences").addHandler(logging.NullHandler())

    try:
        if args.list:
            _print_list(store.list(now), now)
        elif args.clear is not None:
            _clear(store, config, args.clear)
        else:
            _add(store, config, args.name, args.duration, args.reason, now)
    except PermissionError as exc:
        msg = (
            f"{store.path}: permission denied; run this as root or as the daemon's user"
        )
        raise PermissionRefusedError(msg) from exc
    except OSError as exc:
        msg = f"{store.path}: {exc.strerror or exc}"
        raise TemporaryError(msg) from exc

    if store.set_aside is not None:
        print(
            f"notifier: warning: {store.path} was damaged; it was moved to "
            f"{store.set_aside} and a new one started",
            file=sys.stderr,
        )
    elif store.damage is not None:
        print(
            f"notifier: warning: {store.path} cannot be read ({store.damage}); "
            "the daemon ignores it until the next silence replaces it",
            file=sys.stderr,
        )
    return EX_OK


def _check_arguments(args: argparse.Namespace) -> None:
    if args.list or args.clear is not None:
        extra = [
            flag
            for flag, given in (
                ("NAME", args.name is not None),
                ("--for", args.duration is not None),
                ("--reason", bool(args.reason)),
            )
            if given
        ]
        if extra:
            action = "--list" if args.list else "--clear"
            msg = f"{action} takes no {' or '.join(extra)}"
            raise UsageError(msg)
        return
    if args.name is None:
        msg = "name a check to silence, or use --list or --clear NAME"
        raise UsageError(msg)
    if args.duration is None:
        msg = f"say how long to silence {args.name!r}, such as --for 2h"
        raise UsageError(msg)


def _add(
    store: SilenceStore,
    config: Config,
    name: str,
    duration_text: str,
    reason: str,
    now: datetime,
) -> None:
    configured = [spec.name for spec in config.checks]
    if name != ALL and name not in configured:
        raise _unknown_check(name, [*configured, ALL])
    try:
        seconds = parse_duration(duration_text)
    except ValueError as exc:
        msg = f"--for: {exc}"
        raise UsageError(msg) from exc
    if seconds <= 0:
        msg = f"--for: {duration_text!r} is no time at all; use --clear to end one"
        raise UsageError(msg)

    previous = next((s for s in store.list(now) if s.name == name), None)
    silence = store.add(name, now + timedelta(seconds=seconds), reason)
    subject = "every check" if name == ALL else repr(name)
    if previous is not None:
        print(f"replaced the silence on {subject}, which ran until {_when(previous)}")
    print(f"silenced {subject} for {format_duration(seconds)}, until {_when(silence)}")
    if silence.reason:
        print(f"reason: {silence.reason}")


def _clear(store: SilenceStore, config: Config, name: str) -> None:
    running = {silence.name for silence in store.list()}
    known = {spec.name for spec in config.checks} | running | {ALL}
    if name not in known:
        raise _unknown_check(name, known)
    removed = store.clear(name)
    subject = "every check" if name == ALL else repr(name)
    if removed is None:
        print(f"no silence on {subject}; nothing to clear")
        return
    print(f"cleared the silence on {subject}, which ran until {_when(removed)}")


def _unknown_check(name: str, known: Any) -> UsageError:
    hint = suggest(name, known) or f"or {ALL!r}; `notifier check` lists the checks"
    msg = f"{name!r} is not a configured check ({hint})"
    return UsageError(msg)


def _when(silence: Silence) -> str:
    """Return the end of ``silence`` in local time and, if different, UTC."""
    local, universal = _local_and_utc(silence.until)
    return local if local == universal else f"{local} ({universal})"


def _local_and_utc(moment: datetime) -> tuple[str, str]:
    return (
        moment.astimezone().strftime(_LOCAL_FORMAT),
        moment.astimezone(UTC).strftime(_UTC_FORMAT),
    )


def _left(until: datetime, now: datetime) -> str:
    """Return the time left, whole minutes rounded up once past a minute."""
    seconds = (until - now).total_seconds()
    if seconds >= 60:
        return format_duration(math.ceil(seconds / 60) * 60)
    return format_duration(math.ceil(seconds))


def _print_list(silences: list[Silence], now: datetime) -> None:
    if not silences:
        print("no silences")
        return
    rows = [
        (silence.name, *_local_and_utc(silence.until), _left(silence.until, now))
        for silence in silences
    ]
    header = ("NAME", "UNTIL", "UTC", "LEFT")

    # A UTC column that repeats the local one is left out.
    columns = [0, 1, 2, 3] if any(row[1] != row[2] for row in rows) else [0, 1, 3]
    table = [[line[i] for i in columns] for line in [header, *rows]]
    reasons = ["REASON", *(silence.reason for silence in silences)]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line, reason in zip(table, reasons, strict=True):
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        print("  ".join([*cells, reason]).rstrip())
