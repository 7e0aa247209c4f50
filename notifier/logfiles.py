"""Log files as the tailer sees them: opened, recognised again, positions saved.

This module owns how a log file is opened (plain, or decompressed when
rotation compressed it), how a file is recognised after a restart or a
rotation, and how positions are kept on disk. :mod:`notifier.tail` decides
what to read; this module only answers "is this still the same data?" and
"where did it go?".

A file is known by its device and inode, plus a hash of its first line (at
most :data:`HEAD_BYTES`) to notice an inode number reused by a new file, and
a hash of the :data:`ANCHOR_BYTES` before the saved offset to notice a file
rewritten in place. Positions are saved as JSON with
:func:`notifier.atomicfile.write_atomic` (temporary file, ``fsync``, rename),
so a crash leaves either the old positions or the new ones; with them the
time of the poll and the fingerprints of rotated files
(:class:`SavedState`, :mod:`notifier.rotated`).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import logging
import lzma
import os
import stat
from collections.abc import Callable, Container, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from notifier.atomicfile import move_aside, write_atomic
from notifier.hashing import short_hash

log = logging.getLogger(__name__)

HEAD_BYTES: Final = 1024
"""The first line, up to this many bytes, identifies a file's content."""
ANCHOR_BYTES: Final = 64
"""Bytes before the saved offset that must be unchanged to go on from it."""
MAX_CANDIDATES: Final = 20
"""Siblings looked into when searching a rotated file by its content."""
STATE_VERSION: Final = 1
COMPRESSED: Final[dict[str, Callable[..., Any]]] = {
    ".gz": gzip.open,
    ".bz2": bz2.open,
    ".xz": lzma.open,
}
"""Suffixes of rotated files that can be read back, and how."""
SKIPPED_SUFFIXES: Final = (*COMPRESSED, ".zst", ".lz4", ".zip", ".Z")
"""Files with these suffixes are never tailed as text, even when a glob
matches them."""
READ_ERRORS: Final = (OSError, EOFError, lzma.LZMAError, gzip.BadGzipFile)
"""What reading a damaged or vanishing file can raise."""
_TAIL_PROBE: Final = 64 * 1024
Key = tuple[int, int]


def digest(data: bytes) -> str:
    """Return a short hash of ``data`` for recognising content."""
    return short_hash(data, 16)


def head_of(data: bytes) -> bytes:
    """Return the first line of ``data`` (with its line feed), at most
    HEAD_BYTES long."""
    newline = data.find(b"\n", 0, HEAD_BYTES)
    return data[: newline + 1] if newline >= 0 else data[:HEAD_BYTES]


class Source:
    """An open file to read from: a plain file, or a decompressed stream.

    :param path: the file's name now.
    :param fd: a descriptor of a plain file, owned by the caller.
    :param stream: a decompressing reader, closed with :meth:`close`.
    """

    def __init__(
        self,
        path: Path,
        fd: int | None = None,
        stream: IO[bytes] | None = None,
    ) -> None:
        self.path = path
        self.fd = fd
        self.stream = stream
        self.label = str(path)
        info = os.fstat(fd) if fd is not None else path.stat()
        self.key: Key = (info.st_dev, info.st_ino)
        self.size: int | None = info.st_size if fd is not None else None
        self.mtime = info.st_mtime
        self.linked = info.st_nlink > 0
        self.frozen = stream is not None
        """Nobody writes to it any more (it was compressed)."""

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


