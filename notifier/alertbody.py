"""The plain-text body of an alert email, paragraph by paragraph.

This module owns how alerts read on a phone: one section per alert (what,
where, since when, the value against the thresholds, the evidence, how to
silence it), the overview that opens a group, the one-line entries of a
storm, the list of attached files, and the line saying how many secrets were
masked and where. :mod:`notifier.compose` puts the pieces together and sets
the headers.

A message describes at most :data:`FULL_SECTIONS` alerts in full, worst
first (:func:`worst_first`); the others get one line each, at most
:data:`BRIEF_LIMIT` of them, so a storm of 500 alerts still makes an email a
person can read and a mail server takes.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Final

from notifier.attachments import printable
from notifier.events import AlertEvent, EventKind
from notifier.mailtext import (
    LINE_LIMIT,
    clean_header_value,
    format_time,
    shorten,
    wrap,
)
from notifier.redact import Redactor
from notifier.units import human_duration

FULL_SECTIONS: Final = 20
"""Alerts of one message described in full; the others get one line each."""
BRIEF_LIMIT: Final = 500
"""One-line entries after the full sections; past this they are only counted."""
SILENCE_FOR: Final = "2h"
_EVIDENCE_LINES: Final = 40
_EVIDENCE_CHARS: Final = 300
_PLACES_NAMED: Final = 6
_RULE: Final = "-" * 40


class MaskedTally:
    """Which different secrets were masked in a message, and where.

    Holds fingerprints (:meth:`notifier.redact.Redactor.redact_distinct`),
    never the secrets, so one secret quoted in the summary, the evidence and
    an attachment counts once.
    """

    def __init__(self) -> None:
        self._places: dict[str, set[str]] = {}

    def redact(self, redactor: Redactor, text: str, place: str) -> str:
        """Return ``text`` masked, noting what was masked under ``place``."""
        masked, found = redactor.redact_distinct(text)
        self.add(place, found)
        return masked

    def add(self, place: str, fingerprints: Iterable[str]) -> None:
        """Note secrets masked in ``place`` (``the evidence``, a file name)."""
        found = set(fingerprints)
        if found:
            self._places.setdefault(place, set()).update(found)

    def lines(self) -> list[str]:
        """Return the paragraph saying how many secrets were masked and where.

        ``2 secrets were masked: 2 in the summary, 1 in auth.log.`` counts
        different values, in all and per place; no secret, no paragraph.
        """
        if not self._places:
            return []
        total = len(set().union(*self._places.values()))
        verb = "secret was" if total == 1 else "secrets were"
        places = list(self._places.items())
        if len(places) == 1:
            return ["", *wrap(f"{total} {verb} masked in {places[0][0]}.")]
        named = [f"{len(found)} in {place}" for place, found in places]
        if len(named) > _PLACES_NAMED:
            rest = len(named) - _PLACES_NAMED + 1
            named = [*named[: _PLACES_NAMED - 1], f"and in {rest} more files"]
        return ["", *wrap(f"{total} {verb} masked: {', '.join(named)}.")]


def worst_first(events: Sequence[AlertEvent]) -> list[AlertEvent]:
    """Return ``events`` with the most severe first, recoveries last.

    Events as bad as each other keep their order.
    """
    return sorted(
        events,
        key=lambda event: (event.kind is EventKind.RECOVERY, -event.status.severity),
    )


def event_section(
    event: AlertEvent,
    summary: str,
    redactor: Redactor,
    tally: MaskedTally,
    now: datetime,
) -> list[str]:
    """Return the body lines about one event; its evidence is masked.

    :param event: the alert.
    :param summary: its summary, already masked and cleaned.
    :param redactor: masks the evidence lines.
    :param tally: notes the secrets masked in the evidence.
    :param now: when the message is composed.
    """
    check = clean_header_value(event.check)
    host = clean_header_value(event.host)
    lines = wrap(_headline(event, check, host))
    lines += wrap(summary)
    lines.append("")

    for_how_long = human_duration((now - event.since).total_seconds())
    lines.append(f"Since:  {format_time(event.since)} (for {for_how_long})")
    if event.value is not None:
        lines.append(f"Value:  {_value_text(event)}")
    if event.previous_status is not None and event.previous_status != event.status:
        lines.append(f"Before: {event.previous_status.name}")
    lines.append(f"Check:  {check} (type {clean_header_value(event.check_type)})")

    if event.evidence:
        lines += ["", "Evidence:"]
        for raw in event.evidence[:_EVIDENCE_LINES]:
            text = tally.redact(redactor, raw, "the evidence")
            lines.append("  " + shorten(printable(text), _EVIDENCE_CHARS))
        hidden = len(event.evidence) - _EVIDENCE_LINES
        if hidden > 0:
            lines.append(f"  ... and {hidden} more lines")

    if event.kind is not EventKind.RECOVERY:
        command = f"notifier silence {shlex.quote(check)} --for {SILENCE_FOR}"
        lines += ["", f"To silence it for {SILENCE_FOR}:", f"  {command}"]
    return lines


def group_overview(
    events: Sequence[AlertEvent], summaries: Sequence[str], host: str
) -> list[str]:
    """Return the paragraph opening a group's body.

    A group that is described in full lists every alert in one line; a
    larger one gives the counts and says where the rest are.
    """
    if len(events) > FULL_SECTIONS:
        counts = ", ".join(f"{count} {label}" for label, count in count_labels(events))
        brief = len(events) - FULL_SECTIONS
        lines = wrap(f"{len(events)} alerts on {host}: {counts}.")
        lines += wrap(
            f"The {FULL_SECTIONS} worst are described in full below; the other "
            f"{brief} are listed briefly after them, one line each."
        )
        return [*lines, "", _RULE, ""]

    lines = [f"{len(events)} alerts on {host}:"]
    for event, summary in zip(events, summaries, strict=True):
        check = clean_header_value(event.check)
        item = f"- {tally_label(event)} {check}: {summary}"
        lines += wrap(shorten(item, 160), indent="  ")
    return [*lines, "", _RULE, ""]


def brief_block(events: Sequence[AlertEvent], summaries: Sequence[str]) -> list[str]:
    """Return one line per alert not described in full, if there are any."""
    if not events:
        return []
    lines = ["", _RULE, "", f"The other {len(events)} alerts, listed briefly:"]
    for event, summary in zip(
        events[:BRIEF_LIMIT], summaries[:BRIEF_LIMIT], strict=True
    ):
        check = clean_header_value(event.check)
        lines.append(shorten(f"- {tally_label(event)} {check}: {summary}", LINE_LIMIT))
    hidden = len(events) - BRIEF_LIMIT
    if hidden > 0:
        lines += wrap(
            f"... and {hidden} more alerts, not listed here; `notifier status` "
            "on this host shows every check."
        )
    return lines


def count_labels(events: Iterable[AlertEvent]) -> list[tuple[str, int]]:
    """Return how many events there are of each label, worst label first."""
    counts: dict[str, int] = {}
    for event in events:
        label = tally_label(event)
        counts[label] = counts.get(label, 0) + 1
    order = ["CRITICAL", "WARNING", "UNKNOWN", "FLAPPING", "RECOVERED", "OK"]
    return sorted(counts.items(), key=lambda item: order.index(item[0]))


def tally_label(event: AlertEvent) -> str:
    """Return the word a group's subject and lists count this event under."""
    if event.kind is EventKind.RECOVERY:
        return "RECOVERED"
    if event.kind is EventKind.FLAPPING:
        return "FLAPPING"
    return event.status.name


