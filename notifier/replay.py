"""What a ``logscan`` check would have reported over an existing log file.

The file is cut into run windows as the daemon would have seen it, one
window per run of the check, and each window is scanned with the check's own
rules and thresholds. Nothing here touches the check's saved offsets.

Windows come from the timestamps at the start of lines. The first lines of
the file decide the format, one of:

- ISO 8601 (``2024-05-01T12:00:00``, ``2024-05-01 12:00:00``), also after
  an RFC 5424 priority (``<34>1 2024-05-01T12:00:00Z``);
- BSD syslog (``May  1 12:00:00``), whose missing year is taken from the
  file's modification time (a date after it belongs to the year before);
- the bracketed time of web server logs (``[01/May/2024:12:00:00 +0200]``)
  within the first 100 characters.

Windows are aligned to whole multiples of the window length (``12:00``,
``12:01`` for one minute) and a line without a timestamp belongs to the
window of the line before it. Time zones are ignored: a file's lines are
compared with each other only. A file without timestamps at line starts is
one window, as if the daemon had read it in one run.

:func:`alert_messages` then feeds the runs through the alert state
(:func:`notifier.lifecycle.advance`), so a replay shows the messages that
would have gone out, with ``for``, ``within``, ``repeat`` and flapping
applied, not only each run's status.
"""

from __future__ import annotations

import calendar
import gzip
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

from notifier.checks.base import Result, Status
from notifier.checks.logscan import Thresholds, build_result, new_scanner
from notifier.config import CheckSpec, MailSettings
from notifier.events import AlertEvent
from notifier.lifecycle import AlertState, advance
from notifier.logmatch import LineScanner
from notifier.logrules import Rules
from notifier.tail import PollReport

_MONTH_NAMES: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun")
_MONTH_NAMES_2: Final = ("Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS: Final = {
    name.encode(): number
    for number, name in enumerate((*_MONTH_NAMES, *_MONTH_NAMES_2), start=1)
}
_ISO: Final = re.compile(
    rb"(?:<\d{1,3}>\d? ?)?(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)"
)
_SYSLOG: Final = re.compile(
    rb"(?:<\d{1,3}>)?([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)"
)
_BRACKETED: Final = re.compile(
    rb"[^\[\n]{0,100}\[(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d)"
)
_SNIFF_LINES: Final = 200
_DAY: Final = 86400.0
LINE_HEAD_BYTES: Final = 4096
"""Bytes of a line read to find its timestamp; the rest of a longer line is
skipped without being held, so that memory stays flat whatever the line."""

TimeParser = Callable[[bytes], float | None]
LogStream = IO[bytes] | gzip.GzipFile


# Limitation: time zones in timestamps are ignored; the lines of one file are
# taken to share one, which is all windows need.
def _iso_time(line: bytes) -> float | None:
    match = _ISO.match(line)
    if match is None:
        return None
    return _epoch(*(int(part) for part in match.groups()))


def _bracketed_time(line: bytes) -> float | None:
    match = _BRACKETED.match(line)
    if match is None:
        return None
    day, month_name, year, hour, minute, second = match.groups()
    month = _MONTHS.get(month_name)
    if month is None:
        return None
    return _epoch(int(year), month, int(day), int(hour), int(minute), int(second))


def _syslog_parser(modified: float) -> TimeParser:
    year_modified = time.gmtime(modified).tm_year

    def parse(line: bytes) -> float | None:
        match = _SYSLOG.match(line)
        if match is None:
            return None
        month = _MONTHS.get(match.group(1))
        if month is None:
            return None
        parts = [int(part) for part in match.groups()[1:]]
        stamp = _epoch(year_modified, month, *parts)
        if stamp is not None and stamp > modified + _DAY:
            stamp = _epoch(year_modified - 1, month, *parts)
        return stamp

    return parse


def _epoch(
    year: int, month: int, day: int, hour: int, minute: int, second: int
) -> float | None:
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60):
        return None
    return float(calendar.timegm((year, month, day, hour, minute, min(second, 59))))


@dataclass(frozen=True)
class Window:
    """One run of the check: a stretch of the file and when it began.

    :param start: byte offset of its first line.
    :param end: byte offset after its last line.
    :param began: the start of the window, in seconds since the epoch as if
        the log's times were UTC; ``None`` for a file without timestamps.
    """

    start: int
    end: int
    began: float | None


@dataclass(frozen=True)
class WindowResult:
    """What the check would have said at the end of one window."""

    window: Window
    result: Result
    lines: int


def open_log(path: Path) -> LogStream:
    """Return ``path`` opened for reading, decompressed when it is gzip.

    :raises OSError: when it cannot be read.
    """
    stream = path.open("rb")
    if stream.read(2) == b"\x1f\x8b":
        stream.close()
        return gzip.GzipFile(path, "rb")
    stream.seek(0)
    return stream


