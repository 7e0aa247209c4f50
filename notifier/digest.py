"""The daily digest: one message a day with the state of everything.

:func:`compose_digest` turns the day's record (:class:`DigestLog`, which
lives in :mod:`notifier.digestlog` and is re-exported here), the checks' last
results, the alert states and the outbox into one email: every check's
state, the checks that came close to a threshold, and what was sent,
delayed and failed. The digest doubles as a dead-man's switch: its last line
says that if it stops arriving, notifier itself is broken on this host.

"Came close" rule: a check came close when, while its result was OK, its
value came within 20% of its ``warning`` option (:data:`NEAR_FRACTION`).
When ``warning`` is the larger limit (or ``critical`` is not set) higher is
worse, and the value came close at ``value >= 0.8 * warning``; when
``critical`` is set below ``warning`` lower is worse, and it came close at
``value * 0.8 <= warning``. The value looked at is the day's peak (from
:meth:`DigestLog.note_value`) and the last result's value. A check without a
numeric ``warning`` option (a command check) never counts as close.

Every text the digest quotes from checks or the mail server (summaries,
subjects, errors) is masked with the same redactor as alerts
(``[mail] redact`` and the built-in secret shapes) before it is shortened.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Final

from notifier import __version__
from notifier.attachments import printable
from notifier.compose import SUBJECT_LIMIT, new_message
from notifier.config import CheckSpec, Config
from notifier.delivery import DeliveryStatus, read_status
from notifier.digestlog import DigestLog, NotedEvent, Peak
from notifier.mailtext import clean_header_value, shorten
from notifier.outbox import Entry, Outbox
from notifier.redact import Redactor, redactor_for
from notifier.state import AlertState
from notifier.units import human_duration

__all__ = [
    "DigestLog",
    "NotedEvent",
    "Peak",
    "compose_digest",
    "digest_recipients",
    "near_miss",
]

NEAR_FRACTION: Final = 0.8
"""A value this far towards ``warning`` (or beyond, while OK) came close."""
LISTED: Final = 50
"""Longest list of alerts, waiting or failed messages shown in the body."""
_LINE_LIMIT: Final = 78
_WRAP: Final = 72
_PENDING: Final = "PENDING"
_ORDER: Final = ("CRITICAL", "WARNING", "UNKNOWN", _PENDING, "OK")


@dataclass(frozen=True)
class _Row:
    """One check as the digest shows it."""

    name: str
    status: str
    summary: str
    state: AlertState | None
    value: float | None


def digest_recipients(config: Config) -> tuple[str, ...]:
    """Return who gets the digest: ``[mail] to``, else every check's ``to``."""
    if config.mail.to:
        return config.mail.to
    return tuple(dict.fromkeys(a for spec in config.checks for a in spec.common.to))


def compose_digest(
    config: Config,
    *,
    records: Mapping[str, Mapping[str, Any]],
    alerts: Mapping[str, AlertState],
    digest_log: DigestLog,
    outbox: Outbox,
    now: datetime,
) -> EmailMessage:
    """Return the daily digest: every check, near misses, what was sent.

    Reads the outbox, ``sent.log`` and the delivery status in the state
    folder; changes nothing. Summaries are masked like alerts
    (:mod:`notifier.redact`).

    :param config: the configuration in force (checks, ``[mail]``, host).
    :param records: each check's last result by name, as the daemon keeps it
        (``status``, ``summary``, ``last_run``, ``duration``, ``value``).
    :param alerts: each check's alert state by name.
    :param digest_log: what happened since the last digest.
    :param outbox: the outbox, for waiting and failed messages.
    :param now: when the digest is composed (timezone-aware).
    :returns: a message addressed to :func:`digest_recipients`.
    :raises ValueError: when nobody is configured to get it.
    """
    recipients = digest_recipients(config)
    if not recipients:
        msg = "the digest has nobody to go to: [mail] to is empty"
        raise ValueError(msg)

    host = clean_header_value(config.notifier.hostname)
    redactor = redactor_for(config.mail.redact)
    rows = _rows(config.checks, records, alerts, redactor)
    start = digest_log.period_start
    delivery = read_status(config.notifier.state_dir)

    body = _opening(host, rows, start, now)
    body += _checks_block(rows, now)
    body += _close_block(config.checks, rows, digest_log.peaks())
    body += _alerts_block(digest_log, outbox, start, redactor)
    body += _delayed_block(outbox, delivery, now, redactor)
    body += _failed_block(outbox, start, now, redactor)
    body += _closing(config, host, now)

    message = new_message(config.mail, config.notifier.hostname, recipients, now)
    message["Subject"] = _subject(config, host, rows)
    message["X-Notifier-Kind"] = "DIGEST"
    message["X-Notifier-Status"] = _worst(rows)
    message["X-Notifier-Host"] = host
    text = "\n".join(body) + "\n"
    plain = text.isascii() and max(map(len, text.split("\n"))) <= _LINE_LIMIT
    cte = "7bit" if plain else "quoted-printable"
    message.set_content(text, charset="utf-8", cte=cte)
    return message


