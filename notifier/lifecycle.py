"""The alert lifecycle: per-check state machine from results to alert events.

:func:`advance` is the whole state machine, a pure function of the previous
:class:`AlertState`, one :class:`~notifier.checks.base.Result`, the time and
the check's options; it returns the next state and the events worth telling
a person. It keeps two things apart:

- the truth: is an incident open (``firing``) and how bad it is
  (``alert_status``), decided by ``for``/``within`` and hysteresis;
- what the recipients were told (``notified_status``, ``notified_at``).

A message goes out when the two differ (a new incident, a severity change, a
recovery) or a reminder is due. While a silence or flapping keeps the check
quiet, the truth still advances and nothing is told; when the quiet ends, the
first message reconciles the two (SILENCE_ENDED, or the PROBLEM/RECOVERY a
settled flap comes to). At most one event comes out of one result.

Rules in detail:

- ``for = N`` opens an incident after N consecutive non-OK results;
  ``for = "5m"`` once the check has been non-OK for that long; ``within =
  "N of M"`` (which replaces ``for``) once N of the last M results were
  non-OK. UNKNOWN counts as non-OK: we are blind.
- With ``for`` the incident closes at the first OK result; with ``within``
  after M - N + 1 OK results in a row (then N non-OK results can no longer
  be among the last M), so a fault that comes and goes does not alternate
  PROBLEM and RECOVERY.
- Hysteresis: once the status is WARNING or CRITICAL, an OK result whose
  ``value`` has not crossed ``clear_below`` (strictly below) and
  ``clear_above`` (strictly above) keeps the previous status. With both set,
  the value must be inside the band between them. A result without a value,
  or after an UNKNOWN, is taken as it says.
- Severity changes while firing (WARNING, CRITICAL, UNKNOWN, either way) give
  a PROBLEM whose ``previous_status`` is the status told before; it goes to
  the recipients of both statuses.
- A REMINDER goes out when the status is unchanged and non-OK and ``repeat``
  has passed since the last message; ``repeat = 0`` means once per incident.
- Flapping: when the status changed at least ``flap_changes`` times within the
  last ``flap_window`` results, one FLAPPING message goes out and the check is
  quiet. It is *stable* again once its last ``flap_window`` results all had
  the same status; then one message says where it settled: PROBLEM if an
  incident is open, RECOVERY if not (when ``recovery`` is on); if a silence
  covers that moment, that message comes when the silence ends. If the
  FLAPPING message itself was held back by a silence, the ordinary rules
  apply instead.
- Silences (``silenced=True``): nothing is sent, the state still advances.
  On the first result after the silence, a problem that persisted through it
  gives SILENCE_ENDED; one that ended during it gives the RECOVERY the
  recipients are owed.

The state is a frozen value; :class:`notifier.state.AlertStore` keeps it on
disk between runs of the daemon. Import these names from :mod:`notifier.state`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from notifier.checks.base import Result, Status, worst
from notifier.config import CheckCommon, CheckSpec, MailSettings
from notifier.events import AlertEvent, EventKind


@dataclass(frozen=True)
class AlertState:
    """Everything the state machine remembers about one check.

    :param status: the effective status of the last result (after hysteresis).
    :param since: when ``status`` began; ``None`` before the first result.
    :param firing: an incident is open.
    :param alert_status: the status of the open incident (its latest non-OK
        status); ``None`` when not firing.
    :param notified_at: when the recipients last got a message about this
        check (not counting suppressed ones).
    :param notified_status: the status the recipients were last told, or
        ``None`` when they believe all is well.
    :param notified_kind: the kind of the last message sent.
    :param told: every status the recipients were told during the current
        incident; a RECOVERY goes to all their recipients.
    :param history: the last effective statuses, oldest first, bounded by the
        longest window the options need.
    :param bad_count: non-OK results in a row.
    :param first_bad: when the current run of non-OK results began.
    :param flapping: the check is flapping and kept quiet.
    :param silenced: the last result came during a silence, or a silence
        ended while the check was flapping and that is still to be told.
    """

    status: Status = Status.OK
    since: datetime | None = None
    firing: bool = False
    alert_status: Status | None = None
    notified_at: datetime | None = None
    notified_status: Status | None = None
    notified_kind: EventKind | None = None
    told: tuple[Status, ...] = ()
    history: tuple[Status, ...] = ()
    bad_count: int = 0
    first_bad: datetime | None = None
    flapping: bool = False
    silenced: bool = False


@dataclass(frozen=True)
class _Notice:
    """An event decided, before it is dressed with the check's details."""

    kind: EventKind
    status: Status
    previous_status: Status | None
    route: tuple[Status, ...]