def notes_block(notes: Sequence[str]) -> list[str]:
    """Return the delivery side's notes as the first paragraph, if any."""
    lines: list[str] = []
    for note in notes:
        lines += wrap(printable(note))
    return [*lines, ""] if lines else []


def attachment_block(notes: Sequence[str]) -> list[str]:
    """Return the paragraph listing each file and what became of it."""
    if not notes:
        return []
    lines = ["", "Files:"]
    for note in notes:
        lines += wrap(f"- {note}", indent="  ")
    return lines


def signature(hostname: str, now: datetime) -> list[str]:
    """Return the signature: who sent this and when."""
    return [
        "",
        "-- ",
        f"notifier on {clean_header_value(hostname)}, {format_time(now)}",
    ]


def _headline(event: AlertEvent, check: str, host: str) -> str:
    """Return the first line of an event's section: what and where."""
    status = event.status.name
    if event.kind is EventKind.RECOVERY:
        return f"RECOVERED: {check} on {host} is {status} again."
    if event.kind is EventKind.REMINDER:
        return f"Still {status}: {check} on {host} (reminder)."
    if event.kind is EventKind.FLAPPING:
        return (
            f"FLAPPING: {check} on {host} keeps changing state; "
            "no more alerts for it until it settles."
        )
    if event.kind is EventKind.SILENCE_ENDED:
        return f"Still {status}: {check} on {host}; its silence has ended."
    return f"{status}: {check} on {host}."


def _value_text(event: AlertEvent) -> str:
    """Return the value against the thresholds: ``91 (warning 80, critical 90)``."""
    text = f"{event.value:g}"
    limits = ", ".join(
        f"{printable(name)} {limit:g}" for name, limit in event.thresholds.items()
    )
    return f"{text} ({limits})" if limits else text