def _rows(
    specs: Sequence[CheckSpec],
    records: Mapping[str, Mapping[str, Any]],
    alerts: Mapping[str, AlertState],
    redactor: Redactor,
) -> list[_Row]:
    rows = []
    for spec in specs:
        if not spec.common.enabled:
            continue
        record = records.get(spec.name, {})
        status = str(record.get("status") or _PENDING)
        summary = str(record.get("summary") or "not run yet")
        value = record.get("value")
        rows.append(
            _Row(
                name=spec.name,
                status=status if status in _ORDER else "UNKNOWN",
                summary=_quote(redactor, summary, 200),
                state=alerts.get(spec.name),
                value=float(value) if isinstance(value, int | float) else None,
            )
        )
    return sorted(rows, key=lambda row: (_ORDER.index(row.status), row.name))


def _quote(redactor: Redactor, text: str, limit: int) -> str:
    """Return check or server text for the body: masked, printable, shortened.

    Masking comes first, so shortening can never cut a secret's key off and
    leave its value.
    """
    masked, _ = redactor.redact(text)
    return shorten(printable(masked), limit)


def _tally(rows: Iterable[_Row]) -> Counter[str]:
    return Counter(row.status for row in rows)


def _worst(rows: Sequence[_Row]) -> str:
    statuses = [s for s in _ORDER if s != _PENDING and s in _tally(rows)]
    return statuses[0] if statuses else "OK"


def _counts(rows: Sequence[_Row]) -> str:
    """Return ``12 checks OK, 1 CRITICAL``."""
    tally = _tally(rows)
    ok = tally["OK"]
    return f"{_plural(ok, 'check')} OK" + _others(tally)


def _others(tally: Counter[str]) -> str:
    """Return ``, 1 CRITICAL, 2 PENDING`` for the statuses other than OK."""
    return "".join(f", {tally[s]} {s}" for s in _ORDER[:-1] if tally[s])


def _subject(config: Config, host: str, rows: Sequence[_Row]) -> str:
    prefix = clean_header_value(config.mail.subject_prefix)
    subject = f"{prefix} daily digest {host}: {_counts(rows)}"
    return shorten(subject.strip(), SUBJECT_LIMIT)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ago(moment: datetime, now: datetime) -> str:
    return human_duration((now - moment).total_seconds())


def _opening(
    host: str, rows: Sequence[_Row], start: datetime, now: datetime
) -> list[str]:
    firing = sum(1 for row in rows if row.state is not None and row.state.firing)
    tally = _tally(rows)
    return [
        f"Daily digest from notifier on {host}, {_when(now)}.",
        f"It covers {_when(start)} to now ({_ago(start, now)}).",
        "",
        f"{_plural(len(rows), 'check')}: {tally['OK']} OK{_others(tally)}; "
        f"{_plural(firing, 'alert')} firing.",
    ]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _wrap(text: str) -> list[str]:
    """Return a paragraph wrapped for a phone screen, words never broken."""
    return textwrap.wrap(
        text, width=_WRAP, break_long_words=False, break_on_hyphens=False
    )


def _heading(title: str) -> list[str]:
    return ["", title, "-" * len(title)]


def _checks_block(rows: Sequence[_Row], now: datetime) -> list[str]:
    lines = _heading("Checks")
    if not rows:
        return [*lines, "No checks are configured."]
    for row in rows:
        lines.append(f"{row.status:<8}  {row.name}: {row.summary}")
        state = row.state
        if row.status == "OK" or state is None or state.since is None:
            continue
        detail = f"since {_when(state.since)} ({_ago(state.since, now)})"
        if state.firing:
            detail += ", alert firing"
        if state.flapping:
            detail += ", flapping"
        lines.append(f"{'':<10}{detail}")
    return lines


def _warning_limits(spec: CheckSpec) -> tuple[float, bool] | None:
    """Return the ``warning`` limit and whether higher is worse, if numeric."""
    warning = _number(spec.options.get("warning"))
    critical = _number(spec.options.get("critical"))
    if warning is None:
        return None
    return warning, critical is None or critical >= warning


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def near_miss(value: float, warning: float, *, higher_is_worse: bool) -> bool:
    """Return whether ``value`` came within 20% of ``warning`` (see the module)."""
    if higher_is_worse:
        return warning > 0 and value >= NEAR_FRACTION * warning
    return value * NEAR_FRACTION <= warning


