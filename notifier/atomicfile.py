"""Files replaced all at once: what every piece of state on disk is written with.

A reader (or the daemon after a crash or a power cut) sees either the old
file or the new one, never a mix; a damaged file is moved aside, never
deleted, so nothing a person may want to look at is lost.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

_CORRUPT_STAMP: Final = "%Y%m%dT%H%M%SZ"


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file.

    Writes a temporary file in the same folder, fsyncs it, renames it over
    ``path`` and fsyncs the folder, so the change survives a crash or a power
    cut. The temporary file is removed when anything fails.

    :param mode: permission bits of the new file.
    :raises OSError: when the folder cannot be written.
    """
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (new names, renames, deletions) to disk."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def move_aside(path: Path, now: datetime | None = None) -> Path:
    """Rename a damaged file to ``<name>.corrupt-<UTC time>`` and return the new path.

    :raises OSError: when it cannot be renamed.
    """
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(_CORRUPT_STAMP)
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
    path.replace(target)
    return target
