"""``notifier replay CHECK FILE``: tune a logscan check on an existing log.

Runs the check's patterns, ignore patterns and thresholds over the whole
file, cut into the runs the daemon would have made (see
:mod:`notifier.replay`), and prints each run that had matching lines: when,
the status and summary the alert would have carried, and the evidence. The
check's saved offsets are not read or changed.

The runs then go through the alert state as in the daemon, so the output
also says which messages would have gone out (PROBLEM, REMINDER, RECOVERY,
FLAPPING), with the check's ``for``, ``within`` and ``repeat`` applied.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

from notifier.checks.base import Status
from notifier.checks.logscan import (
    plural,
    rules_from_options,
    thresholds_from_options,
)
from notifier.cli import add_config_argument
from notifier.cli.output import load_reserved
from notifier.config import CheckSpec, Config
from notifier.errors import EX_OK, ConfigError, DataError, UsageError
from notifier.events import AlertEvent, EventKind
from notifier.loader import config_path
from notifier.replay import (
    Window,
    WindowResult,
    alert_messages,
    plan_windows,
    replay,
    time_parser,
)
from notifier.units import format_duration, parse_duration

_EVIDENCE_INDENT = "    "


def register(subparsers: Any) -> None:
    """Add the ``replay`` command."""
    parser = subparsers.add_parser(
        "replay",
        help="run a logscan check's rules over an existing log file",
        description="Run a logscan check's rules over the whole of FILE (a log, "
        "or a gzip-compressed one) and print what the daemon would have "
        "reported: each run window with matching lines, its status and summary, "
        "and the evidence. The check's saved offsets are left alone.",
    )
    parser.add_argument("check", metavar="CHECK", help="name of a logscan check")
    parser.add_argument("file", metavar="FILE", help="the log file to replay")
    parser.add_argument(
        "--window",
        metavar="DURATION",
        help="length of one run (default: the check's 'every'), such as '5m'",
    )
    add_config_argument(parser)
    parser.set_defaults(handler=run_replay)


def _window_seconds(text: str | None, spec: CheckSpec) -> float:
    if text is None:
        return spec.common.every
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        msg = f"--window: {exc}"
        raise UsageError(msg) from exc
    if seconds <= 0:
        msg = f"--window: {text!r} is not a length of time; use for example '1m'"
        raise UsageError(msg)
    return seconds


def _logscan_check(config: Config, name: str) -> CheckSpec:
    try:
        spec = config.check(name)
    except KeyError:
        names = [spec.name for spec in config.checks if spec.type == "logscan"]
        known = ", ".join(repr(name) for name in names) or "none"
        msg = f"no check named {name!r} in {config.path} (logscan checks: {known})"
        raise UsageError(msg) from None
    if spec.type != "logscan":
        raise ConfigError.single(
            config.path,
            spec.location,
            "type",
            f"is {spec.type!r}; replay works on logscan checks only",
        )
    return spec


def _when(window: Window, seconds: float) -> str:
    if window.began is None:
        return "whole file"
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(window.began))
    return f"{start} +{format_duration(seconds)}"


def _print_window(found: WindowResult, seconds: float) -> None:
    result = found.result
    print(f"{_when(found.window, seconds)}  {result.status.name}  {result.summary}")
    for line in result.evidence:
        print(f"{_EVIDENCE_INDENT}{line}")


def run_replay(args: argparse.Namespace) -> int:
    """Replay the check over the file and print the runs with matches."""
    loaded = load_reserved(config_path(args.config))
    spec = _logscan_check(loaded.config, args.check)
    seconds = _window_seconds(args.window, spec)
    rules = rules_from_options(spec.options, spec.location)
    thresholds = thresholds_from_options(spec.options)
    path = Path(args.file)

    # Plan the windows first: an unreadable file fails before any output.
    try:
        parse = time_parser(path)
        windows = plan_windows(path, seconds, parse)
        results = list(replay(path, windows, rules, spec.options, thresholds))
    except (OSError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        msg = f"cannot read {path}: {reason}"
        raise DataError(msg) from exc

    how = (
        f"{plural(len(windows), 'run')} of {format_duration(seconds)} by the "
        "timestamps at line starts"
        if parse is not None
        else "one run: no timestamps at line starts"
    )
    lines = plural(sum(found.lines for found in results), "line")
    print(f'replay of check "{spec.name}" over {path}: {lines}, {how}')
    config = loaded.config
    runs = list(
        alert_messages(
            results,
            spec,
            seconds,
            host=config.notifier.hostname,
            mail=config.mail,
        )
    )
    for run in runs:
        matched = run.found is not None and run.found.result.metrics.get("matches")
        if run.found is not None and (matched or run.events):
            _print_window(run.found, seconds)
        elif run.events:
            print(f"(a run with no new lines)  {Status.OK.name}")
        for event in run.events:
            print(f"{_EVIDENCE_INDENT}-> would send {_describe(event)}")

    _print_totals(results)
    _print_messages([event for run in runs for event in run.events])
    return EX_OK


def _describe(event: AlertEvent) -> str:
    if event.kind in (EventKind.PROBLEM, EventKind.REMINDER):
        return f"{event.kind.value} ({event.status.name})"
    return event.kind.value


def _print_messages(events: list[AlertEvent]) -> None:
    if not events:
        print("no message would have gone out")
        return
    kinds = Counter(event.kind.value for event in events)
    listed = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    noun = "message" if len(events) == 1 else "messages"
    print(f"{len(events)} {noun} would have gone out: {listed}")


def _print_totals(results: list[WindowResult]) -> None:
    matches = sum(int(found.result.metrics.get("matches", 0)) for found in results)
    alerting = [found for found in results if found.result.status != Status.OK]
    by_status = {
        status.name: sum(1 for found in alerting if found.result.status == status)
        for status in (Status.WARNING, Status.CRITICAL, Status.UNKNOWN)
    }
    counts = ", ".join(f"{count} {name}" for name, count in by_status.items() if count)
    print(
        f"{len(alerting)} of {plural(len(results), 'run')} would have alerted"
        + (f" ({counts})" if counts else "")
        + f"; {plural(matches, 'matching line')} in all"
    )
