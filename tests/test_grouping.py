"""Grouping events into batches: windows, storms, the hourly cap, the journal."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifier.checks.base import Result, Status
from notifier.config import CheckCommon, CheckSpec, MailSettings
from notifier.events import AlertEvent, EventKind
from notifier.grouping import Batch, Grouper, event_from_json, event_to_json
from notifier.state import advance

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand, as the grouper's window needs."""

    def __init__(self, start=T0):
        self.now = start

    def __call__(self):
        return self.now

    def forward(self, seconds):
        self.now += timedelta(seconds=seconds)
        return self.now


def event(check="root-disk", recipients=("ops@x.org",), status=Status.CRITICAL, at=T0):
    return AlertEvent(
        kind=EventKind.PROBLEM,
        check=check,
        check_type="disk",
        host="web-1",
        status=status,
        previous_status=None,
        summary=f"{check} is bad",
        since=at,
        at=at,
        metrics={"used_percent": 93.5},
        value=93.5,
        thresholds={"critical": 90.0},
        evidence=("line one", "line two"),
        attachments=(Path("/var/log/syslog"),),
        recipients=recipients,
    )


def checks_of(batches):
    return sorted(e.check for batch in batches for e in batch.events)


def test_events_within_the_window_become_one_batch():
    clock = Clock()
    grouper = Grouper(10, 0, clock)
    grouper.add(event("a"))
    clock.forward(4)
    grouper.add(event("b"))
    assert grouper.due(clock.forward(5)) == []

    (batch,) = grouper.due(clock.forward(1))
    assert [e.check for e in batch.events] == ["a", "b"]
    assert batch.recipients == ("ops@x.org",)
    assert batch.notes == ()
    assert grouper.pending() == 0
    assert grouper.due(clock.forward(60)) == []


def test_an_event_after_the_window_starts_a_new_batch():
    clock = Clock()
    grouper = Grouper(10, 0, clock)
    grouper.add(event("a"))
    first = grouper.due(clock.forward(10))
    grouper.add(event("b"))
    second = grouper.due(clock.forward(10))
    assert checks_of(first) == ["a"]
    assert checks_of(second) == ["b"]


def test_different_recipients_get_different_batches():
    clock = Clock()
    grouper = Grouper(10, 0, clock)
    grouper.add(event("a", ("ops@x.org",)))
    grouper.add(event("b", ("db@x.org",)))
    grouper.add(event("c", ("ops@x.org",)))
    # The same people in another order are the same recipients.
    grouper.add(event("d", ("pager@x.org", "ops@x.org")))
    grouper.add(event("e", ("ops@x.org", "pager@x.org")))
    batches = grouper.due(clock.forward(10))
    by_recipients = {b.recipients: [e.check for e in b.events] for b in batches}
    assert by_recipients == {
        ("ops@x.org",): ["a", "c"],
        ("db@x.org",): ["b"],
        ("ops@x.org", "pager@x.org"): ["d", "e"],
    }


def test_group_wait_zero_sends_at_the_next_due():
    clock = Clock()
    grouper = Grouper(0, 0, clock)
    grouper.add(event("a"))
    assert checks_of(grouper.due(clock())) == ["a"]


def test_storm_of_500_checks_from_the_state_machine_is_a_handful_of_batches():
    # Real events from the state machine, routed by severity: 500 checks
    # tripping in the same run, some WARNING, most CRITICAL, a few UNKNOWN.
    mail = MailSettings(
        to=("ops@x.org",), to_warning=("day@x.org",), to_critical=("pager@x.org",)
    )
    clock = Clock()
    grouper = Grouper(10, 30, clock)
    statuses = [Status.WARNING, Status.CRITICAL, Status.CRITICAL, Status.UNKNOWN]
    for number in range(500):
        spec = CheckSpec(f"check-{number}", "disk", CheckCommon(), {}, number)
        status = statuses[number % len(statuses)]
        _, events = advance(
            None, Result(status, "bad"), clock(), spec, host="web-1", mail=mail
        )
        for item in events:
            grouper.add(item)
        clock.forward(0.01)

    batches = grouper.due(clock.forward(10))
    assert len(batches) == 2
    assert sum(len(b.events) for b in batches) == 500
    assert {b.recipients for b in batches} == {
        ("day@x.org", "ops@x.org"),
        ("ops@x.org", "pager@x.org"),
    }
    assert grouper.pending() == 0


