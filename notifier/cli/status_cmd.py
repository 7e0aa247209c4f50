"""``notifier status [--json]``: what the running daemon last saw.

Reads the daemon's status file (rewritten while it runs, at least every
minute), the saved alert states, the silences, the outbox and the delivery
status, all in ``[notifier] state_dir``, and changes nothing there (beyond
the repairs that listing the outbox makes after a crash). The daemon counts
as running when it holds the state folder's lock (:mod:`notifier.instance`);
where that cannot be told, when the process named in the status file exists
and the file was written within :data:`RUNNING_WITHIN` seconds. Otherwise
the command says when it was last seen and still prints what it saw then.

Exit status: 0 when the daemon is running, 69 when it is not, 77 when the
state folder cannot be read, 78 for a configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from notifier.attachments import printable
from notifier.cli import add_config_argument
from notifier.cli.output import load_reserved
from notifier.config import Config
from notifier.delivery import read_status
from notifier.errors import EX_OK, EX_UNAVAILABLE, PermissionRefusedError
from notifier.instance import daemon_running
from notifier.loader import config_path
from notifier.outbox import Outbox
from notifier.silences import SilenceStore
from notifier.state import AlertState, read_alert_states
from notifier.units import human_duration

RUNNING_WITHIN: Final = 90.0
"""Seconds since the status file was written within which the daemon is up."""
SUMMARY_WIDTH: Final = 60
"""Longest summary printed in the table; --json has them whole."""


def register(subparsers: Any) -> None:
    """Add the ``status`` command."""
    parser = subparsers.add_parser(
        "status",
        help="show what the running daemon last saw",
        description="Print whether the daemon is running, each check's state and "
        "since when, firing alerts, silences and the outbox. Exit status 0 when "
        "the daemon is running, 69 when it is not.",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of text"
    )
    add_config_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the status; return 0 when the daemon runs, 69 when it does not.

    :raises ConfigError: when the configuration is invalid (exit 78).
    :raises PermissionRefusedError: when the state folder cannot be read
        (exit 77).
    """
    loaded = load_reserved(config_path(args.config))
    now = datetime.now(UTC)
    try:
        report = gather_status(loaded.config, now)
    except PermissionError as exc:
        folder = loaded.config.notifier.state_dir
        msg = (
            f"cannot read the state folder {folder}: {exc.strerror or exc}; run "
            "as root or as the daemon's user"
        )
        raise PermissionRefusedError(msg) from exc

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(render_text(report, now)))
    return EX_OK if report["daemon"]["running"] else EX_UNAVAILABLE


def gather_status(config: Config, now: datetime) -> dict[str, Any]:
    """Return everything ``notifier status`` shows, JSON-ready (times in ISO).

    :raises PermissionError: when the state folder or a file in it cannot be
        read.
    """
    # Imported here so that the command does not pay for APScheduler.
    from notifier.daemon import read_daemon_status

    state_dir = config.notifier.state_dir
    if state_dir.exists():
        # The readers below treat an unreadable file as a missing one, which
        # would turn "permission denied" into "not running".
        os.listdir(state_dir)  # noqa: PTH208 - raises PermissionError early
        if (state_dir / "status.json").exists():
            (state_dir / "status.json").read_bytes()
    seen = read_daemon_status(state_dir) or {}
    alerts = read_alert_states(state_dir)
    silences = SilenceStore(state_dir).list(now)
    silenced = {silence.name: silence.until for silence in silences}
    return {
        "daemon": _daemon(seen, state_dir, now),
        "checks": _checks(config, seen, alerts, silenced),
        "firing": _firing(alerts),
        "silences": [
            {
                "name": silence.name,
                "until": _iso(silence.until),
                "reason": silence.reason,
                "created": _iso(silence.created),
            }
            for silence in silences
        ],
        "outbox": _outbox(state_dir),
        "delivery": _delivery(state_dir),
    }


