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
(``notices.mark_queued_since``); the first one out after a failing spell
carries a note summarising the outage. The state of the transport lives in
``<state_dir>/delivery.json`` for ``notifier status`` (:func:`read_status`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from notifier.atomicfile import make_folder, write_atomic
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
from notifier.units import format_duration, human_duration

if TYPE_CHECKING:
    from email.message import EmailMessage

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
    make_folder(state_dir)
    data = json.dumps(dataclasses.asdict(status), indent=1).encode("utf-8")
    write_atomic(state_dir / STATUS_FILE, data, mode=0o644)


@dataclass
class DeliveryReport:
    """What one :meth:`Sender.deliver_due` did, by outbox id.

    :param sent: delivered to every recipient left.
    :param partly_sent: delivered to some recipients; others still wait or
        failed.
    :param retrying: refused for now (4xx), waiting for their own backoff.
    :param failed: moved (wholly or for some recipients) to ``failed/``.
    :param held_back: nothing was tried: the transport is backing off.
    :param error: the transport failure of this run, if any.
    :param error_kind: its :class:`~notifier.transport.FailureKind` value, or
        ``config`` when the configuration cannot work.
    :param queued: messages left in the outbox.
    """

    sent: list[str] = field(default_factory=list)
    partly_sent: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    held_back: bool = False
    error: str = ""
    error_kind: str = ""
    queued: int = 0


def _unexpected(transport: Transport, exc: Exception, step: str) -> str:
    """Return what to say of an exception nobody expected, without its text.

    An OSError (the outbox could not be written, say) keeps its system
    reason and file name, which hold no secret; the rest shows its type.
    """
    where = f"{transport.describe()} raised {type(exc).__name__} while {step}"
    if isinstance(exc, OSError) and exc.strerror:
        place = f" ({exc.filename})" if exc.filename else ""
        return f"{where}: {exc.strerror}{place}"
    return f"{where}; its message is not shown, as it may hold a password"


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _stamp(seconds: float) -> str:
    return _when(seconds).strftime("%Y-%m-%d %H:%M:%S UTC")


class Sender:
    """Delivers the outbox through one transport.

    :param config: for ``[mail]`` retry_initial, retry_max, max_age and
        ``[notifier] state_dir``.
    :param clock: returns the time in seconds since the epoch; tests pass
        their own to move time without sleeping. It is read again after
        every network step, so a wait counts from when a failure was seen.
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

        The outbox lock is held only while files change, never while the
        network is waited for, so ``queue retry``/``drop`` never wait for a
        hung server; each message is claimed while it is sent (see
        :meth:`_send_one` for why nothing is lost that way).

        :param force: ignore next-try times and the transport's backoff
            (``notifier queue flush``).
        :returns: what happened; failures are reported there and logged,
            never raised.
        """
        report = DeliveryReport()
        with self.outbox.lock():
            now = self.clock()
            status = self.status()
            entries = self._expire(self.outbox.entries(), now, report, status)
        due = [entry for entry in entries if force or entry.next_try <= now]

        if due and (force or status.next_try <= now):
            status = self._attempt(due, status, now, report)
        elif due:
            report.held_back = True

        with self.outbox.lock():
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
        pending = list(due)
        step = "opening a session (connect, TLS, login)"
        try:
            with self.transport.session() as session:
                note = self._outage_note(status, now, len(due)) if recovering else None
                while pending:
                    step = f"sending {pending[0].id}"
                    if self._send_one(session, pending[0], report, note):
                        note = None
                    pending.pop(0)
                step = "closing the session"
        except (DeliveryError, ConfigError) as exc:
            return self._transport_failed(exc, status, pending, report)
        except Exception as exc:
            # A plugin's transport broke the contract (raised something else):
            # treat it as the transport being down, so the delivery thread
            # lives on and the messages wait. Its text is neither logged nor
            # kept: an error from a login step can quote the password (a
            # UnicodeEncodeError names the character and its position).
            log.debug(
                "delivery via %s: %s while %s, raised at:\n%s",
                self.transport.describe(),
                type(exc).__name__,
                step,
                "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
            )
            failure = ServerUnavailable(_unexpected(self.transport, exc, step))
            return self._transport_failed(failure, status, pending, report)

        done = self.clock()
        if status.failing_since is not None:
            log.warning(
                "delivery via %s recovered after %s of failures; %d message(s) sent",
                self.transport.describe(),
                human_duration(done - status.failing_since),
                len(report.sent),
            )
        delivered = report.sent or report.partly_sent
        return dataclasses.replace(
            status,
            failing_since=None,
            failures=0,
            next_try=0.0,
            last_error="",
            kind="",
            last_success=done if delivered else status.last_success,
        )

    def _transport_failed(
        self,
        exc: Exception,
        status: DeliveryStatus,
        pending: list[Entry],
        report: DeliveryReport,
    ) -> DeliveryStatus:
        # The wait counts from when the failure was seen, not from when the
        # attempt began: a server that hangs until the timeout would
        # otherwise be tried again right away.
        failed_at = self.clock()
        kind = exc.kind.value if isinstance(exc, DeliveryError) else "config"
        step = status.failures + 1
        mail = self.config.mail
        wait = backoff_delay(step, mail.retry_initial, mail.retry_max, self.chance())
        failing_since = (
            status.failing_since if status.failing_since is not None else failed_at
        )
        report.error = str(exc)
        report.error_kind = kind
        self._note_transport_failure(pending, str(exc), failed_at + wait)

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
            next_try=failed_at + wait,
            last_error=str(exc),
            kind=kind,
        )

    def _note_transport_failure(
        self, pending: list[Entry], error: str, next_try: float
    ) -> None:
        """Count the attempt and keep the error and next try in the metadata
        of the messages it held back, for ``notifier queue list``."""
        with self.outbox.lock():
            for entry in pending:
                current = self.outbox.get(entry.id)
                if current is None:
                    continue
                self.outbox.update(
                    dataclasses.replace(
                        current,
                        attempts=current.attempts + 1,
                        last_error=error,
                        next_try=max(current.next_try, next_try),
                    )
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
        # Imported here: the idle daemon never loads the mail writing modules.
        from notifier.notices import add_notice, mark_queued_since

        message = self.outbox.message(entry.id)
        if now - entry.created >= LATE_AFTER:
            try:
                mark_queued_since(message, _when(entry.created), now=_when(now))
            except ValueError:
                log.debug("outbox: %s has no text body to mark as late", entry.id)
        if note is not None:
            try:
                # Wrapped to the body's width, control characters removed.
                add_notice(message, note)
            except ValueError:
                log.debug("outbox: %s has no text body for the outage note", entry.id)
        return message

    def _send_one(
        self,
        session: Session,
        entry: Entry,
        report: DeliveryReport,
        note: str | None,
    ) -> bool:
        """Send one message under its claim; return whether anyone got it.

        Never lose, at most duplicate, with the outbox lock held only around
        file changes:

        - the message leaves the outbox only after the server took it; a
          crash between the two sends it again later, never loses it;
        - the claim (a lock on this message alone, released by the kernel if
          we die) keeps a second sender from sending it at the same time;
          after taking the claim the metadata is read again, so a message
          sent or dropped meanwhile is skipped;
        - ``queue retry`` and ``drop`` may change the entry while the server
          is talking: the outcome is applied to the metadata as it is then,
          under the lock, and a dropped message is never brought back.

        :raises DeliveryError: when the transport fails as a whole.
        """
        with self.outbox.claim(entry.id) as current:
            if current is None:
                return False
            try:
                message = self._prepare(current, self.clock(), note)
            except DataError as exc:
                with self.outbox.lock():
                    self._dead_letter_unreadable(current, exc, report)
                return False

            try:
                outcome = session.send(message, current.recipients)
            except MessageRefused as exc:
                with self.outbox.lock():
                    self._refused(current, exc, report)
                return False

            with self.outbox.lock():
                self._settle(current, outcome, report)
            return bool(outcome.delivered)

    def _dead_letter_unreadable(
        self, entry: Entry, exc: DataError, report: DeliveryReport
    ) -> None:
        if self.outbox.get(entry.id) is None:
            return
        self.outbox.dead_letter(
            entry, entry.recipients, f"unreadable: {exc}", self.clock()
        )
        report.failed.append(entry.id)
        log.error("outbox: %s cannot be sent (%s); moved to failed", entry.id, exc)

    def _refused(
        self, sent: Entry, exc: MessageRefused, report: DeliveryReport
    ) -> None:
        """Apply a refusal of the whole message (outbox lock held)."""
        refused_at = self.clock()
        current = self.outbox.get(sent.id)
        if current is None:
            log.info("outbox: %s was dropped while being sent", sent.id)
            return
        attempted = dataclasses.replace(current, attempts=current.attempts + 1)
        recipients = tuple(r for r in current.recipients if r in sent.recipients)
        if exc.kind is not FailureKind.PERMANENT:
            self._retry_later(attempted, str(exc), refused_at)
            report.retrying.append(sent.id)
            return
        self.outbox.dead_letter(attempted, recipients, str(exc), refused_at)
        report.failed.append(sent.id)
        log.error(
            "outbox: %s %r refused for good, moved to failed: %s",
            sent.id,
            sent.subject,
            exc,
        )

    def _settle(
        self, sent: Entry, outcome: SendOutcome, report: DeliveryReport
    ) -> None:
        """Apply what the server said to the entry as it is now (lock held)."""
        now = self.clock()
        current = self.outbox.get(sent.id) or dataclasses.replace(sent, recipients=())
        first_delivery = bool(outcome.delivered) and not current.delivered_to
        if outcome.delivered:
            log.info(
                "outbox: %s %r sent to %s",
                sent.id,
                sent.subject,
                ", ".join(outcome.delivered),
            )

        self._keep_the_rest(current, outcome, report, now)

        if first_delivery:
            # Once per message, when the first recipient took it. Last: a log
            # that cannot be written must not keep a delivered message
            # queued, to go out again and again.
            self.outbox.record_sent(current, now)

    def _keep_the_rest(
        self, current: Entry, outcome: SendOutcome, report: DeliveryReport, now: float
    ) -> None:
        """Remove the entry, or keep, retry or dead-letter who did not get it."""
        delivered = set(outcome.delivered)
        after = dataclasses.replace(
            current,
            recipients=tuple(r for r in current.recipients if r not in delivered),
            delivered_to=(*current.delivered_to, *outcome.delivered),
            attempts=current.attempts + 1,
        )
        if not after.recipients:
            self.outbox.remove(current.id)
            report.sent.append(current.id)
            return
        if delivered:
            report.partly_sent.append(current.id)

        remaining: Entry | None = after
        refused = outcome.refused
        never = [r for r in after.recipients if r in refused and refused[r].permanent]
        if never:
            reasons = "; ".join(f"{r}: {refused[r]}" for r in never)
            remaining = self.outbox.dead_letter(after, never, reasons, now)
            report.failed.append(current.id)
            log.error(
                "outbox: %s %r refused for good for %s",
                current.id,
                current.subject,
                reasons,
            )
        if remaining is None:
            return
        later = [r for r in remaining.recipients if r in refused]
        if later:
            reasons = "; ".join(f"{r}: {refused[r]}" for r in later)
            self._retry_later(remaining, reasons, now)
            report.retrying.append(current.id)
        else:
            self.outbox.update(remaining)

    def _retry_later(self, entry: Entry, reason: str, now: float) -> None:
        """Keep ``entry`` for its own next try after a refusal for now (4xx)."""
        mail = self.config.mail
        refusals = entry.refusals + 1
        wait = backoff_delay(
            refusals, mail.retry_initial, mail.retry_max, self.chance()
        )
        waiting = dataclasses.replace(
            entry, refusals=refusals, next_try=now + wait, last_error=reason
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
