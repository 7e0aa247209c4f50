"""The sender: delivers due messages from the outbox through a transport.

:meth:`Sender.deliver_due` is what the daemon calls from its delivery thread
(never from a check's): it opens ONE session for every due message, so a
batch costs one connection and one login. What a failure does:

- the transport as a whole cannot deliver (connection, TLS, timeout, a
  refused login, a configuration it cannot work with): nothing more is tried
  until the transport's backoff step has passed, then exactly one new
  attempt (one login) is made. Steps wait ``[mail] retry_initial`` doubling
  up to ``retry_max``, each cut by up to 20% at random (jitter), so many
  hosts behind one server do not retry in step. One CRITICAL log line per
  step names the server's reply;
- the server refuses one message for now (4xx): that message backs off on
  its own, the others go on;
- the server refuses it for good (5xx): it moves to ``outbox/failed/`` with
  the reason and an ERROR line; a recipient refused alone is dead-lettered
  (or retried) alone, and nobody who already got the message gets it again;
- a message older than ``[mail] max_age`` moves to ``failed/`` too.

A message going out a minute or more after it was queued says so
(``compose.mark_queued_since``); the first one out after a failing spell
carries a note summarising the outage. The state of the transport lives in
``<state_dir>/delivery.json`` for ``notifier status`` (:func:`read_status`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Final

from notifier.atomicfile import write_atomic
from notifier.compose import human_duration, mark_queued_since
from notifier.config import Config
from notifier.errors import ConfigError, DataError
from notifier.outbox import Entry, Outbox
from notifier.transport import (
    DeliveryError,
    FailureKind,
    MessageRefused,
    SendOutcome,
    ServerUnavailable,
    Session,
    Transport,
)
from notifier.units import format_duration

log = logging.getLogger(__name__)

STATUS_FILE: Final = "delivery.json"
LATE_AFTER: Final = 60.0
"""Seconds after which a message counts as late and says when it was queued."""
JITTER: Final = 0.2
"""Each backoff wait is cut by up to this fraction, at random."""


def backoff_delay(step: int, initial: float, maximum: float, chance: float) -> float:
    """Return the wait before attempt ``step + 1`` after ``step`` failures.

    ``initial`` doubled per failed step, at most ``maximum``, then cut by up
    to :data:`JITTER` (``chance`` in [0, 1) picks how much). The wait is thus
    never longer than the doubled delay and never shorter than 80% of it.
    """
    base: float = min(maximum, initial * 2.0 ** max(step - 1, 0))
    return base * (1 - JITTER * chance)


@dataclass(frozen=True)
class DeliveryStatus:
    """How delivery is going, as ``notifier status`` shows it.

    :param failing_since: when the transport started failing; ``None`` when
        it works.
    :param failures: transport failures in a row (the backoff step).
    :param next_try: no attempt before this time (seconds since the epoch).
    :param last_error: the last failure, with the server's reply.
    :param kind: its :class:`~notifier.transport.FailureKind`, or ``config``.
    :param queued: messages in the outbox after the last run.
    :param oldest_queued: when the oldest of them was queued.
    :param last_success: when a message last went out.
    """

    failing_since: float | None = None
    failures: int = 0
    next_try: float = 0.0
    last_error: str = ""
    kind: str = ""
    queued: int = 0
    oldest_queued: float | None = None
    last_success: float | None = None


def read_status(state_dir: Path) -> DeliveryStatus:
    """Return the delivery status saved in ``state_dir`` (a fresh one if none)."""
    path = state_dir / STATUS_FILE
    try:
        raw: object = json.loads(path.read_bytes())
    except FileNotFoundError:
        return DeliveryStatus()
    except (OSError, ValueError) as exc:
        log.warning(
            "delivery: status file %s unreadable (%s); starting afresh", path, exc
        )
        return DeliveryStatus()
    if not isinstance(raw, dict):
        return DeliveryStatus()
    known = {f.name for f in dataclasses.fields(DeliveryStatus)}
    return DeliveryStatus(**{k: v for k, v in raw.items() if k in known})


def _write_status(state_dir: Path, status: DeliveryStatus) -> None:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = json.dumps(dataclasses.asdict(status), indent=1).encode("utf-8")
    write_atomic(state_dir / STATUS_FILE, data, mode=0o644)


@dataclass
class DeliveryReport:
    """What one :meth:`Sender.deliver_due` did, by outbox id.

    :param sent: delivered to every recipient left.
    :param retrying: refused for now (4xx), waiting for their own backoff.
    :param failed: moved (wholly or for some recipients) to ``failed/``.
    :param held_back: nothing was tried: the transport is backing off.
    :param error: the transport failure of this run, if any.
    :param error_kind: its :class:`~notifier.transport.FailureKind` value, or
        ``config`` when the configuration cannot work.
    :param queued: messages left in the outbox.
    """

    sent: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    held_back: bool = False
    error: str = ""
    error_kind: str = ""
    queued: int = 0


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _stamp(seconds: float) -> str:
    return _when(seconds).strftime("%Y-%m-%d %H:%M:%S UTC")


class Sender:
    """Delivers the outbox through one transport.

    :param config: for ``[mail]`` retry_initial, retry_max, max_age and
        ``[notifier] state_dir``.
    :param clock: returns the time in seconds since the epoch; tests pass
        their own to move time without sleeping.
    :param chance: returns a number in [0, 1) for the backoff jitter.
    """

    def __init__(
        self,
        config: Config,
        transport: Transport,
        outbox: Outbox,
        clock: Callable[[], float] = time.time,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.transport = transport
        self.outbox = outbox
        self.clock = clock
        self.chance = chance
        self.state_dir = config.notifier.state_dir

    def status(self) -> DeliveryStatus:
        """Return the delivery status as last saved."""
        return read_status(self.state_dir)

    def next_wakeup(self) -> float | None:
        """Return when something next falls due (``None``: outbox empty)."""
        entries = self.outbox.entries()
        if not entries:
            return None
        earliest = min(entry.next_try for entry in entries)
        return max(earliest, self.status().next_try)

    def deliver_due(self, *, force: bool = False) -> DeliveryReport:
        """Send every message whose time has come, over one session.

        :param force: ignore next-try times and the transport's backoff
            (``notifier queue flush``).
        :returns: what happened; failures are reported there and logged,
            never raised.
        """
        with self.outbox.lock():
            now = self.clock()
            status = self.status()
            report = DeliveryReport()
            entries = self._expire(self.outbox.entries(), now, report, status)
            due = [entry for entry in entries if force or entry.next_try <= now]
            if due and (force or status.next_try <= now):
                status = self._attempt(due, status, now, report)
            elif due:
                report.held_back = True
            self._save(status, report)
            return report

    def _expire(
        self,
        entries: list[Entry],
        now: float,
        report: DeliveryReport,
        status: DeliveryStatus,
    ) -> list[Entry]:
        max_age = self.config.mail.max_age
        kept: list[Entry] = []
        for entry in entries:
            if entry.age(now) < max_age:
                kept.append(entry)
                continue
            reason = f"undelivered after {format_duration(max_age)} ([mail] max_age)"
            last_error = entry.last_error or status.last_error
            if last_error:
                reason = f"{reason}; last error: {last_error}"
            self.outbox.dead_letter(entry, entry.recipients, reason, now)
            report.failed.append(entry.id)
            log.error(
                "outbox: %s %r moved to failed: %s", entry.id, entry.subject, reason
            )
        return kept

    def _attempt(
        self,
        due: list[Entry],
        status: DeliveryStatus,
        now: float,
        report: DeliveryReport,
    ) -> DeliveryStatus:
        recovering = status.failing_since is not None
        try:
            with self.transport.session() as session:
                note = self._outage_note(status, now, len(due)) if recovering else None
                for entry in due:
                    self._send_one(session, entry, now, report, note)
                    note = None
        except (DeliveryError, ConfigError) as exc:
            return self._transport_failed(exc, status, now, report)
        except Exception as exc:
            # A plugin's transport broke the contract (raised something else):
            # treat it as the transport being down, so the delivery thread
            # lives on and the messages wait.
            log.debug(
                "delivery via %s raised", self.transport.describe(), exc_info=True
            )
            msg = f"{self.transport.describe()} raised {type(exc).__name__}: {exc}"
            return self._transport_failed(ServerUnavailable(msg), status, now, report)

        if status.failing_since is not None:
            log.warning(
                "delivery via %s recovered after %s of failures; %d message(s) sent",
                self.transport.describe(),
                human_duration(now - status.failing_since),
                len(report.sent),
            )
        return dataclasses.replace(
            status,
            failing_since=None,
            failures=0,
            next_try=0.0,
            last_error="",
            kind="",
            last_success=now if report.sent else status.last_success,
        )

    def _transport_failed(
        self, exc: Exception, status: DeliveryStatus, now: float, report: DeliveryReport
    ) -> DeliveryStatus:
        kind = exc.kind.value if isinstance(exc, DeliveryError) else "config"
        step = status.failures + 1
        mail = self.config.mail
        wait = backoff_delay(step, mail.retry_initial, mail.retry_max, self.chance())
        failing_since = (
            status.failing_since if status.failing_since is not None else now
        )
        report.error = str(exc)
        report.error_kind = kind
        queued = len(self.outbox.entries())
        # One line per backoff step, not per message: this is what a
        # sysadmin sees in the journal while mail is not getting out.
        log.critical(
            "delivery via %s failing since %s: %s; %d message(s) queued, "
            "next try in %s",
            self.transport.describe(),
            _stamp(failing_since),
            exc,
            queued,
            format_duration(round(wait)),
        )
        return dataclasses.replace(
            status,
            failing_since=failing_since,
            failures=step,
            next_try=now + wait,
            last_error=str(exc),
            kind=kind,
        )

    def _outage_note(self, status: DeliveryStatus, now: float, count: int) -> str:
        since = status.failing_since if status.failing_since is not None else now
        return (
            f"Mail delivery from this host was failing from "
            f"{_stamp(since)} to {_stamp(now)} "
            f"({human_duration(now - since)}, {status.failures} "
            f"attempt(s)); the last error was: {status.last_error}. "
            f"{count} message(s) held back meanwhile go out now."
        )

    def _prepare(self, entry: Entry, now: float, note: str | None) -> EmailMessage:
        message = self.outbox.message(entry.id)
        if now - entry.created >= LATE_AFTER:
            try:
                mark_queued_since(message, _when(entry.created), now=_when(now))
            except ValueError:
                log.debug("outbox: %s has no text body to mark as late", entry.id)
        if note is not None:
            _prepend_note(message, note)
        return message

    def _send_one(
        self,
        session: Session,
        entry: Entry,
        now: float,
        report: DeliveryReport,
        note: str | None,
    ) -> None:
        try:
            message = self._prepare(entry, now, note)
        except DataError as exc:
            self.outbox.dead_letter(entry, entry.recipients, f"unreadable: {exc}", now)
            report.failed.append(entry.id)
            log.error("outbox: %s cannot be sent (%s); moved to failed", entry.id, exc)
            return

        attempted = dataclasses.replace(entry, attempts=entry.attempts + 1)
        try:
            outcome = session.send(message, entry.recipients)
        except MessageRefused as exc:
            if exc.kind is FailureKind.PERMANENT:
                self.outbox.dead_letter(attempted, entry.recipients, str(exc), now)
                report.failed.append(entry.id)
                log.error(
                    "outbox: %s %r refused for good, moved to failed: %s",
                    entry.id,
                    entry.subject,
                    exc,
                )
            else:
                self._retry_later(attempted, entry.recipients, str(exc), now)
                report.retrying.append(entry.id)
            return
        except DeliveryError as exc:
            # The connection is gone mid-message: it may or may not have
            # arrived; keep it (a duplicate is better than a loss).
            self.outbox.update(dataclasses.replace(attempted, last_error=str(exc)))
            raise

        self._settle(attempted, outcome, now, report)

    def _settle(
        self, entry: Entry, outcome: SendOutcome, now: float, report: DeliveryReport
    ) -> None:
        later = tuple(
            r for r, refusal in outcome.refused.items() if not refusal.permanent
        )
        never = [r for r, refusal in outcome.refused.items() if refusal.permanent]
        if not later and not never:
            self.outbox.remove(entry.id)
            self.outbox.record_sent(entry, now)
            report.sent.append(entry.id)
            log.info(
                "outbox: %s %r sent to %s",
                entry.id,
                entry.subject,
                ", ".join(outcome.delivered),
            )
            return
        # Only the refused stay queued: nobody who got it is sent it again.
        refused = dataclasses.replace(entry, recipients=(*later, *never))
        self.outbox.update(refused)
        remaining: Entry | None = refused
        if never:
            reasons = "; ".join(f"{r}: {outcome.refused[r]}" for r in never)
            remaining = self.outbox.dead_letter(refused, never, reasons, now)
            report.failed.append(entry.id)
            log.error(
                "outbox: %s %r refused for good for %s",
                entry.id,
                entry.subject,
                reasons,
            )
        if later and remaining is not None:
            reasons = "; ".join(f"{r}: {outcome.refused[r]}" for r in later)
            self._retry_later(remaining, later, reasons, now)
            report.retrying.append(entry.id)
        if outcome.delivered:
            log.info(
                "outbox: %s %r sent to %s",
                entry.id,
                entry.subject,
                ", ".join(outcome.delivered),
            )

    def _retry_later(
        self, entry: Entry, recipients: tuple[str, ...], reason: str, now: float
    ) -> None:
        mail = self.config.mail
        wait = backoff_delay(
            entry.attempts, mail.retry_initial, mail.retry_max, self.chance()
        )
        waiting = dataclasses.replace(
            entry, recipients=recipients, next_try=now + wait, last_error=reason
        )
        self.outbox.update(waiting)
        log.warning(
            "outbox: %s %r not taken for now (%s); retry in %s",
            entry.id,
            entry.subject,
            reason,
            format_duration(round(wait)),
        )

    def _save(self, status: DeliveryStatus, report: DeliveryReport) -> None:
        entries = self.outbox.entries()
        report.queued = len(entries)
        oldest = min((entry.created for entry in entries), default=None)
        updated = dataclasses.replace(status, queued=len(entries), oldest_queued=oldest)
        if updated != read_status(self.state_dir):
            _write_status(self.state_dir, updated)


def _prepend_note(message: EmailMessage, note: str) -> None:
    """Put ``note`` first in the plain-text body of ``message``."""
    body = message.get_body(("plain",))
    if not isinstance(body, EmailMessage):
        return
    text = body.get_content()
    body.set_content(f"{note}\n\n{text}")
