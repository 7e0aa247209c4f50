"""Rotated files next to a log: which they are, and which hold data seen before.

This module owns the answer to "is this rotated file new to us?", which
:mod:`notifier.tail` asks when a log was rotated more than once between two
polls: ``app.log`` became ``app.log.1`` and then ``app.log.2`` while a second
file came and went at ``app.log`` unseen, so nothing else leads to it.

A rotated file is one whose name is the log's plus what logrotate adds
(:data:`ROTATED_SUFFIX`). For the plain ones next to every watched file, and
for every file the tailer read to its end, a *fingerprint* is kept: a
:class:`notifier.logfiles.FilePosition` at the end of the data, which
recognises the same data later under another name or compressed. A rotated
file that shows up changed since the last poll is then either a copy of
something seen (read only what it holds beyond that) or new (read all of it).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from notifier.logfiles import (
    HEAD_BYTES,
    SKIPPED_SUFFIXES,
    FilePosition,
    Key,
    Source,
    digest,
    open_plain,
)

ROTATED_SUFFIX: Final = re.compile(
    r"(?:\.\d+|-\d[0-9_.-]*?)(?:\.(?:gz|bz2|xz|zst|lz4|zip|Z))?"
)
"""What rotation adds to a log's name: a number (``app.log.1``) or a date
(``app.log-20240501``), then maybe a compression suffix (``app.log.2.gz``)."""
MAX_FINGERPRINTS: Final = 256
"""Fingerprints kept per check; the oldest go first."""
MTIME_SLACK: Final = 1.0
"""Seconds of lag allowed between file times and ``time.time``: file times
come from a coarser clock."""


@dataclass(frozen=True)
class Sibling:
    """A rotated file next to a log, as listed: where, which, how big, when."""

    path: Path
    key: Key
    size: int
    mtime: float

    @property
    def compressed(self) -> bool:
        """Return whether its name says it is compressed."""
        return self.path.name.endswith(SKIPPED_SUFFIXES)


def rotated_siblings(origin: Path) -> list[Sibling]:
    """Return the regular files next to ``origin`` named as rotation names a
    copy of it (``app.log.1``, ``app.log-20240501.gz``: see
    :data:`ROTATED_SUFFIX`), least recently modified first; none when the
    folder cannot be listed."""
    return [sibling for _name, sibling in rotated_in(origin.parent, {origin.name})]


def rotated_in(folder: Path, names: Container[str]) -> list[tuple[str, Sibling]]:
    """Return the rotated files in ``folder`` of any of the files ``names``
    there, each with the name it was rotated from, least recently modified
    first (one listing of the folder, however many names)."""
    found: list[tuple[str, Sibling]] = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            name = _rotated_from(entry.name, names)
            if name is None:
                continue
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode):
                    key = (info.st_dev, info.st_ino)
                    sibling = Sibling(
                        Path(entry.path), key, info.st_size, info.st_mtime
                    )
                    found.append((name, sibling))
    found.sort(key=lambda item: (item[1].mtime, str(item[1].path)))
    return found


def _rotated_from(entry: str, names: Container[str]) -> str | None:
    """Return which of ``names`` the file name ``entry`` is a rotated copy
    of, if any."""
    for cut, char in enumerate(entry):
        base = entry[:cut]
        if char in ".-" and base in names and ROTATED_SUFFIX.fullmatch(entry, cut):
            return base
    return None


def fingerprint(sibling: Sibling, origin: str) -> FilePosition | None:
    """Return what recognises the plain file ``sibling`` and a later copy of
    it: a position at its end. ``None`` when it is empty or cannot be read."""
    try:
        source = open_plain(sibling.path)
    except OSError:
        return None
    if source is None:
        return None
    try:
        if not source.size:
            return None
        position = FilePosition.at_start(source, sibling.path)
        position.origin = origin
        position.offset = position.size = source.size
        position.line = None
        position.watched = False
        position.anchor_to(source)
        return position
    except OSError:
        return None
    finally:
        source.close()


def furthest_continued(
    source: Source, known: Iterable[FilePosition]
) -> FilePosition | None:
    """Return the position among ``known`` whose data ``source`` holds up to
    its offset (``source`` is that file, grown, or a copy of it), the one
    that got furthest; ``None`` when ``source`` continues none of them.

    :raises OSError: (or another of :data:`notifier.logfiles.READ_ERRORS`)
        when ``source`` cannot be read.
    """
    head = source.pread(HEAD_BYTES, 0)
    best: FilePosition | None = None
    for position in known:
        if not position.head_len or not position.offset:
            continue
        if digest(head[: position.head_len]) != position.head:
            continue
        if best is not None and best.offset >= position.offset:
            continue
        if position.intact_in(source):
            best = position
    return best


class RotatedFiles:
    """The fingerprints of one check's rotated files, and what they tell.

    :param fingerprints: as saved by the last run, by file identity.
    :param folders: each folder's modification time (ns) when its rotated
        files were fingerprinted last; a folder is listed again only when it
        changed.
    """

    def __init__(
        self,
        fingerprints: Mapping[Key, FilePosition] | None = None,
        folders: Mapping[str, int] | None = None,
    ) -> None:
        self.fingerprints: dict[Key, FilePosition] = dict(fingerprints or {})
        self.folders: dict[str, int] = dict(folders or {})

    def remember(self, position: FilePosition) -> None:
        """Keep ``position``, a file read to its end, as a fingerprint: a
        copy of it made later (compressed at the next rotation) is then known
        as read."""
        if not position.offset or not position.head_len:
            return
        position.watched = False
        self.fingerprints.pop(position.key, None)
        self.fingerprints[position.key] = position
        self._trim()

    def start_in(
        self, source: Source, origin: str, followed: Iterable[FilePosition]
    ) -> FilePosition | None:
        """Return where to start reading ``source``, a rotated file of
        ``origin`` that no file being ``followed`` is: after the data of a
        fingerprint it continues, else at its start. ``None`` when it holds
        nothing new: it copies a file being followed, or no more than a file
        read or seen before.

        :raises OSError: (or another of :data:`notifier.logfiles.READ_ERRORS`)
            when ``source`` cannot be read.
        """
        if any(known.continued_in(source) for known in followed):
            return None

        # The same file grown, or a copy of one seen (compressed, renamed).
        seen = self.fingerprints.get(source.key)
        if seen is None or not seen.intact_in(source):
            others = self.fingerprints.values()
            seen = furthest_continued(
                source, [known for known in others if known.key != source.key]
            )

        if seen is None:
            position = FilePosition.at_start(source, source.path)
        elif source.size is not None and source.size <= seen.offset:
            return None
        else:
            position = seen.moved_to(source)
        position.origin = origin
        position.watched = False
        position.compressed = source.stream is not None
        return position

    def note(self, watched: Iterable[Path], now: float) -> None:
        """Fingerprint the plain rotated files next to the ``watched`` files
        (in folders that changed since the last call), and forget those that
        are gone.

        :param now: the time now, as ``time.time`` gives it.
        """
        names: dict[str, set[str]] = {}
        for path in watched:
            names.setdefault(str(path.parent), set()).add(path.name)
        folders: dict[str, int] = {}
        for folder, in_folder in names.items():
            try:
                stamp = Path(folder).stat().st_mtime_ns
            except OSError:
                continue
            # A change within the same tick of the file system's clock as the
            # listing would leave the stamp as it is: list again next time.
            folders[folder] = stamp if now - stamp / 1e9 > MTIME_SLACK else -1
            if self.folders.get(folder) != stamp:
                self._fingerprint_folder(folder, in_folder)
        self.folders = folders

    def _fingerprint_folder(self, folder: str, watched_names: set[str]) -> None:
        present: set[Key] = set()
        for name, sibling in rotated_in(Path(folder), watched_names):
            present.add(sibling.key)
            known = self.fingerprints.get(sibling.key)
            if sibling.compressed or (known and known.size == sibling.size):
                continue
            found = fingerprint(sibling, str(Path(folder) / name))
            if found is not None:
                self.fingerprints[sibling.key] = found
        for key, known in list(self.fingerprints.items()):
            if str(Path(known.path).parent) == folder and key not in present:
                del self.fingerprints[key]
        self._trim()

    def _trim(self) -> None:
        while len(self.fingerprints) > MAX_FINGERPRINTS:
            del self.fingerprints[next(iter(self.fingerprints))]