def line_heads(stream: LogStream) -> Iterator[tuple[bytes, int]]:
    """Yield the start of each line of ``stream`` (at most
    :data:`LINE_HEAD_BYTES`) and the whole line's length in bytes, its line
    feed included; a last line without one counts too."""
    while head := stream.readline(LINE_HEAD_BYTES):
        length = len(head)
        rest = head
        while not rest.endswith(b"\n") and (rest := stream.readline(LINE_HEAD_BYTES)):
            length += len(rest)
        yield head, length


def time_parser(path: Path) -> TimeParser | None:
    """Return the parser for the timestamps at the start of ``path``'s lines,
    or ``None`` when the first lines have none."""
    modified = path.stat().st_mtime
    candidates: list[TimeParser] = [
        _iso_time,
        _syslog_parser(modified),
        _bracketed_time,
    ]
    hits = [0] * len(candidates)
    with open_log(path) as stream:
        for number, (head, _length) in enumerate(line_heads(stream)):
            if number >= _SNIFF_LINES:
                break
            for index, parse in enumerate(candidates):
                if parse(head) is not None:
                    hits[index] += 1
    best = max(range(len(candidates)), key=lambda index: hits[index])
    return candidates[best] if hits[best] else None


def plan_windows(path: Path, seconds: float, parse: TimeParser | None) -> list[Window]:
    """Return the run windows of ``path``, ``seconds`` long each.

    Only the start of each line is read for its timestamp, so memory stays
    flat even for a file that is one huge line.

    :raises OSError: when the file cannot be read.
    """
    with open_log(path) as stream:
        if parse is None:
            size = sum(len(block) for block in iter(lambda: stream.read(1 << 20), b""))
            return [Window(0, size, None)]
        windows: list[Window] = []
        start = offset = 0
        current: float | None = None
        for head, length in line_heads(stream):
            stamp = parse(head)
            if stamp is not None:
                slot = stamp - stamp % seconds
                if current is None:
                    current = slot
                elif slot > current:
                    windows.append(Window(start, offset, current))
                    start, current = offset, slot
            offset += length
        windows.append(Window(start, offset, current))
    return [window for window in windows if window.end > window.start]


def replay(
    path: Path,
    windows: list[Window],
    rules: Rules,
    options: Mapping[str, Any],
    thresholds: Thresholds,
) -> Iterator[WindowResult]:
    """Scan each window of ``path`` as one run and yield what it found.

    :raises OSError: when the file cannot be read.
    """
    label = str(path)
    line_number = 1
    with open_log(path) as stream:
        stream.seek(windows[0].start if windows else 0)
        for window in windows:
            scanner: LineScanner = new_scanner(rules, options)
            left = [window.end - window.start]

            def readinto(buffer: memoryview, left: list[int] = left) -> int:
                data = stream.read(min(len(buffer), left[0]))
                buffer[: len(data)] = data
                left[0] -= len(data)
                return len(data)

            scanned = scanner.scan(
                readinto, label=label, first_line=line_number, flush_partial=True
            )
            line_number += scanned.lines
            report = PollReport(files=1, bytes_read=scanned.consumed)
            result = build_result(
                scanner,
                report,
                pattern=label,
                thresholds=thresholds,
                missing="unknown",
                max_bytes=window.end - window.start,
            )
            yield WindowResult(window, result, scanned.lines)


@dataclass(frozen=True)
class ReplayedRun:
    """One run of the replay with the messages the alert state would send.

    :param found: the window and its result; ``None`` for a run that saw no
        new line (between two windows of the file), which is OK.
    :param events: what would have been sent after this run.
    """

    found: WindowResult | None
    events: tuple[AlertEvent, ...]


def alert_messages(
    results: Sequence[WindowResult],
    spec: CheckSpec,
    seconds: float,
    *,
    host: str,
    mail: MailSettings,
) -> Iterator[ReplayedRun]:
    """Feed the replayed runs through the alert state, as the daemon would.

    Runs between two windows of the file saw no new lines: they are OK
    results, so ``for``, ``within``, ``repeat``, recovery and flapping play
    out as they would have. A file without timestamps is one run.
    """
    state: AlertState | None = None
    quiet = Result(Status.OK, "no new lines")
    previous_end: float | None = None
    for found in results:
        began = found.window.began
        if began is not None and previous_end is not None:
            # Only the first few empty runs can change anything: after as
            # many OK runs as the longest window the state looks at, more
            # OK runs are alike.
            empty_runs = round((began - previous_end) / seconds)
            for index in range(min(empty_runs, _quiet_runs_that_matter(spec))):
                now = _moment(previous_end + index * seconds + seconds)
                state, events = advance(state, quiet, now, spec, host=host, mail=mail)
                if events:
                    yield ReplayedRun(None, tuple(events))
        end = (began or 0.0) + seconds
        state, events = advance(
            state, found.result, _moment(end), spec, host=host, mail=mail
        )
        yield ReplayedRun(found, tuple(events))
        previous_end = end


def _quiet_runs_that_matter(spec: CheckSpec) -> int:
    common = spec.common
    window = common.within[1] if common.within else common.for_.runs
    return max(window, common.flap_window) + 1


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