def recipients_for(
    event_status: Status, common: CheckCommon, mail: MailSettings
) -> tuple[str, ...]:
    """Return who gets an event of ``event_status`` about a check.

    The check's ``to`` if set, else ``[mail] to``; plus ``[mail] to_warning``
    for WARNING and ``[mail] to_critical`` for CRITICAL and UNKNOWN. Order is
    kept and duplicates removed. For a RECOVERY, pass each status the
    recipients were told during the incident (see :func:`advance`).

    :param event_status: the status the event is about.
    :param common: the check's common options.
    :param mail: the ``[mail]`` table.
    :returns: the addresses, possibly empty when nothing is configured.
    """
    addresses = list(common.to or mail.to)
    if event_status is Status.WARNING:
        addresses.extend(mail.to_warning)
    elif event_status in (Status.CRITICAL, Status.UNKNOWN):
        addresses.extend(mail.to_critical)
    return tuple(dict.fromkeys(addresses))


def _recipients_for_all(
    statuses: Iterable[Status], common: CheckCommon, mail: MailSettings
) -> tuple[str, ...]:
    addresses: list[str] = []
    for status in statuses:
        addresses.extend(recipients_for(status, common, mail))
    return tuple(dict.fromkeys(addresses))


def advance(
    previous: AlertState | None,
    result: Result,
    now: datetime,
    spec: CheckSpec,
    *,
    host: str,
    mail: MailSettings,
    silenced: bool = False,
) -> tuple[AlertState, list[AlertEvent]]:
    """Return the state after ``result`` and the events it gives (at most one).

    Pure: no clock, no files; the caller persists the state and hands the
    events to the grouper. The module docstring states the rules.

    :param previous: the state after the last result; ``None`` for a check
        never seen before.
    :param result: the result of this run.
    :param now: when the result was taken; must be timezone-aware.
    :param spec: the check (name, type, and its common options).
    :param host: the host name the events are about.
    :param mail: the ``[mail]`` table, for routing.
    :param silenced: a silence covers this check now; the state advances but
        no event comes out.
    :returns: the new state and the events to send.
    :raises ValueError: when ``now`` is naive.
    """
    if now.tzinfo is None:
        msg = "now must be timezone-aware"
        raise ValueError(msg)
    before = previous or AlertState()
    common = spec.common

    status, held = _effective_status(before, result, common)
    state = _record(before, status, now, common)
    state = _update_incident(before, state, now, common)
    notice = _decide(before, state, now, common, silenced=silenced)
    # A silence that ends while the check flaps is reconciled once it settles.
    state = replace(state, silenced=silenced or (before.silenced and state.flapping))
    if notice is None:
        return state, []

    state = _after_notice(state, notice, now)
    event = _dress(notice, state, result, now, spec, host, mail, held)
    return state, [event]


def _effective_status(
    before: AlertState, result: Result, common: CheckCommon
) -> tuple[Status, bool]:
    """Return the status after hysteresis, and whether it was held."""
    # Only a status that came from comparing a value is held by a value;
    # an UNKNOWN run said nothing about it.
    value_bad = before.status in (Status.WARNING, Status.CRITICAL)
    if result.status is not Status.OK or not value_bad or result.value is None:
        return result.status, False
    if common.clear_below is None and common.clear_above is None:
        return result.status, False
    cleared = (common.clear_below is None or result.value < common.clear_below) and (
        common.clear_above is None or result.value > common.clear_above
    )
    if cleared:
        return Status.OK, False
    return before.status, True


def _history_length(common: CheckCommon) -> int:
    window = common.within[1] if common.within else 1
    return max(common.flap_window, window, 1)


def _record(
    before: AlertState, status: Status, now: datetime, common: CheckCommon
) -> AlertState:
    """Return ``before`` with this status appended and the counters moved on."""
    bad = status is not Status.OK
    changed = before.since is None or status is not before.status
    history = (*before.history, status)[-_history_length(common) :]
    was_bad = before.bad_count > 0
    return replace(
        before,
        status=status,
        since=now if changed else before.since,
        history=history,
        bad_count=before.bad_count + 1 if bad else 0,
        first_bad=(before.first_bad if was_bad else now) if bad else None,
    )


def _condition_met(state: AlertState, now: datetime, common: CheckCommon) -> bool:
    """Return whether ``for``/``within`` say an incident should be open."""
    if common.within is not None:
        needed, window = common.within
        bad = sum(status is not Status.OK for status in state.history[-window:])
        return bad >= needed
    if state.status is Status.OK or state.first_bad is None:
        return False
    if common.for_.seconds > 0:
        return (now - state.first_bad).total_seconds() >= common.for_.seconds
    return state.bad_count >= common.for_.runs


def _update_incident(
    before: AlertState, state: AlertState, now: datetime, common: CheckCommon
) -> AlertState:
    """Open, update or close the incident and the flapping flag (the truth)."""
    bad = state.status is not Status.OK
    met = _condition_met(state, now, common)
    firing = _stays_open(state, common) if before.firing else bad and met
    alert_status = (state.status if bad else before.alert_status) if firing else None
    flapping = _flapping(before, state, common)
    state = replace(state, firing=firing, alert_status=alert_status, flapping=flapping)

    # Without recovery messages nothing is owed once it is over: the next
    # incident starts from "all is well".
    if not firing and not flapping and not common.recovery:
        state = replace(state, notified_status=None, notified_kind=None, told=())
    return state


