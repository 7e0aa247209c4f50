"""Reading only what is new in log files, whatever rotation does to them.

This module owns the position of every log file a check follows, how those
positions survive a restart, and how a file is found again after rotation or
truncation. It knows nothing about patterns: :meth:`Tailer.poll` hands each
stretch of new data to a scan function and is told how far it got.

A file is known by its device and inode, plus a hash of its first line (at
most :data:`HEAD_BYTES`) to notice an inode number reused by a new file, and
a hash of the :data:`ANCHOR_BYTES` before the saved offset to notice a file
rewritten in place. Positions are saved as JSON in the check's state folder
with a write to a temporary file, ``fsync`` and ``os.replace``, so a crash
leaves either the old positions or the new ones.

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

A file seen for the first time on a check's first run starts at its end (or
its start, with ``start_at_end=False``); every file that appears later is
read from its start, because all of it is new.

Limitations:

- Lines written to a file that is then deleted or compressed while the
  daemon is stopped are only found again through a compressed copy; a
  deleted file is gone.
- Rotated files are looked for in the folder of the log only (logrotate's
  ``olddir`` elsewhere is followed only through the open handle).
- ``copytruncate`` itself loses lines written between its copy and its
  truncation; no reader can get those back.
"""

from __future__ import annotations

import bz2
import contextlib
import fnmatch
import glob
import gzip
import hashlib
import json
import logging
import lzma
import os
import stat
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Protocol

log = logging.getLogger(__name__)

HEAD_BYTES: Final = 1024
"""The first line, up to this many bytes, identifies a file's content."""
ANCHOR_BYTES: Final = 64
"""Bytes before the saved offset that must be unchanged to go on from it."""
MAX_OPEN_FILES: Final = 64
"""Files per check kept open between runs, the most recently changed first."""
MAX_CANDIDATES: Final = 20
"""Siblings looked into when searching a rotated file by content."""
STATE_VERSION: Final = 1
_COMPRESSED: Final[dict[str, Callable[..., Any]]] = {
    ".gz": gzip.open,
    ".bz2": bz2.open,
    ".xz": lzma.open,
}
_SKIPPED_SUFFIXES: Final = (*_COMPRESSED, ".zst", ".lz4", ".zip", ".Z")
_TAIL_PROBE: Final = 64 * 1024

Key = tuple[int, int]


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _head_of(data: bytes) -> bytes:
    """Return the first line of ``data`` (with its line feed), at most
    HEAD_BYTES long."""
    newline = data.find(b"\n", 0, HEAD_BYTES)
    return data[: newline + 1] if newline >= 0 else data[:HEAD_BYTES]


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
    """

    files: int = 0
    bytes_read: int = 0
    behind_bytes: int = 0
    missing: bool = False
    problems: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


@dataclass
class FilePosition:
    """How far a file has been read, and how to recognise it again."""

    dev: int
    ino: int
    path: str
    origin: str
    offset: int
    line: int | None
    head_len: int
    head: str
    anchor_len: int = 0
    anchor: str = ""
    size: int = 0
    watched: bool = True
    compressed: bool = False

    @property
    def key(self) -> Key:
        """Return the file's identity: (device, inode)."""
        return (self.dev, self.ino)


class _Source:
    """An open file to read from: a plain file, or a decompressed stream."""

    def __init__(
        self,
        path: Path,
        fd: int | None = None,
        stream: IO[bytes] | None = None,
        label: str | None = None,
    ) -> None:
        self.path = path
        self.fd = fd
        self.stream = stream
        self.label = label or str(path)
        info = os.fstat(fd) if fd is not None else path.stat()
        self.key: Key = (info.st_dev, info.st_ino)
        self.size: int | None = info.st_size if fd is not None else None
        self.mtime = info.st_mtime
        self.linked = info.st_nlink > 0
        self.frozen = stream is not None

    def pread(self, length: int, offset: int) -> bytes:
        """Return up to ``length`` bytes at ``offset``."""
        if self.fd is not None:
            return os.pread(self.fd, length, offset)
        if self.stream is None:
            return b""
        self.stream.seek(offset)
        return self.stream.read(length)

    def reader(self, offset: int) -> Callable[[memoryview], int]:
        """Return ``readinto(buffer)`` going on from ``offset``."""
        stream, fd = self.stream, self.fd
        if stream is not None:
            stream.seek(offset)
        position = [offset]

        def readinto(buffer: memoryview) -> int:
            if fd is not None:
                count = os.preadv(fd, [buffer], position[0])
            else:
                data = stream.read(len(buffer)) if stream is not None else b""
                count = len(data)
                buffer[:count] = data
            position[0] += count
            return count

        return readinto

    def close(self, *, keep_fd: bool = False) -> None:
        """Close the stream, and the descriptor unless it is kept open."""
        if self.stream is not None:
            self.stream.close()
        if self.fd is not None and not keep_fd:
            os.close(self.fd)


