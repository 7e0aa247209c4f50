"""Reading only what is new in log files, whatever rotation does to them.

This module owns what is read on every poll of the files at one path or
glob: which files, from where, in which order, and what a rotation or a
truncation means for them. It knows nothing about patterns:
:meth:`Tailer.poll` hands each stretch of new data to a scan function and is
told how far it got. How a file is recognised again and how positions are
kept on disk is :mod:`notifier.logfiles`.

What happens to each kind of rotation:

- Rename and create (logrotate's default), with or without ``delaycompress``:
  the old inode is found again (the daemon keeps it open between runs; after
  a restart it is looked for by inode in its folder) and its rest is read
  before the new file, which is read from its start. A renamed file is
  followed until it has been read to the end and did not grow for a whole
  run, so lines its writer adds before reopening are read too.
- ``compress`` without ``delaycompress``: while the daemon runs, the old file
  is still open and read through that handle. After a restart, a compressed
  sibling (``.gz``, ``.bz2``, ``.xz``) whose start matches the old file's
  first line and whose content matches at the saved offset is decompressed
  and read from that offset.
- ``copytruncate`` and truncation in place: the file shrank or its first
  line or the bytes before the offset changed. A sibling whose content
  continues the old position (the copy, plain or compressed) is read from
  the saved offset, then the truncated file from its start.
- Delete and re-create: the deleted file is still open, so its rest is read;
  the new file is read from its start.
- Rotated more than once between two polls, or while the daemon is stopped:
  a file that came and went at the watched path unseen is found among the
  rotated files next to it that changed since the last poll (see
  :mod:`notifier.rotated`, which also tells a compressed copy of data read
  before from new data) and read, after the rest of the older file and
  before the new one. One that cannot be read (compressed with zstd, say) is
  logged and named in :attr:`PollReport.missed`.

A file seen for the first time on a check's first run starts at its end (or
its start, with ``start_at_end=False``); every file that appears later is
read from its start, because all of it is new.

Limitations:

- Lines written to a file that is then deleted or compressed while the
  daemon is stopped are only found again through a compressed copy; a
  deleted file is gone.
- Rotated files are looked for in the folder of the log only (logrotate's
  ``olddir`` elsewhere is followed only through the open handle), and a file
  rotated in and out between two polls only under logrotate's names
  (``app.log.1``, ``app.log-20240501``, maybe compressed).
- ``copytruncate`` itself loses lines written between its copy and its
  truncation; no reader can get those back.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import logging
import math
import os
import stat
import time
import weakref
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from notifier.logfiles import (
    COMPRESSED,
    READ_ERRORS,
    SKIPPED_SUFFIXES,
    FilePosition,
    Key,
    PositionStore,
    SavedState,
    Source,
    find_again,
    find_by_content,
    last_line_start,
    open_compressed,
    open_plain,
)
from notifier.rotated import MTIME_SLACK, RotatedFiles, Sibling, rotated_siblings

log = logging.getLogger(__name__)

MAX_OPEN_FILES: Final = 64
"""Files per check kept open between runs, the most recently changed first."""
ROUTINE_SAVE_SECONDS: Final = 60.0
"""Longest time offsets wait to be saved when a poll only read past lines
that matched nothing, in the files already known. Saving them is most of
what a poll of a quiet log costs (a JSON document and an fsync'd rename),
and losing them costs nothing that matters: after a crash or a restart
those lines are read again and match nothing again. Any match, new or
rotated file or problem saves at once, so no alert is ever sent twice."""


class Progress(Protocol):
    """What a scan function reports back (see :class:`notifier.logmatch.Scanned`)."""

    @property
    def consumed(self) -> int:
        """Bytes handled, ending at a line boundary."""
        ...

    @property
    def lines(self) -> int:
        """Complete lines handled."""
        ...

    @property
    def matches(self) -> int:
        """Lines that counted."""
        ...

    @property
    def stopped_by_budget(self) -> bool:
        """Whether the scan stopped for lack of budget rather than data."""
        ...


@dataclass(frozen=True)
class Segment:
    """A stretch of new data offered to the scan function.

    :param label: how the data is named to a person: the file's path, with
        ``(deleted)`` when it has no name any more.
    :param attach: the file worth attaching when this data matched; ``None``
        when it is not a plain file any more (compressed, deleted).
    :param first_line: the number of the first line offered, when known.
    :param flush_partial: the writer is done: a last line without a line
        feed counts as complete.
    """

    label: str
    attach: Path | None
    first_line: int | None
    flush_partial: bool


_FileSet = tuple[frozenset[Key], frozenset[Key], frozenset[tuple[str, int]]]
"""The files a save covers: positions, fingerprints, rotation folders."""

ScanFunction = Callable[[Segment, Callable[[memoryview], int], int], Progress]
"""``scan(segment, readinto, budget)``: reads with ``readinto(buffer)``, at
most about ``budget`` bytes, and reports how far it got."""


@dataclass
class PollReport:
    """What one :meth:`Tailer.poll` did.

    :param files: files at the watched path.
    :param bytes_read: bytes handed to the scan function and handled.
    :param behind_bytes: bytes left unread because of the budget.
    :param missing: no file is at the watched path.
    :param problems: one line each: a file that could not be read, offsets
        that could not be saved.
    :param events: one line each: rotations and truncations noticed.
    :param missed: one line each: a file whose new lines could not be read,
        so that lines may have been missed (also in ``events`` or logged).
    """

    files: int = 0
    bytes_read: int = 0
    behind_bytes: int = 0
    missing: bool = False
    problems: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)


@dataclass
class _Poll:
    """What one poll carries from file to file."""

    scan: ScanFunction
    report: PollReport
    budget: int
    first_run: bool
    watched: Container[Key] = ()
    matched: bool = False
    """Some line counted in this poll."""
    read: set[Key] = field(default_factory=set)
    """Files read in this poll (a copy, a compressed file) under any name."""
    caught_up: set[str] = field(default_factory=set)
    """Watched paths whose rotated files were looked through in this poll."""


def _close_all(handles: dict[Key, int]) -> None:
    for fd in handles.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    handles.clear()


class Tailer:
    """Follows the files at one path or glob and remembers how far it read.

    Not thread-safe: one check runs it, never twice at the same time.

    :param pattern: a file path or a glob (``/var/log/nginx/*.log``,
        ``/srv/*/logs/**/*.log`` where ``**`` is any depth of folders),
        expanded again on every poll.
    :param state_file: where positions are kept (JSON, replaced atomically).
    :param start_at_end: on the first poll ever, start files at their end.
    :param partial_after: seconds after which a last line without a line
        feed, in a file not modified since, counts as complete; 0 waits
        for the line feed forever.
    :param max_bytes: bytes read at most per poll, over all files.
    :param clock: returns the time now, as ``time.time`` does (it is
        compared with the modification times of files).
    """

    def __init__(
        self,
        pattern: str,
        state_file: Path,
        *,
        start_at_end: bool = True,
        partial_after: float = 30.0,
        max_bytes: int = 256 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pattern = pattern
        self.start_at_end = start_at_end
        self.partial_after = partial_after
        self.max_bytes = max_bytes
        self._clock = clock
        self._store = PositionStore(state_file)
        self._positions: dict[Key, FilePosition] = {}
        self._polled: float | None = None
        """When the last poll began (saved or in this process)."""
        self._rotated = RotatedFiles()
        self._handles: dict[Key, int] = {}
        self._loaded = False
        self._initialized = False
        self._saved_files: _FileSet | None = None
        """The files of the last save (positions, fingerprints, folders)."""
        self._saved_at = -math.inf
        self._unsaved = False
        self._finalizer = weakref.finalize(self, _close_all, self._handles)

    @property
    def positions(self) -> dict[Key, FilePosition]:
        """Return the positions known now (a copy)."""
        return dict(self._positions)

    def close(self) -> None:
        """Save offsets not saved yet, and close the files kept open."""
        if self._unsaved:
            self._save(PollReport())
        _close_all(self._handles)

    def poll(self, scan: ScanFunction) -> PollReport:
        """Offer everything new since the last poll to ``scan``, then save.

        The rest of files rotated away comes first, then the files at the
        watched path, least recently modified first.
        """
        if not self._loaded:
            self._loaded = True
            saved = self._store.load(self.pattern)
            self._initialized = saved is not None
            if saved is not None:
                self._positions = saved.positions
                self._polled = saved.polled
                self._rotated = RotatedFiles(saved.fingerprints, saved.folders)
        started = self._clock()
        report = PollReport()
        watched = self._expand(report)
        poll = _Poll(scan, report, self.max_bytes, not self._initialized, watched)
        poll.report.files = len(watched)
        poll.report.missing = not watched

        # Files rotated away first: the rest of each, then any whole file
        # that was rotated in and out of the watched path since the last poll.
        rotated: list[str] = []
        for key in [key for key in self._positions if key not in watched]:
            position = self._positions[key]
            if position.watched:
                rotated.append(position.origin)
            try:
                self._follow_away(position, poll)
            except READ_ERRORS as exc:
                self._positions.pop(position.key, None)
                poll.report.problems.append(
                    f"cannot read the rest of {position.path}: {exc}"
                )
        for origin in rotated:
            self._catch_up_rotated(origin, poll)

        by_age = sorted(watched.items(), key=lambda item: (item[1][1], item[1][0]))
        for key, (path, _mtime) in by_age:
            try:
                self._follow_watched(key, path, poll)
            except PermissionError:
                poll.report.problems.append(f"cannot read {path}: permission denied")
            except OSError as exc:
                reason = exc.strerror or exc
                poll.report.problems.append(f"cannot read {path}: {reason}")

        self._initialized = True
        self._polled = started
        self._rotated.note([path for path, _mtime in watched.values()], started)
        self._trim_handles()
        if self._routine(poll):
            self._unsaved = True
        else:
            self._save(poll.report)
        return poll.report

    def _expand(self, report: PollReport) -> dict[Key, tuple[Path, float]]:
        """Return the regular files at the watched path by identity."""
        if any(char in self.pattern for char in "*?["):
            # Path.glob takes no absolute pattern; glob.glob does. ``**``
            # stands for any depth of folders, none included.
            names = sorted(glob.glob(self.pattern, recursive=True))  # noqa: PTH207
        else:
            names = [self.pattern]
        found: dict[Key, tuple[Path, float]] = {}
        for name in names:
            if name.endswith(SKIPPED_SUFFIXES):
                continue
            try:
                info = Path(name).stat()
            except FileNotFoundError:
                continue
            except OSError as exc:
                report.problems.append(f"cannot read {name}: {exc.strerror or exc}")
                continue
            if stat.S_ISREG(info.st_mode):
                key = (info.st_dev, info.st_ino)
                found.setdefault(key, (Path(name), info.st_mtime))
        return found

    def _follow_watched(self, key: Key, path: Path, poll: _Poll) -> None:
        source = self._open_known(key, path)
        if source is None:
            return
        try:
            position = self._positions.get(key)
            if position is None:
                # A new file at the watched path: what was rotated before it
                # comes first.
                self._catch_up_rotated(str(path), poll)
                position = self._new_position(source, path, poll.first_run)
            elif not position.intact_in(source):
                position = self._restart(position, source, poll)
            position.path = position.origin = str(path)
            position.watched = True
            self._read(position, source, poll)
        finally:
            self._keep_open(source)

    def _open_known(self, key: Key, path: Path) -> Source | None:
        """Return the file at ``path`` if it still is ``key``."""
        fd = self._handles.get(key)
        if fd is not None:
            return Source(path, fd=fd)
        source = open_plain(path)
        if source is not None and source.key != key:
            # Replaced between the listing and the opening: next poll.
            source.close()
            return None
        return source

    def _keep_open(self, source: Source) -> None:
        if source.fd is not None and source.linked:
            self._handles[source.key] = source.fd
            source.close(keep_fd=True)
        else:
            self._handles.pop(source.key, None)
            source.close()

    def _trim_handles(self) -> None:
        """Close handles of forgotten files, and past MAX_OPEN_FILES."""
        for key in [key for key in self._handles if key not in self._positions]:
            with contextlib.suppress(OSError):
                os.close(self._handles.pop(key))
        if len(self._handles) <= MAX_OPEN_FILES:
            return
        newest_first = sorted(
            self._handles, key=lambda key: -os.fstat(self._handles[key]).st_mtime
        )
        for key in newest_first[MAX_OPEN_FILES:]:
            with contextlib.suppress(OSError):
                os.close(self._handles.pop(key))

    def _new_position(
        self, source: Source, path: Path, first_run: bool
    ) -> FilePosition:
        """Return where to start a file seen for the first time."""
        position = FilePosition.at_start(source, path)

        # A copy of a file we know (copytruncate's copy matched by the glob)
        # goes on from where the original was, not from its start.
        known = next(
            (known for known in self._positions.values() if known.continued_in(source)),
            None,
        )
        if known is not None:
            position.offset, position.line = known.offset, known.line
            position.anchor_to(source)
        elif first_run and self.start_at_end:
            position.offset = last_line_start(source)
            position.line = 1 if position.offset == 0 else None
            position.anchor_to(source)
        self._positions[source.key] = position
        return position

    def _restart(
        self, position: FilePosition, source: Source, poll: _Poll
    ) -> FilePosition:
        """Handle a file truncated, rewritten, or new under a reused inode:
        read the rest of its copy if there is one, then start it over."""
        copy = find_by_content(position, self._positions)
        if copy is not None:
            event = (
                f"{position.origin} was truncated or replaced; read the rest of "
                f"its old content in {copy.label} first"
            )
            self._read_copy(position, copy, poll)
        else:
            event = f"{position.origin} was truncated or replaced; read from the start"
        log.warning("log %s", event)
        poll.report.events.append(event)
        self._catch_up_rotated(position.origin, poll)

        fresh = FilePosition.at_start(source, source.path)
        self._positions[source.key] = fresh
        return fresh

    def _read_copy(self, original: FilePosition, copy: Source, poll: _Poll) -> None:
        """Read a copy from the original's position. The copy stays known
        (at its end) only when the glob matches it, so that it is not read
        again as a new file."""
        position = original.moved_to(copy)
        self._positions[copy.key] = position
        poll.read.add(copy.key)
        try:
            self._read(position, copy, poll, frozen=True)
        finally:
            copy.close()
        finished = copy.size is None or position.offset >= copy.size
        if finished and not fnmatch.fnmatch(str(copy.path), self.pattern):
            self._retire(position)

    def _follow_away(self, position: FilePosition, poll: _Poll) -> None:
        """Read the rest of a file no longer at the watched path."""
        source = find_again(position, self._handles, self._positions)
        if source is None:
            self._positions.pop(position.key, None)
            if position.watched:
                # Limitation: a file deleted (or compressed) while the daemon
                # was stopped is gone unless a compressed copy holds it.
                event = (
                    f"{position.origin} was rotated or deleted and cannot be found "
                    "again; lines written to it after the last run may have been "
                    "missed"
                )
                poll.report.events.append(event)
                self._missed(event, poll)
            return
        if position.watched:
            event = f"{position.origin} was rotated; reading the rest of {source.label}"
            log.warning("log %s", event)
            poll.report.events.append(event)

        # Found by content, it may be another file (the compressed one).
        self._positions.pop(position.key, None)
        self._read_rest(position.moved_to(source), source, poll, position.size)

    def _read_rest(
        self,
        position: FilePosition,
        source: Source,
        poll: _Poll,
        previous_size: int | None,
    ) -> None:
        """Read a file no longer at the watched path from ``position`` on;
        forget it once it is read to its end and did not grow since the
        last poll (its size then was ``previous_size``), or is compressed."""
        self._positions[position.key] = position
        poll.read.add(position.key)
        try:
            self._read(position, source, poll, frozen=source.frozen)
            finished = source.size is None or position.offset >= source.size
            idle = source.frozen or source.size == previous_size
            if finished and idle:
                self._retire(position)
        finally:
            if source.key in self._positions and source.fd is not None:
                self._keep_open(source)
            else:
                self._handles.pop(source.key, None)
                source.close()

    def _retire(self, position: FilePosition) -> None:
        """Forget a file read to its end, but keep what recognises a copy of
        it (its compressed form, made at the next rotation) as read."""
        self._positions.pop(position.key, None)
        self._rotated.remember(position)

    def _missed(self, text: str, poll: _Poll) -> None:
        log.warning("log %s", text)
        poll.report.missed.append(text)

    def _missed_in(self, path: Path, reason: str, poll: _Poll) -> None:
        self._missed(
            f"{path} was rotated since the last run and cannot be read{reason}; "
            "lines in it may have been missed",
            poll,
        )

    def _catch_up_rotated(self, origin: str, poll: _Poll) -> None:
        """Read the files rotated away from ``origin`` that no poll saw: with
        two renames between polls (``app.log`` to ``.1`` to ``.2``), the file
        in between came and went unseen. Looked at are the rotated files next
        to it (:func:`notifier.rotated.rotated_siblings`) changed since the
        last poll and not followed, oldest first."""
        if self._polled is None or poll.first_run or origin in poll.caught_up:
            return
        poll.caught_up.add(origin)
        since = self._polled - MTIME_SLACK
        for sibling in rotated_siblings(Path(origin)):
            if sibling.mtime < since or sibling.key in self._positions:
                continue
            if sibling.key not in poll.watched and sibling.key not in poll.read:
                self._read_rotated(sibling, origin, poll)

    def _read_rotated(self, sibling: Sibling, origin: str, poll: _Poll) -> None:
        """Read what a rotated file holds that was not read before (see
        :meth:`notifier.rotated.RotatedFiles.start_in`), or say that it
        cannot be read."""
        path = sibling.path
        if sibling.compressed and path.suffix not in COMPRESSED:
            self._missed_in(path, " (compressed in a way notifier cannot read)", poll)
            return
        try:
            source = open_compressed(path) if sibling.compressed else open_plain(path)
        except OSError as exc:
            self._missed_in(path, f" ({exc.strerror or exc})", poll)
            return
        if source is None:
            if path.exists():
                self._missed_in(path, "", poll)
            return

        try:
            position = self._rotated.start_in(source, origin, self._positions.values())
        except READ_ERRORS as exc:
            position = None
            self._missed_in(path, f" ({exc})", poll)
        if position is None:
            source.close()
            return

        how = "the rest of" if position.offset else "all of"
        event = f"{origin} was rotated since the last run; reading {how} {path}"
        log.warning("log %s", event)
        poll.report.events.append(event)
        self._read_rest(position, source, poll, None)

    def _read(
        self,
        position: FilePosition,
        source: Source,
        poll: _Poll,
        *,
        frozen: bool = False,
    ) -> None:
        """Offer the file's data after ``position`` to the scan and advance."""
        size = source.size
        if size is not None and size <= position.offset:
            position.size = size
            return
        if poll.budget <= 0:
            poll.report.behind_bytes += (size or position.offset) - position.offset
            position.size = size or 0
            return

        idle = self.partial_after > 0 and (
            self._clock() - source.mtime >= self.partial_after
        )
        segment = Segment(
            label=source.label,
            attach=source.path if source.fd is not None and source.linked else None,
            first_line=position.line,
            flush_partial=frozen or idle,
        )
        try:
            progress = poll.scan(segment, source.reader(position.offset), poll.budget)
        except READ_ERRORS as exc:
            poll.report.problems.append(f"cannot read {source.label}: {exc}")
            return
        poll.budget -= progress.consumed
        poll.matched = poll.matched or progress.matches > 0
        poll.report.bytes_read += progress.consumed
        position.offset += progress.consumed
        if position.line is not None:
            position.line += progress.lines
        # Limitation: a compressed file's size is unknown until it has been
        # read, so what is left of one is not counted in behind_bytes.
        if progress.stopped_by_budget and size is not None:
            poll.report.behind_bytes += size - position.offset
        position.size = size if size is not None else position.offset
        if progress.consumed:
            position.anchor_to(source)

    def _files(self) -> _FileSet:
        rotated = self._rotated
        return (
            frozenset(self._positions),
            frozenset(rotated.fingerprints),
            frozenset(rotated.folders.items()),
        )

    def _routine(self, poll: _Poll) -> bool:
        """Whether saving after ``poll`` may wait (see ROUTINE_SAVE_SECONDS)."""
        report = poll.report
        eventful = poll.matched or report.events or report.problems or report.missed
        recent = time.monotonic() - self._saved_at < ROUTINE_SAVE_SECONDS
        return not eventful and recent and self._files() == self._saved_files

    def _save(self, report: PollReport) -> None:
        rotated = self._rotated
        state = SavedState(
            self._positions, self._polled, rotated.fingerprints, rotated.folders
        )
        try:
            self._store.save(self.pattern, state)
        except OSError as exc:
            problem = (
                f"cannot save offsets in {self._store.state_file}: "
                f"{exc.strerror or exc}; lines may be reported again"
            )
            log.error("log %s", problem)
            report.problems.append(problem)
            self._unsaved = True
            self._saved_at = -math.inf  # the next poll tries again
            return
        self._unsaved = False
        self._saved_at = time.monotonic()
        self._saved_files = self._files()