def test_cap_holds_batches_back_and_releases_them_with_a_note(caplog):
    clock = Clock()
    grouper = Grouper(10, 2, clock)
    sent = []

    # Five waves a few minutes apart: only two batches fit in the hour.
    with caplog.at_level(logging.WARNING, logger="notifier.grouping"):
        for wave in range(5):
            grouper.add(event(f"wave-{wave}"))
            sent.extend(grouper.due(clock.forward(10)))
            clock.forward(300)
    assert [checks_of([b]) for b in sent] == [["wave-0"], ["wave-1"]]
    assert grouper.pending() == 3
    assert "held back" in caplog.text

    # Nothing more until the hour since the first batch has passed...
    assert grouper.due(clock.forward(60)) == []
    # ...then the held alerts go out together, saying why they are late.
    released = grouper.due(T0 + timedelta(seconds=10) + timedelta(hours=1))
    (batch,) = released
    assert [e.check for e in batch.events] == ["wave-2", "wave-3", "wave-4"]
    (note,) = batch.notes
    assert note.startswith("3 alert(s) in this message were held back for about ")
    assert "max_per_hour = 2" in note
    assert "none were dropped" in note
    assert grouper.pending() == 0


def test_cap_never_drops_anything_in_a_long_storm():
    clock = Clock()
    grouper = Grouper(10, 3, clock)
    added = 0
    delivered = []  # (when handed out, batch)
    for minute in range(240):
        for number in range(5):
            grouper.add(event(f"m{minute}-{number}", (f"team{number % 4}@x.org",)))
            added += 1
        now = clock.forward(60)
        delivered.extend((now, batch) for batch in grouper.due(now))
    # Let the backlog drain: it takes a few hours at three messages an hour.
    for _ in range(10):
        now = clock.forward(3600)
        delivered.extend((now, batch) for batch in grouper.due(now))

    checks = [e.check for _, batch in delivered for e in batch.events]
    assert len(checks) == len(set(checks)) == added
    assert grouper.pending() == 0
    for when, _ in delivered:
        in_hour = [t for t, _ in delivered if when - timedelta(hours=1) < t <= when]
        assert len(in_hour) <= 3


def test_cap_counts_batches_in_a_rolling_hour():
    clock = Clock()
    grouper = Grouper(0, 2, clock)
    handed_out = []
    for _ in range(12):
        grouper.add(event())
        handed_out.append([len(b.events) for b in grouper.due(clock())])
        clock.forward(600)
    # Two batches at 0:00 and 0:10; the events of 0:20 to 1:00 wait together
    # and go out at 1:00, when the 0:00 batch leaves the hour; 1:10 fits
    # because the 0:10 one left too; then the hour is full again.
    assert handed_out == [[1], [1], [], [], [], [], [5], [1], [], [], [], []]


def test_drain_hands_out_everything_at_once_ignoring_window_and_cap():
    clock = Clock()
    grouper = Grouper(10, 1, clock)
    grouper.add(event("a", ("one@x.org",)))
    grouper.due(clock.forward(10))
    grouper.add(event("b", ("one@x.org",)))
    grouper.due(clock.forward(10))  # held back by the cap
    grouper.add(event("c", ("two@x.org",)))  # still in its window

    batches = grouper.drain()
    assert checks_of(batches) == ["b", "c"]
    held = next(b for b in batches if b.recipients == ("one@x.org",))
    assert held.notes
    assert grouper.pending() == 0


def test_unlimited_when_max_per_hour_is_zero():
    clock = Clock()
    grouper = Grouper(0, 0, clock)
    count = 0
    for _ in range(200):
        grouper.add(event())
        count += len(grouper.due(clock.forward(1)))
    assert count == 200


# --- the journal -------------------------------------------------------------