def _daemon(seen: Mapping[str, Any], state_dir: Path, now: datetime) -> dict[str, Any]:
    pid = seen.get("pid")
    written = _parse_time(seen.get("written"))
    running, holder = daemon_running(state_dir)
    if running and holder is not None and not seen.get("pid"):
        pid = holder  # started a moment ago, before its first status file
    if running is None:
        fresh = (
            written is not None and (now - written).total_seconds() <= RUNNING_WITHIN
        )
        alive = isinstance(pid, int) and not isinstance(pid, bool) and _alive(pid)
        running = fresh and alive
    return {
        "running": running,
        "pid": pid if isinstance(pid, int) else None,
        "version": seen.get("version"),
        "config": seen.get("config"),
        "started": seen.get("started"),
        "last_seen": _iso(written) if written else None,
        "state_dir": str(state_dir),
    }


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # It exists and belongs to another user (the daemon's).
        return True
    return True


def _checks(
    config: Config,
    seen: Mapping[str, Any],
    alerts: Mapping[str, AlertState],
    silenced: Mapping[str, datetime],
) -> list[dict[str, Any]]:
    records = seen.get("checks")
    records = records if isinstance(records, dict) else {}
    configured = [spec.name for spec in config.checks if spec.common.enabled]
    rows = []
    for name in sorted(set(configured) | set(records)):
        record = records.get(name)
        record = record if isinstance(record, dict) else {}
        state = alerts.get(name)
        status = str(record.get("status") or (state.status.name if state else ""))
        status = status or "PENDING"
        since = state.since if state and state.status.name == status else None
        until = silenced.get(name) or silenced.get("all")
        rows.append(
            {
                "name": name,
                "status": status,
                "since": _iso(since) if since else None,
                "firing": bool(state and state.firing),
                "flapping": bool(state and state.flapping),
                "silenced_until": _iso(until) if until else None,
                "summary": record.get("summary"),
                "last_run": record.get("last_run"),
                "next_run": record.get("next_run"),
                "duration": record.get("duration"),
                "value": record.get("value"),
                "in_config": name in configured,
            }
        )
    return rows


def _firing(alerts: Mapping[str, AlertState]) -> list[dict[str, Any]]:
    firing = []
    for name, state in sorted(alerts.items()):
        if not state.firing or state.alert_status is None:
            continue
        began = state.first_bad or state.since
        firing.append(
            {
                "name": name,
                "status": state.alert_status.name,
                "since": _iso(began) if began else None,
                "last_told": _iso(state.notified_at) if state.notified_at else None,
                "flapping": state.flapping,
            }
        )
    return firing


def _outbox(state_dir: Path) -> dict[str, Any]:
    outbox = Outbox.in_state_dir(state_dir)
    queued = outbox.entries()
    oldest = min((entry.created for entry in queued), default=None)
    return {
        "queued": len(queued),
        "oldest_queued": _iso_seconds(oldest),
        "failed": len(outbox.failed()),
        "folder": str(outbox.folder),
    }