def _open_plain(path: Path) -> _Source | None:
    """Open a regular file for reading; ``None`` when it vanished.

    :raises PermissionError: when it may not be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return _Source(path, fd=fd)
    except OSError:
        os.close(fd)
        raise


def _open_compressed(path: Path) -> _Source | None:
    opener = _COMPRESSED.get(path.suffix)
    if opener is None:
        return None
    try:
        stream: Any = opener(path, "rb")
        return _Source(path, stream=stream)
    except OSError:
        return None


def _close_all(handles: dict[Key, int]) -> None:
    for fd in handles.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    handles.clear()


class Tailer:
    """Follows the files at one path or glob and remembers how far it read.

    Not thread-safe: one check runs it, never twice at the same time.

    :param pattern: a file path or a glob (``/var/log/nginx/*.log``),
        expanded again on every poll.
    :param state_file: where positions are kept (JSON, replaced atomically).
    :param start_at_end: on the first poll ever, start files at their end.
    :param partial_after: seconds after which a last line without a line
        feed, in a file not modified since, counts as complete; 0 waits
        for the line feed forever.
    :param max_bytes: bytes read at most per poll, over all files.
    :param clock: returns the time now, as ``time.time`` does.
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
        self.state_file = state_file
        self.start_at_end = start_at_end
        self.partial_after = partial_after
        self.max_bytes = max_bytes
        self._clock = clock
        self._positions: dict[Key, FilePosition] = {}
        self._handles: dict[Key, int] = {}
        self._loaded = False
        self._initialized = False
        self._saved_text = ""
        self._finalizer = weakref.finalize(self, _close_all, self._handles)

    @property
    def positions(self) -> dict[Key, FilePosition]:
        """Return the positions known now (a copy)."""
        return dict(self._positions)

    def close(self) -> None:
        """Close the files kept open between polls; positions stay saved."""
        _close_all(self._handles)

    def poll(self, scan: ScanFunction) -> PollReport:
        """Offer everything new since the last poll to ``scan``, then save.

        The rest of files rotated away comes first, then the files at the
        watched path, least recently modified first.
        """
        self._load()
        report = PollReport()
        first_run = not self._initialized
        watched = self._expand(report)
        report.files = len(watched)
        report.missing = not watched
        budget = [self.max_bytes]

        for key in [key for key in self._positions if key not in watched]:
            self._follow_away(self._positions[key], scan, budget, report)

        by_age = sorted(watched.items(), key=lambda item: (item[1][1], item[1][0]))
        for key, (path, _mtime) in by_age:
            try:
                self._follow_watched(key, path, first_run, scan, budget, report)
            except PermissionError:
                report.problems.append(f"cannot read {path}: permission denied")
            except OSError as exc:
                report.problems.append(f"cannot read {path}: {exc.strerror or exc}")

        self._initialized = True
        self._trim_handles()
        self._save(report)
        return report

    def _expand(self, report: PollReport) -> dict[Key, tuple[Path, float]]:
        """Return the regular files at the watched path by identity."""
        if any(char in self.pattern for char in "*?["):
            # Path.glob takes no absolute pattern; glob.glob does.
            names = sorted(glob.glob(self.pattern))  # noqa: PTH207
        else:
            names = [self.pattern]
        found: dict[Key, tuple[Path, float]] = {}
        for name in names:
            if name.endswith(_SKIPPED_SUFFIXES):
                continue
            try:
                info = Path(name).stat()
            except FileNotFoundError:
                continue
            except OSError as exc:
                report.problems.append(f"cannot read {name}: {exc.strerror or exc}")
                continue
            if stat.S_ISREG(info.st_mode):
                found.setdefault(
                    (info.st_dev, info.st_ino), (Path(name), info.st_mtime)
                )
        return found

    def _follow_watched(
        self,
        key: Key,
        path: Path,
        first_run: bool,
        scan: ScanFunction,
        budget: list[int],
        report: PollReport,
    ) -> None:
        source = self._open_known(key, path)
        if source is None:
            return
        try:
            position = self._positions.get(key)
            if position is None:
                position = self._new_position(source, path, first_run)
            elif not self._intact(position, source):
                position = self._restart(position, source, scan, budget, report)
            position.path = position.origin = str(path)
            position.watched = True
            self._read(position, source, scan, budget, report)
        finally:
            self._keep_open(source)

    def _open_known(self, key: Key, path: Path) -> _Source | None:
        """Return the file at ``path`` if it still is ``key``."""
        fd = self._handles.get(key)
        if fd is not None:
            return _Source(path, fd=fd)
        source = _open_plain(path)
        if source is not None and source.key != key:
            # Replaced between the listing and the opening: next poll.
            source.close()
            return None
        return source

    def _keep_open(self, source: _Source) -> None:
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
        self, source: _Source, path: Path, first_run: bool
    ) -> FilePosition:
        """Return where to start a file seen for the first time."""
        head = _head_of(source.pread(HEAD_BYTES, 0))
        position = FilePosition(
            dev=source.key[0],
            ino=source.key[1],
            path=str(path),
            origin=str(path),
            offset=0,
            line=1,
            head_len=len(head),
            head=_digest(head),
        )

        # A copy of a file we know (copytruncate's copy matched by the glob)
        # goes on from where the original was, not from its start.
        known = self._continued_by(source)
        if known is not None:
            position.offset, position.line = known.offset, known.line
            self._set_anchor(position, source)
        elif first_run and self.start_at_end:
            position.offset = self._last_line_start(source)
            position.line = 1 if position.offset == 0 else None
            self._set_anchor(position, source)
        self._positions[source.key] = position
        return position

    def _last_line_start(self, source: _Source) -> int:
        """Return the offset after the last line feed, so that a line being
        written is matched once it is complete."""
        size = source.size or 0
        probe = source.pread(min(size, _TAIL_PROBE), max(size - _TAIL_PROBE, 0))
        newline = probe.rfind(b"\n")
        if newline >= 0:
            return size - len(probe) + newline + 1
        return 0 if size <= _TAIL_PROBE else size

    def _continued_by(self, source: _Source) -> FilePosition | None:
        for position in self._positions.values():
            if position.offset and self._matches_content(position, source):
                return position
        return None

    def _matches_content(self, position: FilePosition, source: _Source) -> bool:
        """Return whether ``source`` holds the data ``position`` was reading,
        at least up to its offset."""
        if position.head_len == 0 or position.key == source.key:
            return False
        if source.size is not None and source.size < position.offset:
            return False
        head = source.pread(position.head_len, 0)
        if len(head) != position.head_len or _digest(head) != position.head:
            return False
        return self._anchor_holds(position, source)

    def _anchor_holds(self, position: FilePosition, source: _Source) -> bool:
        if not position.anchor_len:
            return True
        start = position.offset - position.anchor_len
        data = source.pread(position.anchor_len, start)
        return len(data) == position.anchor_len and _digest(data) == position.anchor

    def _intact(self, position: FilePosition, source: _Source) -> bool:
        """Return whether the file still holds what we read, unchanged."""
        if source.size is not None and source.size < position.offset:
            return False
        head = source.pread(position.head_len, 0)
        if len(head) != position.head_len or _digest(head) != position.head:
            return False
        return self._anchor_holds(position, source)

    def _set_anchor(self, position: FilePosition, source: _Source) -> None:
        length = min(ANCHOR_BYTES, position.offset)
        data = source.pread(length, position.offset - length) if length else b""
        position.anchor_len = len(data)
        position.anchor = _digest(data) if data else ""

    def _restart(
        self,
        position: FilePosition,
        source: _Source,
        scan: ScanFunction,
        budget: list[int],
        report: PollReport,
    ) -> FilePosition:
        """Handle a file truncated, rewritten, or new under a reused inode:
        read the rest of its copy if there is one, then start it over."""
        copy = self._find_by_content(position)
        if copy is not None:
            event = (
                f"{position.origin} was truncated or replaced; read the rest of "
                f"its old content in {copy.label} first"
            )
            self._read_copy(position, copy, scan, budget, report)
        else:
            event = f"{position.origin} was truncated or replaced; read from the start"
        log.warning("log %s", event)
        report.events.append(event)

        head = _head_of(source.pread(HEAD_BYTES, 0))
        fresh = FilePosition(
            dev=source.key[0],
            ino=source.key[1],
            path=str(source.path),
            origin=str(source.path),
            offset=0,
            line=1,
            head_len=len(head),
            head=_digest(head),
        )
        self._positions[source.key] = fresh
        return fresh

    def _read_copy(
        self,
        original: FilePosition,
        copy: _Source,
        scan: ScanFunction,
        budget: list[int],
        report: PollReport,
    ) -> None:
        """Read a copy from the original's position; the copy is then known
        (at its end once read), so that a glob matching it does not read it
        again."""
        position = FilePosition(
            dev=copy.key[0],
            ino=copy.key[1],
            path=str(copy.path),
            origin=original.origin,
            offset=original.offset,
            line=original.line,
            head_len=original.head_len,
            head=original.head,
            anchor_len=original.anchor_len,
            anchor=original.anchor,
            watched=False,
            compressed=copy.stream is not None,
        )
        self._positions[copy.key] = position
        try:
            self._read(position, copy, scan, budget, report, frozen=True)
        finally:
            copy.close()
        finished = copy.size is None or position.offset >= copy.size
        if finished and not fnmatch.fnmatch(str(copy.path), self.pattern):
            self._positions.pop(copy.key, None)

    def _follow_away(
        self,
        position: FilePosition,
        scan: ScanFunction,
        budget: list[int],
        report: PollReport,
    ) -> None:
        """Read the rest of a file no longer at the watched path."""
        source = self._find_again(position)
        if source is None:
            self._positions.pop(position.key, None)
            if position.watched:
                event = (
                    f"{position.origin} was rotated or deleted and cannot be found "
                    "again; lines written to it after the last run are not read"
                )
                log.warning("log %s", event)
                report.events.append(event)
            return
        if position.watched:
            event = f"{position.origin} was rotated; reading the rest of {source.label}"
            log.warning("log %s", event)
            report.events.append(event)

        # Re-key: found by content, it may be another file (the compressed one).
        self._positions.pop(position.key, None)
        position.dev, position.ino = source.key
        position.path = str(source.path)
        position.compressed = source.stream is not None
        position.watched = False
        self._positions[position.key] = position

        size_before = position.size
        try:
            self._read(position, source, scan, budget, report, frozen=source.frozen)
            finished = source.size is None or position.offset >= source.size
            idle = source.frozen or source.size == size_before
            if finished and idle:
                self._positions.pop(position.key, None)
        finally:
            if source.key in self._positions and source.fd is not None:
                self._keep_open(source)
            else:
                self._handles.pop(source.key, None)
                source.close()

    def _find_again(self, position: FilePosition) -> _Source | None:
        """Return the file ``position`` was reading, wherever it went."""
        fd = self._handles.get(position.key)
        if fd is not None:
            source = _Source(Path(position.path), fd=fd)
            name = self._name_of(position)
            source.label = name or f"{position.path} (deleted)"
            source.path = Path(name) if name else source.path
            return source
        name = self._name_of(position)
        if name is not None:
            path = Path(name)
            found = _open_compressed(path) if position.compressed else _open_plain(path)
            if found is not None and self._intact(position, found):
                return found
            if found is not None:
                found.close()
        return None if position.compressed else self._find_by_content(position)

    def _name_of(self, position: FilePosition) -> str | None:
        """Return the current name of the file ``position`` is about: its last
        known path, or any name in that folder or its origin's folder."""
        with contextlib.suppress(OSError):
            info = Path(position.path).stat()
            if (info.st_dev, info.st_ino) == position.key:
                return position.path
        folders = {Path(position.path).parent, Path(position.origin).parent}
        for folder in folders:
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                for entry in entries:
                    if entry.inode() != position.ino:
                        continue
                    info = entry.stat(follow_symlinks=False)
                    if info.st_dev == position.dev and stat.S_ISREG(info.st_mode):
                        return entry.path
        return None

    def _find_by_content(self, position: FilePosition) -> _Source | None:
        """Return a sibling of the file that holds its data up to the saved
        offset (a copy, or the file compressed), not one already followed."""
        folder = Path(position.origin).parent
        stem = Path(position.origin).name.split(".")[0]
        candidates: list[tuple[float, str]] = []
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(stem) and entry.path != position.origin:
                    with contextlib.suppress(OSError):
                        if entry.is_file():
                            candidates.append((-entry.stat().st_mtime, entry.path))
        for _age, name in sorted(candidates)[:MAX_CANDIDATES]:
            path = Path(name)
            try:
                if path.suffix in _COMPRESSED:
                    source = _open_compressed(path)
                elif path.name.endswith(_SKIPPED_SUFFIXES):
                    continue
                else:
                    source = _open_plain(path)
                if source is None:
                    continue
            except OSError:
                continue
            if source.key not in self._positions and self._content_ok(position, source):
                return source
            source.close()
        return None

    def _content_ok(self, position: FilePosition, source: _Source) -> bool:
        try:
            return self._matches_content(position, source)
        except (OSError, EOFError, lzma.LZMAError, gzip.BadGzipFile):
            return False

    def _read(
        self,
        position: FilePosition,
        source: _Source,
        scan: ScanFunction,
        budget: list[int],
        report: PollReport,
        *,
        frozen: bool = False,
    ) -> None:
        """Offer the file's data after ``position`` to ``scan`` and advance."""
        size = source.size
        if size is not None and size <= position.offset:
            position.size = size
            return
        if budget[0] <= 0:
            report.behind_bytes += (size or position.offset) - position.offset
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
            progress = scan(segment, source.reader(position.offset), budget[0])
        except (EOFError, lzma.LZMAError, gzip.BadGzipFile, OSError) as exc:
            report.problems.append(f"cannot read {source.label}: {exc}")
            return
        budget[0] -= progress.consumed
        report.bytes_read += progress.consumed
        position.offset += progress.consumed
        if position.line is not None:
            position.line += progress.lines
        if progress.stopped_by_budget and size is not None:
            report.behind_bytes += size - position.offset
        position.size = size if size is not None else position.offset

        # Recognition data for the next poll. A short head may be a first
        # line still being written: take it again (one small read).
        if position.head_len < HEAD_BYTES and source.fd is not None:
            head = _head_of(source.pread(HEAD_BYTES, 0))
            position.head_len, position.head = len(head), _digest(head)
        if progress.consumed:
            self._set_anchor(position, source)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            text = self.state_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning(
                "offsets %r cannot be read (%s); starting as on a first run",
                str(self.state_file),
                exc.strerror or exc,
            )
            return
        try:
            document = json.loads(text)
            if document.get("version") != STATE_VERSION:
                msg = f"version {document.get('version')!r}"
                raise ValueError(msg)
            positions = [FilePosition(**entry) for entry in document["files"]]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning(
                "offsets %r are damaged (%s); starting as on a first run",
                str(self.state_file),
                exc,
            )
            return
        if document.get("pattern") != self.pattern:
            log.info(
                "offsets %r were for path %r, now %r; starting as on a first run",
                str(self.state_file),
                document.get("pattern"),
                self.pattern,
            )
            return
        self._positions = {position.key: position for position in positions}
        self._initialized = True
        self._saved_text = text

    def _save(self, report: PollReport) -> None:
        document = {
            "version": STATE_VERSION,
            "pattern": self.pattern,
            "files": [asdict(position) for position in self._positions.values()],
        }
        text = json.dumps(document, indent=1, sort_keys=True) + "\n"
        if text == self._saved_text:
            return
        try:
            write_atomically(self.state_file, text.encode("utf-8"))
        except OSError as exc:
            problem = (
                f"cannot save offsets in {self.state_file}: {exc.strerror or exc}; "
                "lines may be reported again"
            )
            log.error("log %s", problem)
            report.problems.append(problem)
            return
        self._saved_text = text


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or
    the new one, never a mix: temporary file, ``fsync``, ``os.replace``,
    ``fsync`` of the folder.

    :raises OSError: when the folder is not writable or the disk is full; the
        old file is then unchanged.
    """
    folder = path.parent
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder_fd)
    finally:
        os.close(folder_fd)