def _close_block(
    specs: Sequence[CheckSpec], rows: Sequence[_Row], peaks: Mapping[str, Peak]
) -> list[str]:
    lines = _heading("Came close")
    by_name = {spec.name: spec for spec in specs}
    close = []
    for row in sorted(rows, key=lambda row: row.name):
        limits = _warning_limits(by_name[row.name])
        if limits is None:
            continue
        warning, higher = limits
        peak = peaks.get(row.name)
        seen = [] if row.status != "OK" or row.value is None else [row.value]
        if peak is not None:
            seen.append(peak.high if higher else peak.low)
        if not seen:
            continue
        worst_seen = max(seen) if higher else min(seen)
        if not near_miss(worst_seen, warning, higher_is_worse=higher):
            continue
        text = f"{row.name}: reached {worst_seen:g} while OK (warning at {warning:g})"
        if row.value is not None and row.value != worst_seen:
            text += f", now {row.value:g}"
        close.append(f"  {text}")
    if not close:
        return [*lines, "No check came within 20% of its warning threshold."]
    return [
        *lines,
        "These stayed OK but came within 20% of their warning threshold:",
        *close,
    ]


def _alerts_block(
    digest_log: DigestLog, outbox: Outbox, start: datetime, redactor: Redactor
) -> list[str]:
    lines = _heading("Alerts")
    events = digest_log.events()
    hidden = digest_log.overflow()
    total = len(events) + hidden
    delivered = _delivered_since(outbox, start)
    if not total:
        lines.append("No alerts in this period.")
    else:
        lines.append(f"{_plural(total, 'alert')} in this period:")
    for noted in events[-LISTED:]:
        status = "" if noted.kind == "RECOVERY" else f" {noted.status}"
        lines.append(f"  {_when(noted.at)}  {noted.kind}{status} {noted.check}")
        lines.append(f"    {_quote(redactor, noted.summary, 120)}")
    if total > LISTED:
        lines.append(f"  ... and {total - LISTED} earlier, not listed")
    lines.append(
        f"{_plural(delivered, 'message')} delivered in this "
        "period (alerts, grouped, and others)."
    )
    return lines


def _delivered_since(outbox: Outbox, start: datetime) -> int:
    count = 0
    for line in outbox.sent():
        stamp = line.split(" ", 1)[0]
        try:
            moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            continue
        count += moment >= start
    return count


def _delayed_block(
    outbox: Outbox, delivery: DeliveryStatus, now: datetime, redactor: Redactor
) -> list[str]:
    lines = _heading("Delayed")
    if delivery.failing_since is not None:
        since = datetime.fromtimestamp(delivery.failing_since, UTC)
        lines += _wrap(
            f"Mail delivery has been failing since {_when(since)} "
            f"(for {_ago(since, now)}, {_plural(delivery.failures, 'attempt')}); "
            f"the last error was: {_quote(redactor, delivery.last_error, 300)}"
        )
    waiting = outbox.entries()
    if not waiting:
        lines.append("Nothing is waiting in the outbox.")
        return lines
    oldest = datetime.fromtimestamp(waiting[0].created, UTC)
    lines.append(
        f"{_plural(len(waiting), 'message')} waiting in "
        f"the outbox, the oldest since {_when(oldest)}:"
    )
    for entry in waiting[:LISTED]:
        lines += _entry_lines(entry, now, redactor, failed=False)
    if len(waiting) > LISTED:
        lines.append(f"  ... and {len(waiting) - LISTED} more")
    return lines


def _entry_lines(
    entry: Entry, now: datetime, redactor: Redactor, *, failed: bool
) -> list[str]:
    subject = _quote(redactor, entry.subject, 70)
    if failed:
        # A dead letter's next_try is when it was moved to failed/.
        moment = datetime.fromtimestamp(max(entry.created, entry.next_try), UTC)
        lines = [f"  {entry.id} failed {_when(moment)}: {subject}"]
    else:
        queued = datetime.fromtimestamp(entry.created, UTC)
        lines = [f"  {entry.id} queued {_ago(queued, now)} ago: {subject}"]
    detail = _plural(entry.attempts, "attempt") if entry.attempts else ""
    if entry.last_error:
        reason = _quote(redactor, entry.last_error, 160)
        detail = f"{detail}; {reason}" if detail else reason
    if detail:
        lines.append(f"    {detail}")
    return lines


def _failed_block(
    outbox: Outbox, start: datetime, now: datetime, redactor: Redactor
) -> list[str]:
    lines = _heading("Failed")
    failed = [
        entry
        for entry in outbox.failed()
        if max(entry.created, entry.next_try) >= start.timestamp()
    ]
    if not failed:
        lines.append("No message failed for good in this period.")
        return lines
    lines += _wrap(
        f"{_plural(len(failed), 'message')} failed for good "
        f"in this period; they are kept in {outbox.failed_folder} "
        "(`notifier queue list`, `notifier queue retry ID`):"
    )
    for entry in failed[:LISTED]:
        lines += _entry_lines(entry, now, redactor, failed=True)
    if len(failed) > LISTED:
        lines.append(f"  ... and {len(failed) - LISTED} more")
    return lines


def _closing(config: Config, host: str, now: datetime) -> list[str]:
    return [
        "",
        "-- ",
        f"notifier {__version__} on {host}, {_when(now)}; "
        f"a digest goes out every day at {config.mail.digest or 'its set time'}.",
        f"If this digest stops arriving, notifier itself is broken on {host}.",
    ]