def open_plain(path: Path) -> Source | None:
    """Open a regular file for reading; ``None`` when it vanished or is not
    a regular file (a FIFO would block the check).

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
        return Source(path, fd=fd)
    except OSError:
        os.close(fd)
        raise


def open_compressed(path: Path) -> Source | None:
    """Open a compressed file for reading its text; ``None`` when it cannot be."""
    opener = COMPRESSED.get(path.suffix)
    if opener is None:
        return None
    try:
        stream: Any = opener(path, "rb")
        return Source(path, stream=stream)
    except OSError:
        return None


@dataclass
class FilePosition:
    """How far a file has been read, and how to recognise it again.

    :param path: where the file was last found.
    :param origin: the watched path it was last found at (a rotated file's
        siblings are searched next to it).
    :param offset: bytes read, always at the end of a line.
    :param line: the number of the line at ``offset``, when known.
    :param size: the file's size at the last poll.
    :param watched: it was at the watched path at the last poll.
    :param compressed: ``path`` is compressed; ``offset`` counts
        decompressed bytes.
    """

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

    @classmethod
    def at_start(cls, source: Source, path: Path) -> FilePosition:
        """Return the position at the very start of ``source``."""
        head = head_of(source.pread(HEAD_BYTES, 0))
        return cls(
            dev=source.key[0],
            ino=source.key[1],
            path=str(path),
            origin=str(path),
            offset=0,
            line=1,
            head_len=len(head),
            head=digest(head),
        )

    def moved_to(self, source: Source) -> FilePosition:
        """Return this position in another file holding the same data (a
        copy, or the file compressed)."""
        return FilePosition(
            **{
                **asdict(self),
                "dev": source.key[0],
                "ino": source.key[1],
                "path": str(source.path),
                "watched": False,
                "compressed": source.stream is not None,
            }
        )

    def intact_in(self, source: Source) -> bool:
        """Return whether ``source`` still holds what was read, unchanged: it
        is no shorter, its first line and the bytes before the offset are the
        same."""
        if source.size is not None and source.size < self.offset:
            return False
        head = source.pread(self.head_len, 0)
        if len(head) != self.head_len or digest(head) != self.head:
            return False
        if not self.anchor_len:
            return True
        data = source.pread(self.anchor_len, self.offset - self.anchor_len)
        return len(data) == self.anchor_len and digest(data) == self.anchor

    def continued_in(self, source: Source) -> bool:
        """Return whether another file, ``source``, holds this file's data up
        to the offset; never raises."""
        if not self.head_len or not self.offset or self.key == source.key:
            return False
        try:
            return self.intact_in(source)
        except READ_ERRORS:
            return False

    def anchor_to(self, source: Source) -> None:
        """Remember the bytes before the offset, and the first line again
        while it may still be growing."""
        if self.head_len < HEAD_BYTES and source.fd is not None:
            head = head_of(source.pread(HEAD_BYTES, 0))
            self.head_len, self.head = len(head), digest(head)
        length = min(ANCHOR_BYTES, self.offset)
        data = source.pread(length, self.offset - length) if length else b""
        self.anchor_len = len(data)
        self.anchor = digest(data) if data else ""


def name_of(position: FilePosition) -> str | None:
    """Return the current name of the file ``position`` is about: its last
    known path, or any name with its inode in that folder or its origin's."""
    with contextlib.suppress(OSError):
        info = Path(position.path).stat()
        if (info.st_dev, info.st_ino) == position.key:
            return position.path
    for folder in {Path(position.path).parent, Path(position.origin).parent}:
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                if entry.inode() != position.ino:
                    continue
                info = entry.stat(follow_symlinks=False)
                if info.st_dev == position.dev and stat.S_ISREG(info.st_mode):
                    return entry.path
    return None


def _siblings(position: FilePosition) -> list[Path]:
    """Return files next to the watched one whose name starts like it
    (``app.log.1``, ``app.log-20240501.gz``), most recently changed first."""
    origin = Path(position.origin)
    stem = origin.name.split(".")[0]
    found: list[tuple[float, str]] = []
    with contextlib.suppress(OSError), os.scandir(origin.parent) as entries:
        for entry in entries:
            if entry.name.startswith(stem) and entry.path != position.origin:
                with contextlib.suppress(OSError):
                    if entry.is_file():
                        found.append((-entry.stat().st_mtime, entry.path))
    return [Path(name) for _age, name in sorted(found)[:MAX_CANDIDATES]]


def find_by_content(position: FilePosition, known: Container[Key]) -> Source | None:
    """Return a sibling that holds the data ``position`` was reading up to
    its offset (a copy, or the file compressed), other than the files in
    ``known``; it is open, for the caller to read and close."""
    for path in _siblings(position):
        try:
            if path.suffix in COMPRESSED:
                source = open_compressed(path)
            elif path.name.endswith(SKIPPED_SUFFIXES):
                continue
            else:
                source = open_plain(path)
        except OSError:
            continue
        if source is None:
            continue
        if source.key not in known and position.continued_in(source):
            return source
        source.close()
    return None