def _stays_open(state: AlertState, common: CheckCommon) -> bool:
    """Return whether an open incident goes on after this result.

    With ``for`` it ends at the first OK result. With ``within = N of M`` it
    ends after M - N + 1 OK results in a row: the fewest after which N
    non-OK results can no longer be among the last M, so a fault that comes
    and goes does not alternate PROBLEM and RECOVERY.
    """
    if state.status is not Status.OK:
        return True
    if common.within is None:
        return False
    needed, window = common.within
    calm = window - needed + 1
    recent = state.history[-calm:]
    return len(recent) < calm or any(status is not Status.OK for status in recent)


def _changes(history: tuple[Status, ...]) -> int:
    return sum(a is not b for a, b in itertools.pairwise(history))


def _flapping(before: AlertState, state: AlertState, common: CheckCommon) -> bool:
    window = state.history[-common.flap_window :]
    if before.flapping:
        stable = len(window) >= common.flap_window and len(set(window)) == 1
        return not (stable or common.flap_changes == 0)
    return common.flap_changes > 0 and _changes(window) >= common.flap_changes


def _decide(
    before: AlertState,
    state: AlertState,
    now: datetime,
    common: CheckCommon,
    *,
    silenced: bool,
) -> _Notice | None:
    """Return the one message this result calls for, if any."""
    if silenced:
        return None

    # Entering flapping: one FLAPPING, routed to every non-OK status seen.
    if state.flapping and not before.flapping:
        window = state.history[-common.flap_window :]
        seen = tuple(dict.fromkeys(s for s in window if s is not Status.OK))
        return _Notice(EventKind.FLAPPING, state.status, before.status, seen)
    if state.flapping:
        return None

    # After a FLAPPING message the next one says where it settled, even when
    # it settled during a silence; a silence that ended reconciles too.
    current = state.alert_status
    told = state.notified_status
    if state.notified_kind is EventKind.FLAPPING and current is not None:
        route = (current,) if told is None else (current, told)
        return _Notice(EventKind.PROBLEM, current, told, route)
    if before.silenced and before.firing and current is not None:
        return _Notice(EventKind.SILENCE_ENDED, current, told, (current,))
    return _ordinary(state, now, common)


def _ordinary(state: AlertState, now: datetime, common: CheckCommon) -> _Notice | None:
    """Compare the truth with what the recipients were told."""
    told = state.notified_status
    current = state.alert_status
    if current is None:
        if told is None or not common.recovery:
            return None
        return _Notice(EventKind.RECOVERY, Status.OK, told, state.told or (told,))

    if told is None:
        return _Notice(EventKind.PROBLEM, current, None, (current,))
    if current is not told:
        return _Notice(EventKind.PROBLEM, current, told, (current, told))
    if (
        common.repeat > 0
        and state.status is current
        and state.notified_at is not None
        and (now - state.notified_at).total_seconds() >= common.repeat
    ):
        return _Notice(EventKind.REMINDER, current, current, (current,))
    return None


def _after_notice(state: AlertState, notice: _Notice, now: datetime) -> AlertState:
    """Return ``state`` updated with what the recipients now know."""
    if notice.kind is EventKind.RECOVERY:
        return replace(
            state,
            notified_at=now,
            notified_status=None,
            notified_kind=notice.kind,
            told=(),
        )
    flapping = notice.kind is EventKind.FLAPPING
    return replace(
        state,
        notified_at=now,
        notified_status=worst(notice.route) if flapping else notice.status,
        notified_kind=notice.kind,
        told=tuple(dict.fromkeys((*state.told, *notice.route))),
    )


def _dress(
    notice: _Notice,
    state: AlertState,
    result: Result,
    now: datetime,
    spec: CheckSpec,
    host: str,
    mail: MailSettings,
    held: bool,
) -> AlertEvent:
    """Return the event with the check's details and its recipients."""
    summary = result.summary
    if held:
        summary = f"{summary} (still {state.status.name}: {_clear_hint(spec.common)})"
    thresholds = {
        key: float(value)
        for key, value in spec.options.items()
        if key in ("warning", "critical")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    }
    attachments = tuple(dict.fromkeys((*spec.common.attach, *result.attachments)))
    return AlertEvent(
        kind=notice.kind,
        check=spec.name,
        check_type=spec.type,
        host=host,
        status=notice.status,
        previous_status=notice.previous_status,
        summary=summary,
        since=state.since or now,
        at=now,
        metrics=dict(result.metrics),
        value=result.value,
        thresholds=thresholds,
        evidence=result.evidence,
        attachments=attachments,
        recipients=_recipients_for_all(notice.route, spec.common, mail),
    )


def _clear_hint(common: CheckCommon) -> str:
    parts = []
    if common.clear_below is not None:
        parts.append(f"clears below {common.clear_below:g}")
    if common.clear_above is not None:
        parts.append(f"clears above {common.clear_above:g}")
    return " and ".join(parts)