def test_waiting_events_survive_a_crash(tmp_path):
    journal = tmp_path / "group.journal"
    clock = Clock()
    grouper = Grouper(10, 0, clock, journal=journal)
    grouper.add(event("a"))
    grouper.add(event("b", ("db@x.org",)))
    del grouper  # killed: no drain, no commit

    clock.forward(3)
    restarted = Grouper(10, 0, clock, journal=journal)
    assert restarted.pending() == 2
    # The window still counts from when the events first arrived.
    assert restarted.due(clock.forward(6)) == []
    batches = restarted.due(clock.forward(1))
    assert checks_of(batches) == ["a", "b"]
    assert batches[0].events[0] == event("a")


def test_batches_leave_the_journal_only_when_committed(tmp_path):
    journal = tmp_path / "group.journal"
    clock = Clock()
    grouper = Grouper(10, 0, clock, journal=journal)
    grouper.add(event("a"))
    assert checks_of(grouper.due(clock.forward(10))) == ["a"]

    # Crash before the batch reached the outbox: it comes back (sent twice
    # at worst, never lost).
    assert Grouper(10, 0, clock, journal=journal).pending() == 1

    grouper.commit()
    assert Grouper(10, 0, clock, journal=journal).pending() == 0


def test_cap_and_held_events_survive_a_restart(tmp_path):
    journal = tmp_path / "group.journal"
    clock = Clock()
    grouper = Grouper(0, 1, clock, journal=journal)
    grouper.add(event("a"))
    assert len(grouper.due(clock())) == 1
    grouper.add(event("b"))
    assert grouper.due(clock.forward(60)) == []  # held back
    grouper.commit()

    restarted = Grouper(0, 1, clock, journal=journal)
    # The hour still holds the first batch, so b waits...
    assert restarted.due(clock.forward(60)) == []
    (batch,) = restarted.due(T0 + timedelta(hours=1))
    assert [e.check for e in batch.events] == ["b"]
    assert batch.notes  # ...and says it was held back


def test_torn_last_line_is_skipped_with_a_warning(tmp_path, caplog):
    journal = tmp_path / "group.journal"
    clock = Clock()
    grouper = Grouper(10, 0, clock, journal=journal)
    grouper.add(event("a"))
    with journal.open("a") as handle:
        handle.write('{"added": "2026-03-01T12:00:00+00:00", "event": {"ki')

    with caplog.at_level(logging.WARNING, logger="notifier.grouping"):
        restarted = Grouper(10, 0, clock, journal=journal)
    assert restarted.pending() == 1
    assert "1 damaged line(s) skipped" in caplog.text


def test_unreadable_journal_is_moved_aside(tmp_path, caplog):
    journal = tmp_path / "group.journal"
    journal.write_bytes(b"\xff\xfe\x00garbage")
    with caplog.at_level(logging.ERROR, logger="notifier.grouping"):
        grouper = Grouper(10, 0, Clock(), journal=journal)
    assert grouper.pending() == 0
    assert not journal.exists()
    assert len(list(tmp_path.glob("group.journal.corrupt-*"))) == 1
    assert str(journal) in caplog.text


def test_journal_write_failure_keeps_the_event_in_memory(tmp_path, caplog):
    # Stand-in for a full disk: the journal path is a folder, so the real
    # open() fails with a real OSError.
    journal = tmp_path / "group.journal"
    clock = Clock()
    grouper = Grouper(0, 0, clock, journal=journal)
    journal.mkdir()
    with caplog.at_level(logging.ERROR, logger="notifier.grouping"):
        grouper.add(event("a"))
    assert "cannot be written" in caplog.text
    assert checks_of(grouper.due(clock())) == ["a"]


def test_event_json_round_trip():
    original = event()
    assert event_from_json(json.loads(json.dumps(event_to_json(original)))) == original
    with pytest.raises(ValueError, match="not an alert event"):
        event_from_json({"kind": "PROBLEM"})


def test_batch_is_a_plain_value():
    batch = Batch(("a@x.org",), (event(),))
    assert batch.notes == ()


def test_clean_stop_drains_and_leaves_nothing_to_send_again(tmp_path):
    journal = tmp_path / "group.journal"
    clock = Clock()
    grouper = Grouper(10, 0, clock, journal=journal)
    grouper.add(event("a"))
    grouper.add(event("b", ("db@x.org",)))
    assert checks_of(grouper.drain()) == ["a", "b"]
    grouper.commit()
    assert Grouper(10, 0, clock, journal=journal).pending() == 0
