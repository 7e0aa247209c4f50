"""One daemon per state folder: the lock that says a ``notifier run`` owns it.

Two daemons on one state folder would both send every alert and fight over
the outbox. The daemon holds an exclusive ``flock`` on
``<state_dir>/daemon.lock`` for its whole life (the kernel drops it when the
process ends, however it ends); ``notifier status`` asks the same lock
whether a daemon is running.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Final, TextIO

from notifier.errors import TemporaryError

LOCK_FILE: Final = "daemon.lock"


class InstanceLock:
    """The exclusive lock of one state folder, held until the process ends."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._handle: TextIO | None = None

    def acquire(self) -> None:
        """Take the lock and write our pid into the file.

        :raises TemporaryError: when another daemon holds it (exit 75: it
            may be stopping, so trying again later can work).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        handle = self.path.open("a+", encoding="ascii")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            msg = (
                f"another notifier run (pid {holder}) is using {self.path.parent}; "
                "stop it first, or give this one its own [notifier] state_dir"
            )
            raise TemporaryError(msg) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Let go of the lock (the process ending does the same)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def daemon_running(state_dir: Path) -> tuple[bool | None, int | None]:
    """Return whether a daemon holds the lock of ``state_dir``, and its pid.

    The first value is ``None`` when it cannot be told (no lock file was ever
    made, or it cannot be opened); the caller then falls back on other signs.
    The pid is what the holder wrote, when it is held.
    """
    path = state_dir / LOCK_FILE
    try:
        handle = path.open("r", encoding="ascii")
    except OSError:
        return None, None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            written = handle.read().strip()
            return True, int(written) if written.isdigit() else None
        except OSError:
            return None, None
        with contextlib.suppress(OSError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False, None
