"""What a check is: its result, its declared type, and what it is given to run.

This is the whole contract between the core and any check, built in or not.
Nothing here knows about scheduling, alerting or email.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from notifier.options import Option


class Status(enum.IntEnum):
    """A check's verdict; the values are the Nagios plugin exit statuses."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def severity(self) -> int:
        """Return how bad this is: OK < UNKNOWN < WARNING < CRITICAL.

        UNKNOWN ranks above OK (we are blind) but below a confirmed problem,
        so a CRITICAL is never hidden behind a broken check.
        """
        return _SEVERITY[self]


_SEVERITY: dict[Status, int] = {
    Status.OK: 0,
    Status.UNKNOWN: 1,
    Status.WARNING: 2,
    Status.CRITICAL: 3,
}


def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """Return the most severe of ``statuses`` (OK for none)."""
    return max(statuses, key=lambda status: status.severity, default=Status.OK)


@dataclass(frozen=True)
class Result:
    """What one run of a check found.

    :param status: the verdict.
    :param summary: one line a person understands at a glance, such as
        ``/ is 91% full (8.2GiB free of 98GiB)``.
    :param metrics: numbers measured, by name (``used_percent``); units go in
        the name.
    :param value: the number that was compared with the thresholds, if any;
        the alert state uses it for hysteresis (``clear_below``/``clear_above``).
    :param evidence: lines that help a person act (matched log lines, the top
        processes), most useful first.
    :param attachments: files worth attaching to the alert.
    """

    status: Status
    summary: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    value: float | None = None
    evidence: tuple[str, ...] = ()
    attachments: tuple[Path, ...] = ()

    @classmethod
    def unknown(cls, reason: str) -> Result:
        """Return an UNKNOWN result whose summary is ``reason``."""
        return cls(Status.UNKNOWN, reason)


@dataclass(frozen=True)
class CheckContext:
    """What a check is given when it is created.

    :param name: the ``name`` of the ``[[check]]`` entry.
    :param options: the check type's options, validated and with defaults
        filled in, keyed by option name.
    :param state_dir: a folder private to this check that survives restarts
        (offsets, previous samples); it exists when the check is created.
    :param hostname: the host name alerts are sent as.
    :param timeout: seconds after which the run is abandoned as UNKNOWN; a
        check that starts subprocesses should stop them by then.
    """

    name: str
    options: Mapping[str, Any]
    state_dir: Path
    hostname: str
    timeout: float


class Check(Protocol):
    """A configured check, created once and run on every tick.

    ``run`` is called from a worker thread, never twice at the same time for
    one check. It may keep state between runs on ``self`` (the CPU check keeps
    its previous sample) and in ``context.state_dir``. It may raise: the core
    turns an exception into an UNKNOWN result carrying the reason.
    """

    def run(self) -> Result:
        """Measure once and return the result."""
        ...


OptionProblem = tuple[str, str, str | None]
"""One problem a :attr:`CheckType.validate` found: key, message, hint."""


@dataclass(frozen=True)
class CheckType:
    """A kind of check that ``[[check]]`` entries can name in ``type``.

    :param name: the value of ``type`` (``disk``, ``logscan``).
    :param create: builds a :class:`Check` from its context; called once per
        configured entry, and again after a reload.
    :param options: the keys this type accepts besides the common ones.
    :param summary: one line for ``notifier plugins``.
    :param validate: optional; given an entry's options (validated against
        their declarations, defaults filled in, keyed by option name), returns
        the problems only this type can see, as ``(key, message, hint)``
        tuples (``hint`` may be ``None``). Called by ``notifier config
        check`` and every load of the configuration, so a mistake such as an
        unknown encoding is reported with file, check and key instead of when
        the check is created. It must not touch the system beyond looking
        things up (no files written, no programs run).
    :param hints: optional advice by key, added to any problem found with that
        key in this type's entries: for a mistake its users are likely to make
        (``attach = true`` in a ``logscan`` check, whose switch is
        ``attach_log``).
    :param common_defaults: this type's own defaults for options every check
        has, in their parsed form (seconds, ``bool``), by option name. They
        apply where neither the entry nor ``[defaults]`` sets the key: a log
        check, whose "OK" only means "no new matching lines", defaults to
        ``recovery = False``.
    """

    name: str
    create: Callable[[CheckContext], Check]
    options: tuple[Option, ...] = ()
    summary: str = ""
    validate: Callable[[Mapping[str, Any]], Sequence[OptionProblem]] | None = None
    hints: Mapping[str, str] = field(default_factory=dict, hash=False)
    common_defaults: Mapping[str, Any] = field(default_factory=dict, hash=False)


def threshold_status(
    value: float,
    warning: float | None,
    critical: float | None,
    *,
    higher_is_worse: bool = True,
) -> Status:
    """Return the status of ``value`` against optional thresholds.

    With ``higher_is_worse`` a value at or above a threshold trips it; without,
    a value at or below it does (free space, for instance).
    """

    def tripped(limit: float | None) -> bool:
        if limit is None:
            return False
        return value >= limit if higher_is_worse else value <= limit

    if tripped(critical):
        return Status.CRITICAL
    if tripped(warning):
        return Status.WARNING
    return Status.OK
