"""Grouping alert events into batches, one email each, under an hourly cap.

Events with the same recipients that arrive within ``[notifier] group_wait``
of the first one become one :class:`Batch`; the composer lists every alert of
a batch in one message (and de-duplicates its attachments). A storm of 500
checks tripping at once therefore gives one batch per recipient set, not 500.
A batch lists every event it holds; shortening a very long list is the
composer's choice.

``[mail] max_per_hour`` (0 = no cap) counts batches handed out in the last
hour. A batch that would exceed it is held back, whole: events that arrive
for the same recipients while it waits join it, and it goes out as soon as the
hour has room, with a note saying how long it was delayed and why. Nothing is
dropped.

Durability: with a ``journal`` path, every event is appended to that file
(one JSON line, fsynced) as it is added, so events waiting in the window
survive a crash or SIGKILL and are grouped again on the next start. A batch
leaves the journal only when the caller confirms with :meth:`Grouper.commit`
that it is safe in the outbox; a crash in between sends it twice at worst,
never loses it. On a clean stop, :meth:`Grouper.drain` hands out everything
at once, window and cap ignored. The daemon should add an alert's events to
the grouper before saving the alert state, for the same reason.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from notifier.atomicfile import move_aside, open_owned, write_atomic
from notifier.checks.base import Status
from notifier.events import AlertEvent, EventKind
from notifier.units import format_duration

log = logging.getLogger(__name__)

HOUR: Final = timedelta(hours=1)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Batch:
    """Events for one set of recipients, to go out as one email.

    :param recipients: who gets it (the events' common recipients).
    :param events: every event, oldest first.
    :param notes: sentences for the top of the message, such as why it was
        delayed; empty for an ordinary batch.
    """

    recipients: tuple[str, ...]
    events: tuple[AlertEvent, ...]
    notes: tuple[str, ...] = ()


@dataclass
class _Group:
    """Events waiting for one set of recipients."""

    recipients: tuple[str, ...]
    opened_at: datetime
    events: list[tuple[AlertEvent, datetime]] = field(default_factory=list)
    held_since: datetime | None = None


class Grouper:
    """Collects events into batches by recipients, time window and hourly cap.

    ``add`` may be called from any thread; ``due``, ``drain`` and ``commit``
    from the one thread that hands batches to the outbox.
    """

    def __init__(
        self,
        group_wait: float,
        max_per_hour: int,
        clock: Clock = lambda: datetime.now(UTC),
        journal: Path | None = None,
    ) -> None:
        """Create a grouper, taking back what ``journal`` holds from a last run.

        :param group_wait: seconds a group stays open after its first event.
        :param max_per_hour: most batches per rolling hour; 0 is no cap.
        :param clock: returns the current timezone-aware time.
        :param journal: file that keeps waiting events across a crash; ``None``
            keeps them in memory only.
        """
        self.group_wait = timedelta(seconds=group_wait)
        self.max_per_hour = max_per_hour
        self._clock = clock
        self._journal = journal
        self._lock = threading.Lock()
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._sent: list[datetime] = []
        if journal is not None:
            self._restore(journal)

    def add(self, event: AlertEvent) -> None:
        """Put ``event`` into the group of its recipients.

        With a journal, the event is on disk when this returns; a write
        failure is logged and the event kept in memory.
        """
        now = self._clock()
        with self._lock:
            self._place(event, now, held_since=None)
            if self._journal is not None:
                self._append(self._journal, _entry_to_json(event, now, None))

    def pending(self) -> int:
        """Return how many events are waiting (in a window or held back)."""
        with self._lock:
            return sum(len(group.events) for group in self._groups.values())

    def due(self, now: datetime) -> list[Batch]:
        """Return the batches whose window has closed and which the cap allows.

        Groups over the cap are held back and go out, with a note, in a later
        call once the last hour has room. Call :meth:`commit` after the
        batches are safely stored.
        """
        with self._lock:
            self._sent = [moment for moment in self._sent if now - moment < HOUR]
            ready = sorted(
                (
                    group
                    for group in self._groups.values()
                    if group.held_since is not None
                    or now - group.opened_at >= self.group_wait
                ),
                key=lambda group: group.held_since or group.opened_at,
            )
            batches: list[Batch] = []
            for group in ready:
                if self.max_per_hour and len(self._sent) >= self.max_per_hour:
                    self._hold(group, now)
                    continue
                batches.append(self._release(group, now))
                self._sent.append(now)
            return batches

    def drain(self) -> list[Batch]:
        """Return every waiting event as batches now, ignoring window and cap.

        For a clean stop: the batches go to the durable outbox instead of
        waiting in memory. Call :meth:`commit` after storing them.
        """
        now = self._clock()
        with self._lock:
            groups = sorted(
                self._groups.values(),
                key=lambda group: group.held_since or group.opened_at,
            )
            return [self._release(group, now) for group in groups]

    def requeue(self, batch: Batch) -> None:
        """Take back a batch that could not be stored (the outbox refused it).

        Its events wait again, due at the next :meth:`due`, and stay in the
        journal at the next :meth:`commit`; the send it was counted as is
        given back to the hourly cap.
        """
        overdue = self._clock() - self.group_wait
        with self._lock:
            if self._sent:
                self._sent.pop()
            for event in batch.events:
                self._place(event, overdue, held_since=None)

    def commit(self) -> None:
        """Rewrite the journal to hold only what still waits.

        Call after the batches from :meth:`due` or :meth:`drain` are in the
        outbox. Without a journal this does nothing.
        """
        if self._journal is None:
            return
        with self._lock:
            lines = [
                json.dumps(_entry_to_json(event, added, group.held_since))
                for group in self._groups.values()
                for event, added in group.events
            ]
            lines.extend(
                json.dumps({"sent": moment.isoformat()}) for moment in self._sent
            )
            data = "".join(f"{line}\n" for line in lines).encode("utf-8")
            try:
                write_atomic(self._journal, data, mode=0o600)
            except OSError as exc:
                log.error(
                    "group journal %s cannot be rewritten (%s); batches already "
                    "handed out may be sent again after a restart",
                    self._journal,
                    exc.strerror or exc,
                )

    def _place(
        self, event: AlertEvent, added: datetime, held_since: datetime | None
    ) -> None:
        key = tuple(sorted(event.recipients))
        group = self._groups.get(key)
        if group is None:
            group = _Group(key, opened_at=added)
            self._groups[key] = group
        group.opened_at = min(group.opened_at, added)
        group.events.append((event, added))
        if held_since is not None:
            group.held_since = min(group.held_since or held_since, held_since)

    def _hold(self, group: _Group, now: datetime) -> None:
        if group.held_since is not None:
            return
        group.held_since = now
        log.warning(
            "mail cap of %d per hour reached; %d alert(s) for %s held back until "
            "the hour has room",
            self.max_per_hour,
            len(group.events),
            ", ".join(group.recipients) or "the default recipients",
        )

    def _release(self, group: _Group, now: datetime) -> Batch:
        del self._groups[group.recipients]
        events = tuple(
            event for event, _ in sorted(group.events, key=lambda pair: pair[1])
        )
        notes: tuple[str, ...] = ()
        if group.held_since is not None:
            waited = format_duration(
                max(60.0, round((now - group.held_since).total_seconds() / 60) * 60)
            )
            notes = (
                f"{len(events)} alert(s) in this message were held back for about "
                f"{waited} because [mail] max_per_hour = {self.max_per_hour} "
                "was reached; none were dropped.",
            )
        return Batch(recipients=group.recipients, events=events, notes=notes)

    def _append(self, journal: Path, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry) + "\n").encode("utf-8")
        try:
            descriptor = open_owned(
                journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
            )
            try:
                os.write(descriptor, line)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as exc:
            log.error(
                "group journal %s cannot be written (%s); a waiting alert would "
                "be lost if the daemon died now",
                journal,
                exc.strerror or exc,
            )

    def _restore(self, journal: Path) -> None:
        try:
            text = journal.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            self._set_aside(journal, str(exc))
            return

        skipped = 0
        for line in text.splitlines():
            try:
                self._restore_line(json.loads(line))
            except (ValueError, KeyError, TypeError):
                skipped += 1
        if skipped:
            log.warning(
                "group journal %s: %d damaged line(s) skipped (a write cut short "
                "by a crash)",
                journal,
                skipped,
            )
        if self._groups:
            log.info(
                "group journal %s: %d waiting alert(s) taken back",
                journal,
                sum(len(group.events) for group in self._groups.values()),
            )

    def _restore_line(self, data: object) -> None:
        if not isinstance(data, dict):
            msg = "not an object"
            raise TypeError(msg)
        if "sent" in data:
            self._sent.append(_moment(data["sent"]))
            return
        held = data.get("held_since")
        self._place(
            _event_from_json(data["event"]),
            _moment(data["added"]),
            _moment(held) if held is not None else None,
        )

    def _set_aside(self, journal: Path, reason: str) -> None:
        try:
            moved = move_aside(journal)
        except OSError as exc:
            log.error(
                "group journal %s is unreadable (%s) and cannot be moved aside "
                "(%s); its alerts are lost",
                journal,
                reason,
                exc,
            )
            return
        log.error(
            "group journal %s is unreadable (%s); moved to %s, starting empty",
            journal,
            reason,
            moved.name,
        )


def _entry_to_json(
    event: AlertEvent, added: datetime, held_since: datetime | None
) -> dict[str, Any]:
    return {
        "added": added.isoformat(),
        "held_since": held_since.isoformat() if held_since else None,
        "event": event_to_json(event),
    }


def event_to_json(event: AlertEvent) -> dict[str, Any]:
    """Return ``event`` as a JSON-ready mapping."""
    return {
        "kind": event.kind.value,
        "check": event.check,
        "check_type": event.check_type,
        "host": event.host,
        "status": event.status.name,
        "previous_status": event.previous_status.name
        if event.previous_status is not None
        else None,
        "summary": event.summary,
        "since": event.since.isoformat(),
        "at": event.at.isoformat(),
        "metrics": dict(event.metrics),
        "value": event.value,
        "thresholds": dict(event.thresholds),
        "evidence": list(event.evidence),
        "attachments": [str(path) for path in event.attachments],
        "recipients": list(event.recipients),
    }


def _event_from_json(data: Any) -> AlertEvent:
    """Return the event held in ``data``.

    :raises ValueError, KeyError, TypeError: when ``data`` is not an event.
    """
    previous = data["previous_status"]
    value = data["value"]
    return AlertEvent(
        kind=EventKind(data["kind"]),
        check=str(data["check"]),
        check_type=str(data["check_type"]),
        host=str(data["host"]),
        status=Status[data["status"]],
        previous_status=Status[previous] if previous is not None else None,
        summary=str(data["summary"]),
        since=_moment(data["since"]),
        at=_moment(data["at"]),
        metrics={str(k): float(v) for k, v in dict(data["metrics"]).items()},
        value=float(value) if value is not None else None,
        thresholds={str(k): float(v) for k, v in dict(data["thresholds"]).items()},
        evidence=tuple(str(line) for line in data["evidence"]),
        attachments=tuple(Path(path) for path in data["attachments"]),
        recipients=tuple(str(address) for address in data["recipients"]),
    )


def event_from_json(data: Any) -> AlertEvent:
    """Return the event held in ``data`` (as written by :func:`event_to_json`).

    :raises ValueError: when ``data`` is not an event.
    """
    try:
        return _event_from_json(data)
    except (KeyError, TypeError) as exc:
        msg = f"not an alert event: {exc}"
        raise ValueError(msg) from exc


def _moment(value: object) -> datetime:
    if not isinstance(value, str):
        msg = f"{value!r} is not a time"
        raise TypeError(msg)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        msg = f"{value!r} has no time zone"
        raise ValueError(msg)
    return moment