def _delivery(state_dir: Path) -> dict[str, Any]:
    status = read_status(state_dir)
    return {
        "failing_since": _iso_seconds(status.failing_since),
        "failures": status.failures,
        "last_error": status.last_error,
        "next_try": _iso_seconds(status.next_try or None),
        "last_success": _iso_seconds(status.last_success),
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _iso_seconds(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return _iso(datetime.fromtimestamp(seconds, UTC))


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# Text ------------------------------------------------------------------------


def render_text(report: Mapping[str, Any], now: datetime) -> list[str]:
    """Return the report as lines for a terminal."""
    lines = _daemon_lines(report["daemon"], now)
    lines += ["", *_check_table(report["checks"], now)]
    lines += ["", *_firing_lines(report["firing"], now)]
    lines += _silence_lines(report["silences"], now)
    lines += _outbox_lines(report["outbox"], report["delivery"], now)
    return lines


def _when(text: str | None) -> str:
    moment = _parse_time(text)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _ago(text: str | None, now: datetime) -> str:
    moment = _parse_time(text)
    if moment is None:
        return "-"
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return "in " + human_duration(-seconds)
    return human_duration(seconds) + " ago"


def _since(text: str | None, now: datetime) -> str:
    moment = _parse_time(text)
    if moment is None:
        return "-"
    lasted = human_duration((now - moment).total_seconds())
    return f"{moment.strftime('%Y-%m-%d %H:%M')} ({lasted})"


def _daemon_lines(daemon: Mapping[str, Any], now: datetime) -> list[str]:
    seen = daemon["last_seen"]
    if daemon["running"]:
        head = (
            f"notifier {printable(str(daemon['version']))} is running as pid "
            f"{daemon['pid']}, started {_when(daemon['started'])}, last seen "
            f"{_ago(seen, now)}"
        )
    elif seen is None:
        head = (
            "notifier is not running; never seen (no status file in "
            f"{daemon['state_dir']})"
        )
    else:
        head = (
            f"notifier is not running; last seen {_when(seen)} "
            f"({_ago(seen, now)}) as pid {daemon['pid']}"
        )
    lines = [head]
    if daemon["config"]:
        lines.append(f"config: {printable(str(daemon['config']))}")
    return lines


def _check_table(checks: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    if not checks:
        return ["no checks configured"]
    header = ["CHECK", "STATUS", "SINCE (UTC)", "LAST RUN", "NEXT RUN", "SUMMARY"]
    rows = []
    for check in checks:
        status = check["status"]
        if check["silenced_until"]:
            status += " (silenced)"
        summary = printable(str(check["summary"] or ""))
        if not check["in_config"]:
            summary = "(no longer in the configuration) " + summary
        if len(summary) > SUMMARY_WIDTH:
            summary = summary[: SUMMARY_WIDTH - 3] + "..."
        rows.append(
            [
                printable(check["name"]),
                status,
                _since(check["since"], now),
                _ago(check["last_run"], now),
                _ago(check["next_run"], now),
                summary or "-",
            ]
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def _firing_lines(firing: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    if not firing:
        return ["firing: none"]
    lines = [f"firing: {len(firing)}"]
    for alert in firing:
        text = (
            f"  {printable(alert['name'])} {alert['status']} since "
            f"{_when(alert['since'])} ({_ago(alert['since'], now)})"
        )
        if alert["last_told"]:
            text += f", last told {_ago(alert['last_told'], now)}"
        if alert["flapping"]:
            text += ", flapping"
        lines.append(text)
    return lines


def _silence_lines(silences: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    if not silences:
        return ["silences: none"]
    lines = [f"silences: {len(silences)}"]
    for silence in silences:
        text = (
            f"  {printable(silence['name'])} until {_when(silence['until'])} "
            f"({_ago(silence['until'], now).removeprefix('in ')} left)"
        )
        if silence["reason"]:
            text += f": {printable(silence['reason'])}"
        lines.append(text)
    return lines


def _outbox_lines(
    outbox: Mapping[str, Any], delivery: Mapping[str, Any], now: datetime
) -> list[str]:
    text = f"outbox: {outbox['queued']} queued"
    if outbox["oldest_queued"]:
        text += f", the oldest queued {_ago(outbox['oldest_queued'], now)}"
    text += f"; {outbox['failed']} failed"
    if outbox["queued"] or outbox["failed"]:
        text += " (`notifier queue list`)"
    lines = [text]
    if delivery["failing_since"]:
        attempts = delivery["failures"]
        failing = (
            f"delivery: failing since {_when(delivery['failing_since'])} "
            f"({attempts} attempt{'' if attempts == 1 else 's'}): "
            f"{printable(str(delivery['last_error']))}"
        )
        if delivery["next_try"]:
            failing += f"; next try {_ago(delivery['next_try'], now)}"
        lines.append(failing)
    return lines
