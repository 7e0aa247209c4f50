"""Silences: "do not tell me about this check until then", kept on disk.

``notifier silence`` writes ``<state_dir>/silences.json`` (atomically, under
a lock file so two commands at once do not lose each other's change); the
running daemon only reads it, again whenever the file changes. The daemon's
check costs one ``stat`` per question, so silences take effect without a
restart or a signal.

A silence names one check, or ``all`` for every check. Adding a silence for a
name that has one replaces it (to extend or shorten it). Silences that have
ended are dropped at the next write. What happens to alerts during and after
a silence is the alert state's business (``notifier.state``): events are held
back, the state advances, and a problem that outlives the silence is
announced with SILENCE_ENDED.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from notifier.atomicfile import make_folder, move_aside, open_owned, write_atomic

log = logging.getLogger(__name__)

ALL: Final = "all"
SILENCES_FILE: Final = "silences.json"
SILENCES_VERSION: Final = 1
REASON_MAX: Final = 200
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Silence:
    """One silence.

    :param name: the check it covers, or ``all``.
    :param until: when it ends (timezone-aware).
    :param reason: why, as the person who set it wrote it.
    :param created: when it was set.
    """

    name: str
    until: datetime
    reason: str
    created: datetime

    def covers(self, check: str, now: datetime) -> bool:
        """Return whether this silence applies to ``check`` at ``now``."""
        return self.name in (check, ALL) and now < self.until


class SilenceStore:
    """The silences in ``<state_dir>/silences.json``.

    Reading is cheap and safe from any thread: the file is parsed again only
    when its inode, size or modification time changed. A damaged file counts
    as no silences (logged once as an ERROR); the next write moves it aside
    as ``silences.json.corrupt-<time>`` and starts a fresh one.
    """

    def __init__(
        self, state_dir: Path, clock: Clock = lambda: datetime.now(UTC)
    ) -> None:
        """Point the store at ``state_dir``; nothing is read or created yet.

        :param clock: returns the current timezone-aware time; used to stamp
            new silences and drop ended ones.
        """
        self.path = state_dir / SILENCES_FILE
        self._clock = clock
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._silences: dict[str, Silence] = {}
        self.set_aside: Path | None = None
        """Where the last write moved a damaged file, if it did."""
        self.damage: str | None = None
        """Why the file could not be read at the last read; ``None`` if it could."""

    def refresh(self) -> bool:
        """Read the file again if it changed since the last read.

        :returns: whether it was read again.
        """
        with self._lock:
            return self._refresh(force=False)

    def is_silenced(self, name: str, now: datetime) -> bool:
        """Return whether check ``name`` is silenced at ``now``."""
        return self.silence_for(name, now) is not None

    def silence_for(self, name: str, now: datetime) -> Silence | None:
        """Return the silence covering check ``name`` at ``now`` (the longest)."""
        with self._lock:
            self._refresh(force=False)
            covering = [s for s in self._silences.values() if s.covers(name, now)]
        return max(covering, key=lambda silence: silence.until, default=None)

    def list(self, now: datetime | None = None) -> builtins.list[Silence]:
        """Return the silences still running at ``now`` (default: the clock).

        :returns: the silences sorted by name.
        """
        moment = now or self._clock()
        with self._lock:
            self._refresh(force=False)
            running = [s for s in self._silences.values() if moment < s.until]
        return sorted(running, key=lambda silence: silence.name)

    def add(self, name: str, until: datetime, reason: str = "") -> Silence:
        """Silence ``name`` (a check, or ``all``) until ``until``.

        Replaces a silence of the same name. Control characters in ``reason``
        become spaces and it is cut at :data:`REASON_MAX` characters.

        :returns: the silence as stored.
        :raises ValueError: when ``until`` is naive or not in the future.
        :raises OSError: when the state folder cannot be written.
        """
        now = self._clock()
        if until.tzinfo is None:
            msg = "until must be timezone-aware"
            raise ValueError(msg)
        if until <= now:
            msg = "a silence must end in the future"
            raise ValueError(msg)
        cleaned = _CONTROL.sub(" ", reason).strip()[:REASON_MAX]
        silence = Silence(name, until, cleaned, now)
        with self._changing(now) as silences:
            silences[name] = silence
        log.info("silence on %r until %s", name, until.isoformat())
        return silence

    def clear(self, name: str) -> Silence | None:
        """End the silence on ``name`` now.

        :returns: the silence removed, or ``None`` if there was none running.
        :raises OSError: when the state folder cannot be written.
        """
        now = self._clock()
        with self._changing(now) as silences:
            removed = silences.pop(name, None)
        if removed is not None and removed.until > now:
            log.info("silence on %r cleared", name)
            return removed
        return None

    @contextmanager
    def _changing(self, now: datetime) -> Iterator[dict[str, Silence]]:
        """Yield the silences to change, under the lock file, then save them."""
        make_folder(self.path.parent, 0o777)
        lock_path = self.path.with_name(f"{SILENCES_FILE}.lock")
        lock_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        with (
            self._lock,
            os.fdopen(open_owned(lock_path, lock_flags, 0o644), "a") as lock_file,
        ):
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            self._refresh(force=True, move_damaged=True)
            silences = {
                name: silence
                for name, silence in self._silences.items()
                if now < silence.until
            }
            yield silences

            document = {
                "version": SILENCES_VERSION,
                "silences": [_silence_to_json(s) for s in silences.values()],
            }
            data = (json.dumps(document, indent=1) + "\n").encode("utf-8")
            write_atomic(self.path, data, mode=0o644)
            self._silences = silences
            self._signature = _signature_of(self.path)

    def _refresh(self, *, force: bool, move_damaged: bool = False) -> bool:
        signature = _signature_of(self.path)
        if not force and signature == self._signature:
            return False
        self._signature = signature
        self.damage = None
        if signature is None:
            self._silences = {}
            return True
        try:
            self._silences = _parse(self.path.read_bytes())
        except (OSError, ValueError) as exc:
            self._silences = {}
            self.damage = str(exc)
            if move_damaged and not isinstance(exc, OSError):
                self.set_aside = move_aside(self.path)
                log.error(
                    "silences %s are damaged (%s); moved to %s, starting afresh",
                    self.path,
                    exc,
                    self.set_aside.name,
                )
            else:
                log.error(
                    "silences %s cannot be read (%s); no check counts as silenced",
                    self.path,
                    exc,
                )
        else:
            log.debug("silences %s read: %d", self.path, len(self._silences))
        return True


def _signature_of(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)  # noqa: PTH116 - one call gives inode, size and time
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _silence_to_json(silence: Silence) -> dict[str, Any]:
    return {
        "name": silence.name,
        "until": silence.until.isoformat(),
        "reason": silence.reason,
        "created": silence.created.isoformat(),
    }


def _parse(data: bytes) -> dict[str, Silence]:
    """Return the silences in the file's bytes, by name.

    :raises ValueError: when the content is not a silences file.
    """
    document = json.loads(data)
    if not isinstance(document, dict) or document.get("version") != SILENCES_VERSION:
        msg = f"not a silences file of version {SILENCES_VERSION}"
        raise ValueError(msg)
    entries = document.get("silences")
    if not isinstance(entries, list):
        msg = "'silences' is not a list"
        raise ValueError(msg)
    silences: dict[str, Silence] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            msg = f"{entry!r} is not a silence"
            raise ValueError(msg)
        silence = Silence(
            name=_text(entry, "name"),
            until=_moment(_text(entry, "until")),
            reason=_text(entry, "reason"),
            created=_moment(_text(entry, "created")),
        )
        silences[silence.name] = silence
    return silences


def _text(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        msg = f"silence {key} {value!r} is not text"
        raise ValueError(msg)
    return value


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        msg = f"{text!r} has no time zone"
        raise ValueError(msg)
    return moment
