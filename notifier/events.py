"""Alert events: what the alert state decided is worth telling a person.

An event is the hand-over point between the checking side and the mail side:
the alert state produces events from results, the composer turns a group of
them into one email. Neither side knows more of the other than this.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from notifier.checks.base import Status


class EventKind(enum.StrEnum):
    """Why a message is sent."""

    PROBLEM = "PROBLEM"
    """The check went bad, or its severity changed while bad."""
    REMINDER = "REMINDER"
    """Still bad after ``repeat``."""
    RECOVERY = "RECOVERY"
    """OK again after a PROBLEM was sent."""
    FLAPPING = "FLAPPING"
    """Changing state too often; quiet until it settles."""
    SILENCE_ENDED = "SILENCE_ENDED"
    """A silence ran out while the problem persists."""


@dataclass(frozen=True)
class AlertEvent:
    """One thing to tell a person about one check.

    :param kind: why this is sent.
    :param check: the check's ``name``.
    :param check_type: the check's ``type``.
    :param host: the host name the alert is about.
    :param status: the status now.
    :param previous_status: the status before this event (``None`` for the
        first one of an incident).
    :param summary: the check's one-line summary.
    :param since: when the current state began (timezone-aware).
    :param at: when the event was decided (timezone-aware).
    :param metrics: the numbers of the last result.
    :param value: the number compared with the thresholds, if any.
    :param thresholds: the limits in force by name (``warning``,
        ``critical``), for the body's "value against thresholds" line.
    :param evidence: lines that help a person act.
    :param attachments: files whose tails go with the alert (the check's
        ``attach`` option and what the result offered).
    :param recipients: who gets it; empty means ``[mail] to``.
    """

    kind: EventKind
    check: str
    check_type: str
    host: str
    status: Status
    previous_status: Status | None
    summary: str
    since: datetime
    at: datetime
    metrics: Mapping[str, float] = field(default_factory=dict)
    value: float | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)
    evidence: tuple[str, ...] = ()
    attachments: tuple[Path, ...] = ()
    recipients: tuple[str, ...] = ()
