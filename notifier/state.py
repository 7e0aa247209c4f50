"""Alert state: the per-check lifecycle and its storage, so a restart neither
repeats nor forgets.

The state machine itself lives in :mod:`notifier.lifecycle` and is
re-exported here (:class:`AlertState`, :func:`advance`,
:func:`recipients_for`), so the daemon needs only this module. This module
adds :class:`AlertStore`: one JSON file per check,
``<state_dir>/alerts/<check>.json``, replaced atomically. After a restart the
daemon continues from the saved state: a firing alert is not announced again,
and the first result after the restart is compared with the state before it,
so a change that happened while the daemon was stopped (say it recovered) is
reported, not swallowed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from notifier.atomicfile import make_folder, move_aside, write_atomic
from notifier.checks.base import Status
from notifier.config import CHECK_NAME
from notifier.events import EventKind
from notifier.lifecycle import AlertState, advance, recipients_for

__all__ = [
    "AlertState",
    "AlertStore",
    "advance",
    "read_alert_states",
    "recipients_for",
    "state_from_json",
    "state_to_json",
]

log = logging.getLogger(__name__)

STATE_VERSION: Final = 1
ALERTS_FOLDER: Final = "alerts"
ParsedT = TypeVar("ParsedT")


def state_to_json(state: AlertState) -> dict[str, Any]:
    """Return ``state`` as a JSON-ready mapping (the on-disk form)."""

    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    def name(status: Status | None) -> str | None:
        return status.name if status is not None else None

    return {
        "version": STATE_VERSION,
        "status": state.status.name,
        "since": when(state.since),
        "firing": state.firing,
        "alert_status": name(state.alert_status),
        "notified_at": when(state.notified_at),
        "notified_status": name(state.notified_status),
        "notified_kind": kind.value if (kind := state.notified_kind) else None,
        "told": [status.name for status in state.told],
        "history": [status.name for status in state.history],
        "bad_count": state.bad_count,
        "first_bad": when(state.first_bad),
        "flapping": state.flapping,
        "silenced": state.silenced,
    }


def state_from_json(data: object) -> AlertState:
    """Return the state held in ``data`` (as written by :func:`state_to_json`).

    :raises ValueError: when ``data`` is not a valid state of this version.
    """
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        msg = f"not an alert state of version {STATE_VERSION}"
        raise ValueError(msg)
    try:
        state = AlertState(
            status=Status[data["status"]],
            since=_optional(data["since"], _aware),
            firing=_flag(data["firing"]),
            alert_status=_optional(data["alert_status"], Status.__getitem__),
            notified_at=_optional(data["notified_at"], _aware),
            notified_status=_optional(data["notified_status"], Status.__getitem__),
            notified_kind=_optional(data["notified_kind"], EventKind),
            told=tuple(Status[item] for item in data["told"]),
            history=tuple(Status[item] for item in data["history"]),
            bad_count=_count(data["bad_count"]),
            first_bad=_optional(data["first_bad"], _aware),
            flapping=_flag(data["flapping"]),
            silenced=_flag(data["silenced"]),
        )
    except (KeyError, TypeError) as exc:
        msg = f"missing or wrong field: {exc}"
        raise ValueError(msg) from exc
    if state.firing and state.alert_status is None:
        msg = "firing without a status"
        raise ValueError(msg)
    return state


def _optional(value: object, parse: Callable[[str], ParsedT]) -> ParsedT | None:
    """Return ``parse(value)`` for a string, ``None`` for ``None``."""
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"{value!r} is not text"
        raise TypeError(msg)
    return parse(value)


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        msg = f"{text!r} has no time zone"
        raise ValueError(msg)
    return moment


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        msg = f"{value!r} is not true or false"
        raise TypeError(msg)
    return value


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        msg = f"{value!r} is not a count"
        raise TypeError(msg)
    return value


class AlertStore:
    """Every check's :class:`AlertState`, kept in memory and on disk.

    One file per check, ``<state_dir>/alerts/<check>.json``, replaced
    atomically, and only when the state really changed (an OK check that
    stays OK writes nothing). Safe to use from several threads. A file that
    cannot be parsed is logged as an ERROR, moved aside as
    ``<check>.json.corrupt-<time>`` and the check starts afresh; a state that
    cannot be written is logged and kept in memory. Neither stops the daemon.
    """

    def __init__(self, state_dir: Path) -> None:
        """Load every saved state from ``state_dir/alerts``, creating it if needed.

        :raises OSError: when the folder cannot be created.
        """
        self.folder = state_dir / ALERTS_FOLDER
        make_folder(self.folder, 0o777)
        self._lock = threading.Lock()
        self._states: dict[str, AlertState] = {}
        self._unsaved: set[str] = set()
        self._load()

    def _load(self) -> None:
        for stale in self.folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        for path in sorted(self.folder.glob("*.json")):
            state = _read_state(path, move_corrupt=True)
            if state is not None:
                self._states[path.stem] = state
        log.debug("alert store %s: %d checks loaded", self.folder, len(self._states))

    def get(self, name: str) -> AlertState | None:
        """Return the state of check ``name``, or ``None`` if never seen."""
        with self._lock:
            return self._states.get(name)

    def all(self) -> dict[str, AlertState]:
        """Return a copy of every check's state, by check name."""
        with self._lock:
            return dict(self._states)

    def put(self, name: str, state: AlertState) -> None:
        """Remember ``state`` for check ``name`` and save it if it changed.

        A failed write is logged as an ERROR (once until it works again) and
        the state is kept in memory, so alerting goes on.

        :raises ValueError: when ``name`` is not a valid check name.
        """
        if not CHECK_NAME.fullmatch(name):
            msg = f"{name!r} is not a valid check name"
            raise ValueError(msg)
        with self._lock:
            if self._states.get(name) == state and name not in self._unsaved:
                return
            self._states[name] = state

        path = self.folder / f"{name}.json"
        data = json.dumps(state_to_json(state), indent=1).encode("utf-8")
        try:
            write_atomic(path, data)
        except OSError as exc:
            with self._lock:
                first = name not in self._unsaved
                self._unsaved.add(name)
            if first:
                log.error(
                    "alert state %s cannot be saved (%s); kept in memory only",
                    path,
                    exc.strerror or exc,
                )
            return
        with self._lock:
            if name in self._unsaved:
                self._unsaved.discard(name)
                log.info("alert state %s saved again", path)

    def prune(self, names: Iterable[str]) -> list[str]:
        """Forget every check not in ``names`` (removed from the configuration).

        :returns: the names forgotten, sorted.
        """
        keep = set(names)
        with self._lock:
            gone = sorted(name for name in self._states if name not in keep)
            for name in gone:
                del self._states[name]
                self._unsaved.discard(name)
        for name in gone:
            try:
                (self.folder / f"{name}.json").unlink(missing_ok=True)
            except OSError as exc:
                log.warning("alert state of %r cannot be removed: %s", name, exc)
        if gone:
            log.info("alert state: forgot %d removed checks", len(gone))
        return gone


def read_alert_states(state_dir: Path) -> dict[str, AlertState]:
    """Return the saved states without changing anything (for ``notifier status``).

    Unreadable or damaged files are skipped with a WARNING, not moved.
    """
    folder = state_dir / ALERTS_FOLDER
    states: dict[str, AlertState] = {}
    for path in sorted(folder.glob("*.json")):
        state = _read_state(path, move_corrupt=False)
        if state is not None:
            states[path.stem] = state
    return states


def _read_state(path: Path, *, move_corrupt: bool) -> AlertState | None:
    try:
        return state_from_json(json.loads(path.read_bytes()))
    except OSError as exc:
        log.error("alert state %s cannot be read (%s); starting afresh", path, exc)
        return None
    except ValueError as exc:
        if not move_corrupt:
            log.warning("alert state %s is damaged (%s); skipped", path, exc)
            return None
        try:
            moved = move_aside(path)
        except OSError as move_error:
            log.error(
                "alert state %s is damaged (%s) and cannot be moved aside (%s); "
                "starting afresh",
                path,
                exc,
                move_error,
            )
            return None
        log.error(
            "alert state %s is damaged (%s); moved to %s, starting afresh",
            path,
            exc,
            moved.name,
        )
        return None
