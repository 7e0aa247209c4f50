"""Files replaced all at once: what every piece of state on disk is written with.

A reader (or the daemon after a crash or a power cut) sees either the old
file or the new one, never a mix; a damaged file is moved aside, never
deleted, so nothing a person may want to look at is lost.

It also owns who owns what notifier creates. The daemon runs as its own user
(``notifier``), but sysadmins run ``notifier queue retry``, ``queue flush``,
``silence`` and ``test-send`` as root, in the daemon's state folder. A file
or folder root creates there would belong to root, and the daemon could
then neither read a retried message nor append to ``sent.log``. So every
file and folder notifier creates, when it runs as root in a folder that
belongs to someone else, is given to that folder's owner and group
(:func:`write_atomic`, :func:`open_owned`, :func:`make_folder`).
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

_CORRUPT_STAMP: Final = "%Y%m%dT%H%M%SZ"
_ROOT: Final = 0


def write_atomic(
    path: Path,
    data: bytes,
    mode: int = 0o644,
    *,
    exclusive: bool = False,
    durable: bool = True,
) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file.

    Writes a temporary file in the same folder, fsyncs it, renames it over
    ``path`` and fsyncs the folder, so the change survives a crash or a power
    cut. The temporary file is removed when anything fails. Run as root in
    a folder owned by another user, the new file belongs to that folder's
    owner and group (see the module docstring).

    :param mode: permission bits of the new file.
    :param exclusive: only create ``path``, never replace it.
    :param durable: fsync the file and the folder; ``False`` for a file that
        is rewritten often and worth nothing after a power cut (the daemon's
        status), which still never shows a reader half a file.
    :raises FileExistsError: when ``exclusive`` and ``path`` exists.
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
            adopt_folder_owner(handle.fileno(), path.parent)
            if durable:
                os.fsync(handle.fileno())
        if exclusive:
            # A hard link fails when the name exists: no other writer's file
            # is ever replaced.
            os.link(temporary, path)
            Path(temporary).unlink()
        else:
            Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if durable:
        fsync_folder(path.parent)


def open_owned(path: Path, flags: int, mode: int = 0o600) -> int:
    """Open ``path`` like :func:`os.open`; a file created by root in a folder
    owned by another user is given to that folder's owner.

    Meant for files appended to in place (logs, journals, lock files). A
    file root created there earlier is repaired the same way.

    :param flags: :func:`os.open` flags, usually with ``os.O_CREAT``.
    :param mode: permission bits of a new file.
    :returns: the open descriptor; the caller closes it.
    :raises OSError: when it cannot be opened or given away.
    """
    descriptor = os.open(path, flags | os.O_CLOEXEC, mode)
    try:
        adopt_folder_owner(descriptor, path.parent)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def make_folder(path: Path, mode: int = 0o700) -> None:
    """Create ``path`` and any missing parents, like ``mkdir -p``.

    Run as root, each folder created belongs to the owner of the folder it
    was created in, so the daemon's user can use it.

    :param mode: permission bits of ``path`` if it is created.
    :raises OSError: when it cannot be created or given away.
    """
    missing: list[Path] = []
    folder = path
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    for created in reversed(missing):
        descriptor = os.open(created, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            adopt_folder_owner(descriptor, created.parent)
        finally:
            os.close(descriptor)


def adopt_folder_owner(descriptor: int, folder: Path) -> None:
    """Give the file open as ``descriptor`` to the owner of ``folder``, when
    this process runs as root, root owns the file, and someone else owns
    ``folder``; otherwise do nothing.

    :raises OSError: when the ownership cannot be changed.
    """
    if os.geteuid() != _ROOT:
        return
    owner = folder.stat()
    if owner.st_uid == _ROOT or os.fstat(descriptor).st_uid != _ROOT:
        return
    os.fchown(descriptor, owner.st_uid, owner.st_gid)


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