def find_again(
    position: FilePosition, handles: Mapping[Key, int], known: Container[Key]
) -> Source | None:
    """Return the file ``position`` was reading, wherever it went: through
    the descriptor kept open in ``handles`` (not to be closed by the caller
    unless it takes it out), by its inode in its folder, or (uncompressed
    before) by its content in a compressed sibling not among ``known``."""
    name = name_of(position)
    fd = handles.get(position.key)
    if fd is not None:
        source = Source(Path(name or position.path), fd=fd)
        source.label = name or f"{position.path} (deleted)"
        return source
    if name is not None:
        path = Path(name)
        found = open_compressed(path) if position.compressed else open_plain(path)
        if found is not None and position.intact_in(found):
            return found
        if found is not None:
            found.close()
    if position.compressed:
        return None
    # Limitation: only the log's own folder is searched; logrotate's olddir
    # elsewhere is followed only through the handle kept open.
    return find_by_content(position, known)


def last_line_start(source: Source) -> int:
    """Return the offset after the last line feed of a plain file, so that a
    line being written is matched once it is complete."""
    size = source.size or 0
    probe = source.pread(min(size, _TAIL_PROBE), max(size - _TAIL_PROBE, 0))
    newline = probe.rfind(b"\n")
    if newline >= 0:
        return size - len(probe) + newline + 1
    return 0 if size <= _TAIL_PROBE else size


@dataclass
class SavedState:
    """What a tailer keeps between runs.

    :param positions: how far each file being followed was read.
    :param polled: when the poll that saved this began (``time.time``);
        ``None`` in offsets saved before it was kept.
    :param fingerprints: rotated files next to the watched ones and files
        read to their end, each as a position at the end of its data, to
        recognise a copy of one (its compressed form) as data seen before
        (see :mod:`notifier.rotated`).
    :param folders: each folder's modification time (ns) when its rotated
        files were listed last.
    """

    positions: dict[Key, FilePosition] = field(default_factory=dict)
    polled: float | None = None
    fingerprints: dict[Key, FilePosition] = field(default_factory=dict)
    folders: dict[str, int] = field(default_factory=dict)


class PositionStore:
    """The positions of one check's files, in one JSON file.

    The file also names the watched path: positions saved for another path
    are not used, so changing ``path`` starts over as on a first run.
    """

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self._saved_text = ""

    def load(self, pattern: str) -> SavedState | None:
        """Return what was saved, or ``None`` when there is nothing to go on
        from (first run, another path, damaged file: set aside and logged)."""
        try:
            text = self.state_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning(
                "offsets %r cannot be read (%s); starting as on a first run",
                str(self.state_file),
                exc.strerror or exc,
            )
            return None
        try:
            document = json.loads(text)
            if document.get("version") != STATE_VERSION:
                msg = f"version {document.get('version')!r}"
                raise ValueError(msg)
            positions = [FilePosition(**entry) for entry in document["files"]]
            fingerprints = [
                FilePosition(**entry) for entry in document.get("fingerprints", [])
            ]
            polled = document.get("polled")
            folders = {
                str(name): int(stamp)
                for name, stamp in document.get("folders", {}).items()
            }
            if polled is not None:
                polled = float(polled)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning(
                "offsets %r are damaged (%s), kept as %r; starting as on a first run",
                str(self.state_file),
                exc,
                self._move_aside(),
            )
            return None
        if document.get("pattern") != pattern:
            log.info(
                "offsets %r were for path %r, now %r; starting as on a first run",
                str(self.state_file),
                document.get("pattern"),
                pattern,
            )
            return None
        self._saved_text = self._without_time(document)
        return SavedState(
            {position.key: position for position in positions},
            polled,
            {position.key: position for position in fingerprints},
            folders,
        )

    def save(self, pattern: str, state: SavedState) -> None:
        """Replace what was saved; nothing is written when only the time of
        the poll changed (a quiet log costs no disk write).

        :raises OSError: when it cannot be written; the old state stays.
        """
        document = {
            "version": STATE_VERSION,
            "pattern": pattern,
            "files": [asdict(position) for position in state.positions.values()],
            "fingerprints": [
                asdict(position) for position in state.fingerprints.values()
            ],
            "folders": state.folders,
        }
        unchanged = self._without_time(document)
        if unchanged == self._saved_text:
            return
        document["polled"] = state.polled
        text = json.dumps(document, indent=1, sort_keys=True) + "\n"
        write_atomic(self.state_file, text.encode("utf-8"), mode=0o600)
        self._saved_text = unchanged

    @staticmethod
    def _without_time(document: dict[str, Any]) -> str:
        return json.dumps(
            {key: value for key, value in document.items() if key != "polled"},
            sort_keys=True,
        )

    def _move_aside(self) -> str:
        try:
            return str(move_aside(self.state_file))
        except OSError as exc:
            return f"nothing ({exc.strerror or exc})"
