"""The digest's record: what happened since the last daily digest.

:class:`DigestLog` keeps every alert event the state machine emitted, and
the highest and lowest value each check reached while OK, in memory and in
``<state_dir>/digest.jsonl`` (one JSON object a line), so a restart forgets
nothing that was written. :mod:`notifier.digest` composes the message from
it; :meth:`DigestLog.rotate` starts the next day.

File lines: ``{"type": "period", "start": ...}`` first, then ``event`` lines
and ``peaks`` lines (changed peaks, merged when read back). A line cut short
by a crash is skipped when the file is read.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from notifier.atomicfile import make_folder, open_owned, write_atomic
from notifier.checks.base import Status
from notifier.events import AlertEvent
from notifier.redact import Redactor, redactor_for

log = logging.getLogger(__name__)

DIGEST_FILE: Final = "digest.jsonl"
MAX_FILE_BYTES: Final = 4 * 1024 * 1024
"""Past this size ``digest.jsonl`` takes no more lines until the next digest."""
MAX_EVENTS: Final = 10_000
"""Events kept in memory; past this they are only counted."""
PEAK_FLUSH_SECONDS: Final = 300.0
"""Changed peaks are written at most this often; a crash loses no more."""
SUMMARY_CHARS: Final = 300


@dataclass(frozen=True)
class NotedEvent:
    """One alert event as the digest remembers it."""

    at: datetime
    kind: str
    check: str
    status: str
    previous: str | None
    summary: str


@dataclass(frozen=True)
class Peak:
    """The lowest and highest value a check reached while OK."""

    low: float
    high: float


class DigestLog:
    """What happened since the last digest, in memory and in ``digest.jsonl``.

    Safe to call from any thread. :meth:`note_event` appends one line per
    event; :meth:`note_value` only updates memory and writes changed peaks at
    most every :data:`PEAK_FLUSH_SECONDS`, so it costs a lock and a compare
    per check run. The file stops growing at :data:`MAX_FILE_BYTES`; events
    past that are counted, not listed. A write that fails is logged once and
    the record is kept in memory. A summary is masked (:mod:`notifier.redact`)
    before it is cut to :data:`SUMMARY_CHARS` and kept, so neither the cut
    nor the file can hold a secret the redactor knows.

    :param state_dir: the daemon's state folder.
    :param now: when this record starts if there is none on disk (default:
        the clock).
    :param max_bytes: the file's size limit.
    :param peak_flush_seconds: how often changed peaks are written at most.
    :param redactor: masks summaries (default: the built-in secret shapes;
        :func:`notifier.digest.compose_digest` adds ``[mail] redact``).
    """

    def __init__(
        self,
        state_dir: Path,
        now: datetime | None = None,
        *,
        max_bytes: int = MAX_FILE_BYTES,
        peak_flush_seconds: float = PEAK_FLUSH_SECONDS,
        redactor: Redactor | None = None,
    ) -> None:
        self.path = state_dir / DIGEST_FILE
        self.redactor = redactor or redactor_for(())
        self.max_bytes = max_bytes
        self.peak_flush_seconds = peak_flush_seconds
        self._lock = threading.Lock()
        self._events: list[NotedEvent] = []
        self._peaks: dict[str, Peak] = {}
        self._dirty: set[str] = set()
        self._flushed = time.monotonic()
        self._overflow = 0
        self._size = 0
        self._write_failed = False
        self.period_start = now or datetime.now(UTC)
        if self.path.exists():
            self._load()
        else:
            self._rewrite()

    def note_event(self, event: AlertEvent) -> None:
        """Remember ``event`` for the next digest and append it to the file."""
        # Imported at the first event: an idle daemon never loads the email
        # package, which notifier.mailtext needs.
        from notifier.mailtext import shorten

        summary, _ = self.redactor.redact(event.summary)
        noted = NotedEvent(
            at=event.at,
            kind=event.kind.value,
            check=event.check,
            status=event.status.name,
            previous=event.previous_status.name if event.previous_status else None,
            summary=shorten(summary, SUMMARY_CHARS),
        )
        line = {"type": "event", **_event_to_json(noted)}
        with self._lock:
            # Limitation: the count of events past the limits lives in memory
            # only; after a restart the digest lists what was kept and no more.
            if len(self._events) < MAX_EVENTS and self._append(line):
                self._events.append(noted)
            else:
                self._overflow += 1

    def note_value(
        self, check: str, status: Status, value: float | None, at: datetime
    ) -> None:
        """Remember ``value`` if it is the check's highest or lowest while OK.

        Called for every result; only OK results with a value count.
        """
        if status is not Status.OK or value is None:
            return
        with self._lock:
            peak = self._peaks.get(check)
            if peak is None or value > peak.high or value < peak.low:
                low = value if peak is None else min(peak.low, value)
                high = value if peak is None else max(peak.high, value)
                self._peaks[check] = Peak(low, high)
                self._dirty.add(check)
            elapsed = time.monotonic() - self._flushed
            if self._dirty and elapsed >= self.peak_flush_seconds:
                self._flush_peaks(at)

    def events(self) -> list[NotedEvent]:
        """Return the events noted since the last digest, oldest first."""
        with self._lock:
            return sorted(self._events, key=lambda noted: noted.at)

    def overflow(self) -> int:
        """Return how many events were counted but not kept (file full)."""
        with self._lock:
            return self._overflow

    def peaks(self) -> dict[str, Peak]:
        """Return each check's lowest and highest value while OK, by name."""
        with self._lock:
            return dict(self._peaks)

    def rotate(self, now: datetime) -> None:
        """Forget what a digest composed up to ``now`` covered.

        Events noted after ``now`` are kept; peaks start afresh.
        """
        with self._lock:
            self._events = [noted for noted in self._events if noted.at > now]
            self._peaks = {}
            self._dirty = set()
            self._overflow = 0
            self.period_start = now
            self._rewrite()

    def _flush_peaks(self, at: datetime) -> None:
        values = {
            name: [self._peaks[name].low, self._peaks[name].high]
            for name in sorted(self._dirty)
        }
        self._append({"type": "peaks", "at": at.isoformat(), "values": values})
        self._dirty = set()
        self._flushed = time.monotonic()

    def _append(self, line: Mapping[str, Any]) -> bool:
        """Append one line; return False when the file is full (lock held)."""
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        if self._size + len(data) > self.max_bytes:
            return False
        try:
            descriptor = open_owned(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
            )
            try:
                os.write(descriptor, data)
            finally:
                os.close(descriptor)
        except OSError as exc:
            self._warn_write(exc)
            return True
        self._size += len(data)
        self._write_failed = False
        return True

    def _rewrite(self) -> None:
        """Replace the file with the period start, events and peaks (lock held)."""
        lines: list[dict[str, Any]] = [
            {"type": "period", "start": self.period_start.isoformat()}
        ]
        lines += [{"type": "event", **_event_to_json(e)} for e in self._events]
        if self._peaks:
            values = {name: [p.low, p.high] for name, p in self._peaks.items()}
            lines.append({"type": "peaks", "values": values})
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        try:
            make_folder(self.path.parent, 0o777)
            write_atomic(self.path, data.encode("utf-8"), mode=0o600)
        except OSError as exc:
            self._warn_write(exc)
            return
        self._size = len(data.encode("utf-8"))
        self._write_failed = False

    def _warn_write(self, exc: OSError) -> None:
        if not self._write_failed:
            log.warning(
                "digest record %s cannot be written (%s); kept in memory only",
                self.path,
                exc.strerror or exc,
            )
        self._write_failed = True

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            log.warning("digest record %s cannot be read (%s)", self.path, exc)
            return
        self._size = len(data)
        damaged = 0
        for raw in data.splitlines():
            try:
                self._load_line(json.loads(raw))
            except (ValueError, TypeError, KeyError):
                # A line cut short by a crash, or edited by hand.
                damaged += 1
        if damaged:
            log.warning(
                "digest record %s: %d damaged lines skipped", self.path, damaged
            )

    def _load_line(self, line: Any) -> None:
        kind = line["type"]
        if kind == "period":
            self.period_start = _aware(line["start"])
        elif kind == "event":
            self._events.append(_event_from_json(line))
        elif kind == "peaks":
            for name, (low, high) in line["values"].items():
                old = self._peaks.get(name)
                if old is not None:
                    low, high = min(old.low, low), max(old.high, high)
                self._peaks[str(name)] = Peak(float(low), float(high))


def _event_to_json(noted: NotedEvent) -> dict[str, Any]:
    return {
        "at": noted.at.isoformat(),
        "kind": noted.kind,
        "check": noted.check,
        "status": noted.status,
        "previous": noted.previous,
        "summary": noted.summary,
    }


def _event_from_json(line: Mapping[str, Any]) -> NotedEvent:
    previous = line["previous"]
    return NotedEvent(
        at=_aware(line["at"]),
        kind=str(line["kind"]),
        check=str(line["check"]),
        status=str(line["status"]),
        previous=str(previous) if previous is not None else None,
        summary=str(line["summary"]),
    )


def _aware(text: object) -> datetime:
    if not isinstance(text, str):
        msg = f"{text!r} is not a time"
        raise TypeError(msg)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        msg = f"{text!r} has no time zone"
        raise ValueError(msg)
    return moment
