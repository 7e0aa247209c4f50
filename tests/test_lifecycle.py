"""The alert state machine: every transition, driven by an explicit clock."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.checks.base import Result, Status
from notifier.config import CheckCommon, CheckSpec, MailSettings
from notifier.events import EventKind
from notifier.options import RunsOrDuration
from notifier.state import (
    AlertState,
    advance,
    recipients_for,
    state_from_json,
    state_to_json,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MAIL = MailSettings(to=("ops@example.org",))
CODES = {"O": Status.OK, "W": Status.WARNING, "C": Status.CRITICAL, "U": Status.UNKNOWN}
P, R, M, F, S = (
    EventKind.PROBLEM,
    EventKind.REMINDER,
    EventKind.RECOVERY,
    EventKind.FLAPPING,
    EventKind.SILENCE_ENDED,
)
# The letters of the plans below.
O, W, C, U = Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN  # noqa: E741


def make_spec(name="root-disk", **common):
    common.setdefault("flap_changes", 0)
    return CheckSpec(
        name, "disk", CheckCommon(**common), {"warning": 80, "critical": 90.0}, 0
    )


def drive(codes, spec=None, *, every=60, state=None, start=T0, values=None):
    """Feed one result per letter, ``every`` seconds apart.

    Returns the final state and (index, kind, status, previous_status) per event.
    """
    spec = spec or make_spec()
    seen = []
    for index, code in enumerate(codes):
        value = values[index] if values else None
        result = Result(CODES[code], f"result {index}", value=value)
        now = start + timedelta(seconds=every * index)
        state, events = advance(state, result, now, spec, host="web-1", mail=MAIL)
        seen.extend((index, e.kind, e.status, e.previous_status) for e in events)
    return state, seen


# --- for, recovery, severity, UNKNOWN -------------------------------------


@pytest.mark.parametrize(
    ("codes", "common", "expected"),
    [
        # Default for = 1: the first bad result alerts, the first OK recovers.
        ("OWO", {}, [(1, P, W, None), (2, M, O, W)]),
        ("OOO", {}, []),
        # UNKNOWN alerts too: we are blind.
        ("UO", {}, [(0, P, U, None), (1, M, O, U)]),
        # Severity changes both ways give a PROBLEM naming the status before.
        ("WCWO", {}, [(0, P, W, None), (1, P, C, W), (2, P, W, C), (3, M, O, W)]),
        ("CUC", {}, [(0, P, C, None), (1, P, U, C), (2, P, C, U)]),
        # for = 3 runs: three bad in a row, not three in total.
        ("WWOWWWO", {"for_": RunsOrDuration(runs=3)}, [(5, P, W, None), (6, M, O, W)]),
        # Mixed severities count as one bad run; the PROBLEM has the latest.
        ("WCW", {"for_": RunsOrDuration(runs=3)}, [(2, P, W, None)]),
        # Never fired, so no RECOVERY either.
        ("WWO", {"for_": RunsOrDuration(runs=3)}, []),
        # recovery = false: PROBLEM only, and a new incident alerts again.
        ("WOOW", {"recovery": False}, [(0, P, W, None), (3, P, W, None)]),
        # within 3 of 5: intermittent faults alert; recovery waits for
        # 5 - 3 + 1 = 3 OK results in a row, so coming and going stays open.
        (
            "WOWOWOWOWOOO",
            {"within": (3, 5)},
            [(4, P, W, None), (11, M, O, W)],
        ),
        ("WWOWOOO", {"within": (3, 5)}, [(3, P, W, None), (6, M, O, W)]),
        ("WOOWOOWOO", {"within": (3, 5)}, []),
        # 5 of 5 is the same as for = 5: one OK ends it.
        ("WWWWWO", {"within": (5, 5)}, [(4, P, W, None), (5, M, O, W)]),
        # 1 of 3: any bad result alerts; three OKs in a row end it.
        ("OWOOWOOO", {"within": (1, 3)}, [(1, P, W, None), (7, M, O, W)]),
    ],
)
def test_transitions(codes, common, expected):
    _, seen = drive(codes, make_spec(repeat=0, **common))
    assert seen == expected


def test_for_duration_alerts_once_bad_for_that_long():
    spec = make_spec(for_=RunsOrDuration(seconds=300), repeat=0)
    state = None
    seen = []
    # Irregular times: 0, 120, 299 are not yet 5 minutes; 300 is.
    for offset in (0, 120, 299, 300, 360):
        state, events = advance(
            state,
            Result(W, "x"),
            T0 + timedelta(seconds=offset),
            spec,
            host="h",
            mail=MAIL,
        )
        seen.append([e.kind for e in events])
    assert seen == [[], [], [], [P], []]


def test_for_duration_restarts_after_an_ok_result():
    spec = make_spec(for_=RunsOrDuration(seconds=300), repeat=0)
    # Bad at 0..240s, OK at 300s, bad again from 360s: 5 minutes from 360s.
    _, seen = drive("WWWWWOWWWWWW", spec)
    assert seen == [(11, P, W, None)]


def test_problem_event_carries_what_the_composer_needs(tmp_path):
    log_file = tmp_path / "syslog"
    spec = make_spec(to=("team@example.org",), attach=(log_file,))
    result = Result(
        C,
        "/ is 93% full",
        metrics={"used_percent": 93.0},
        value=93.0,
        evidence=("big file: /var/tmp/x",),
        attachments=(tmp_path / "other.log", log_file),
    )
    _, events = advance(None, result, T0, spec, host="web-1", mail=MAIL)
    (event,) = events
    assert event.kind is P
    assert (event.check, event.check_type, event.host) == ("root-disk", "disk", "web-1")
    assert event.summary == "/ is 93% full"
    assert event.since == event.at == T0
    assert event.value == 93.0
    assert event.thresholds == {"warning": 80.0, "critical": 90.0}
    assert event.evidence == ("big file: /var/tmp/x",)
    assert event.attachments == (log_file, tmp_path / "other.log")
    assert event.recipients == ("team@example.org",)


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone"):
        advance(
            None,
            Result(O, "x"),
            datetime(2026, 1, 1),  # noqa: DTZ001 - naive on purpose
            make_spec(),
            host="h",
            mail=MAIL,
        )


# --- reminders ----------------------------------------------------------------


def test_reminders_come_every_repeat_while_bad():
    spec = make_spec(repeat=300)
    _, seen = drive("W" * 12 + "O", spec)
    assert seen == [
        (0, P, W, None),
        (5, R, W, W),
        (10, R, W, W),
        (12, M, O, W),
    ]


def test_reminder_time_restarts_at_a_severity_change():
    spec = make_spec(repeat=300)
    _, seen = drive("WWWCCCCCC", spec)
    assert seen == [(0, P, W, None), (3, P, C, W), (8, R, C, C)]


def test_repeat_zero_means_once_per_incident():
    spec = make_spec(repeat=0)
    _, seen = drive("W" * 500 + "O" + "W" * 3, spec)
    assert seen == [(0, P, W, None), (500, M, O, W), (501, P, W, None)]


def test_reminder_due_after_a_long_gap_comes_at_the_next_result():
    spec = make_spec(repeat=4 * 3600)
    state, _ = advance(None, Result(C, "x"), T0, spec, host="h", mail=MAIL)
    state, early = advance(
        state,
        Result(C, "x"),
        T0 + timedelta(hours=3, minutes=59),
        spec,
        host="h",
        mail=MAIL,
    )
    state, due = advance(
        state, Result(C, "x"), T0 + timedelta(hours=9), spec, host="h", mail=MAIL
    )
    assert early == []
    assert [e.kind for e in due] == [R]
    assert state.notified_at == T0 + timedelta(hours=9)


# --- routing ---------------------------------------------------------------------


def test_recipients_follow_check_to_and_severity_lists():
    mail = MailSettings(
        to=("ops@x.org",), to_warning=("day@x.org",), to_critical=("pager@x.org",)
    )
    plain = CheckCommon()
    own = CheckCommon(to=("db@x.org", "ops@x.org"))
    assert recipients_for(W, plain, mail) == ("ops@x.org", "day@x.org")
    assert recipients_for(C, plain, mail) == ("ops@x.org", "pager@x.org")
    assert recipients_for(U, plain, mail) == ("ops@x.org", "pager@x.org")
    assert recipients_for(O, plain, mail) == ("ops@x.org",)
    assert recipients_for(C, own, mail) == ("db@x.org", "ops@x.org", "pager@x.org")


def test_recovery_and_severity_changes_reach_everyone_who_was_told():
    mail = MailSettings(
        to=("ops@x.org",), to_warning=("day@x.org",), to_critical=("pager@x.org",)
    )
    spec = make_spec(repeat=0)
    state = None
    kinds = []
    for index, code in enumerate("WCWO"):
        state, events = advance(
            state,
            Result(CODES[code], "x"),
            T0 + timedelta(minutes=index),
            spec,
            host="h",
            mail=mail,
        )
        kinds.extend((e.kind, e.recipients) for e in events)
    both = ("ops@x.org", "pager@x.org", "day@x.org")
    assert kinds == [
        (P, ("ops@x.org", "day@x.org")),
        (P, both),
        (P, ("ops@x.org", "day@x.org", "pager@x.org")),
        (M, ("ops@x.org", "day@x.org", "pager@x.org")),
    ]


# --- flapping -------------------------------------------------------------------


def test_flapping_gives_one_message_then_quiet_until_stable_then_the_outcome():
    spec = make_spec(flap_changes=4, flap_window=6, repeat=60)
    codes = "OWOWOWOWOCWCOWCCCCCC" + "O" * 8
    state, seen = drive(codes, spec)
    # Until it is seen to flap, messages are ordinary. The fourth change
    # (at 4) trips it: one FLAPPING, then quiet through every change and
    # reminder until six results in a row agree: CRITICAL at 14..19 settles
    # at 19, told as a PROBLEM; the OK at 20 is an ordinary RECOVERY.
    assert seen == [
        (1, P, W, None),
        (2, M, O, W),
        (3, P, W, None),
        (4, F, O, W),
        (19, P, C, W),
        (20, M, O, C),
    ]
    assert not state.flapping


def test_flap_that_settles_ok_after_a_problem_gives_recovery():
    spec = make_spec(flap_changes=3, flap_window=4, repeat=0)
    _, seen = drive("CCOCO" + "O" * 6, spec)
    # Changes at 2, 3, 4 trip flapping at 4; it settles after four OKs (4..7).
    assert seen == [
        (0, P, C, None),
        (2, M, O, C),
        (3, P, C, None),
        (4, F, O, C),
        (7, M, O, C),
    ]


def test_flapping_event_routes_to_every_bad_status_seen():
    mail = MailSettings(to=("ops@x.org",), to_critical=("pager@x.org",))
    spec = make_spec(flap_changes=3, flap_window=5)
    state = None
    flapping = []
    for index, code in enumerate("OWOCO"):
        state, events = advance(
            state,
            Result(CODES[code], "x"),
            T0 + timedelta(minutes=index),
            spec,
            host="h",
            mail=mail,
        )
        flapping.extend(e for e in events if e.kind is F)
    (event,) = flapping
    assert event.recipients == ("ops@x.org", "pager@x.org")


# --- hysteresis -------------------------------------------------------------------


def test_value_hovering_at_the_threshold_does_not_flap_with_a_clear_level():
    spec = make_spec(clear_below=75.0, repeat=0, flap_changes=3, flap_window=10)
    values = [79, 80, 79.9, 80.1, 79, 80, 76, 80, 75.0, 74.9, 80]
    codes = "OWOWOWOWOOW"
    _, seen = drive(codes, spec, values=values)
    # Bad from 80; the OK results at 79.9, 79, 76 and 75.0 do not clear it
    # (75.0 is not below 75); 74.9 does; 80 again is a new incident.
    assert seen == [(1, P, W, None), (9, M, O, W), (10, P, W, None)]


def test_hovering_without_clear_level_flaps_for_comparison():
    spec = make_spec(repeat=0, flap_changes=3, flap_window=10)
    _, seen = drive("OWOWOWOWOOW", spec, values=[79, 80] * 5 + [80])
    assert (3, F, W, O) in seen


def test_clear_above_is_for_values_where_low_is_bad():
    spec = make_spec(clear_above=20.0, repeat=0)
    # Free percent: CRITICAL at 5, OK by the check at 12 and 20, clears at 21.
    _, seen = drive("COOO", spec, values=[5, 12, 20, 21])
    assert seen == [(0, P, C, None), (3, M, O, C)]


def test_both_clear_levels_form_a_band():
    spec = make_spec(clear_above=10.0, clear_below=90.0, repeat=0)
    _, seen = drive("COOCOO", spec, values=[95, 91, 50, 3, 9, 11])
    assert seen == [(0, P, C, None), (2, M, O, C), (3, P, C, None), (5, M, O, C)]


def test_held_status_says_so_in_the_summary():
    spec = make_spec(clear_below=75.0, repeat=60)
    state, _ = advance(None, Result(W, "82%", value=82), T0, spec, host="h", mail=MAIL)
    state, events = advance(
        state,
        Result(O, "78%", value=78),
        T0 + timedelta(minutes=1),
        spec,
        host="h",
        mail=MAIL,
    )
    (event,) = events
    assert event.kind is R
    assert event.summary == "78% (still WARNING: clears below 75)"


def test_result_without_value_is_taken_as_it_says():
    spec = make_spec(clear_below=75.0, repeat=0)
    _, seen = drive("WO", spec, values=[82, None])
    assert seen == [(0, P, W, None), (1, M, O, W)]


# --- silences -------------------------------------------------------------------


def drive_silenced(plan, spec=None):
    """``plan``: (code, silenced) pairs, one a minute."""
    spec = spec or make_spec(repeat=0)
    state = None
    seen = []
    for index, (code, silenced) in enumerate(plan):
        state, events = advance(
            state,
            Result(CODES[code], "x"),
            T0 + timedelta(minutes=index),
            spec,
            host="h",
            mail=MAIL,
            silenced=silenced,
        )
        seen.extend((index, e.kind, e.status, e.previous_status) for e in events)
    return state, seen


def test_problem_during_silence_is_announced_when_the_silence_ends():
    _, seen = drive_silenced([("W", True), ("C", True), ("C", False), ("O", False)])
    assert seen == [(2, S, C, None), (3, M, O, C)]


def test_problem_that_ends_during_silence_sends_nothing_new():
    _, seen = drive_silenced([("W", True), ("O", True), ("O", False), ("O", False)])
    assert seen == []


def test_recovery_during_silence_is_owed_to_those_told_before_it():
    _, seen = drive_silenced([("C", False), ("C", True), ("O", True), ("O", False)])
    assert seen == [(0, P, C, None), (3, M, O, C)]


def test_silence_over_a_told_problem_ends_with_silence_ended():
    _, seen = drive_silenced([("C", False), ("C", True), ("W", True), ("W", False)])
    assert seen == [(0, P, C, None), (3, S, W, C)]


def test_problem_starting_as_silence_ends_is_an_ordinary_problem():
    _, seen = drive_silenced([("O", True), ("W", False)])
    assert seen == [(0 + 1, P, W, None)]


def test_silence_holds_back_reminders_and_flapping_but_state_advances():
    spec = make_spec(repeat=60, flap_changes=2, flap_window=4)
    state, seen = drive_silenced([("C", True)] * 3 + [("O", True), ("C", True)], spec)
    assert seen == []
    assert state.firing and state.flapping and state.silenced


# --- invariants (hypothesis) -----------------------------------------------------

commons = st.builds(
    dict,
    for_=st.one_of(
        st.integers(1, 4).map(lambda n: RunsOrDuration(runs=n)),
        st.sampled_from([60.0, 300.0]).map(lambda s: RunsOrDuration(seconds=s)),
    ),
    within=st.one_of(
        st.none(),
        st.integers(2, 6).flatmap(lambda m: st.tuples(st.integers(1, m), st.just(m))),
    ),
    repeat=st.sampled_from([0.0, 60.0, 300.0, 3600.0]),
    recovery=st.booleans(),
    flap_changes=st.integers(0, 6),
    flap_window=st.integers(2, 10),
    clear_below=st.one_of(st.none(), st.just(70.0)),
)
# Runs of one status, so that stable stretches (recoveries, flaps settling)
# happen as often as rapid changes.
segments = st.lists(
    st.tuples(
        st.sampled_from(list(Status)),
        st.integers(1, 12),
        st.one_of(st.none(), st.floats(60, 95)),
        st.integers(1, 900),
        st.booleans(),
    ),
    max_size=14,
)


def expand(plan):
    return [
        (status, value, gap, silenced)
        for status, length, value, gap, silenced in plan
        for _ in range(length)
    ]


@settings(max_examples=400, deadline=None)
@given(common=commons, plan=segments)
def test_invariants_of_the_state_machine(common, plan):
    spec = make_spec(**common)
    state = None
    now = T0
    last_told = None  # what the recipients believe: a status, "flap" or None
    last_sent = None
    last_sent_kind = None
    for status, value, gap, silenced in expand(plan):
        now += timedelta(seconds=gap)
        before = state
        state, events = advance(
            state,
            Result(status, "x", value=value),
            now,
            spec,
            host="h",
            mail=MAIL,
            silenced=silenced,
        )

        # The state survives a restart exactly.
        assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state
        assert len(state.history) <= max(
            spec.common.flap_window, (spec.common.within or (0, 1))[1]
        )

        # At most one message per result; none while silenced or flapping.
        assert len(events) <= 1
        if silenced:
            assert events == []
        if before is not None and before.flapping and state.flapping:
            assert events == []
        if not events:
            continue

        (event,) = events
        assert event.recipients == ("ops@example.org",)
        if event.kind is P:
            # A PROBLEM tells something new: a new incident, another status,
            # or where a flap settled.
            if spec.common.recovery:
                assert last_told != event.status or last_sent_kind is F
            assert event.status is not O
            last_told = event.status
        elif event.kind is R:
            assert spec.common.repeat > 0
            assert event.status == last_told
            assert (now - last_sent).total_seconds() >= spec.common.repeat
        elif event.kind is M:
            # Only after a problem the recipients were told about.
            assert spec.common.recovery
            assert last_told is not None
            last_told = None
        elif event.kind is F:
            assert before is None or not before.flapping
            assert state.flapping
            last_told = "flap"
        elif event.kind is S:
            assert before is not None and before.silenced and not silenced
            assert event.status is not O
            last_told = event.status
        if before is not None and before.flapping:
            # Leaving flapping: the window is all one status.
            window = state.history[-spec.common.flap_window :]
            assert len(set(window)) == 1
        last_sent = now
        last_sent_kind = event.kind


def test_state_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        AlertState().firing = True  # type: ignore[misc]


def test_flap_that_settles_during_a_silence_is_told_when_it_ends():
    spec = make_spec(flap_changes=2, flap_window=3, repeat=0)
    plan = [("O", False), ("C", False), ("O", False)]  # PROBLEM, then FLAPPING
    plan += [("C", True)] * 3  # settles CRITICAL while silenced
    plan += [("C", False)]
    _, seen = drive_silenced(plan, spec)
    assert seen == [(1, P, C, None), (2, F, O, C), (6, P, C, C)]


def test_flapping_unseen_because_of_a_silence_leaves_the_ordinary_rules():
    spec = make_spec(flap_changes=2, flap_window=3, repeat=0)
    plan = [("C", False)] + [("O", True), ("C", True)] + [("C", False)] * 3
    _, seen = drive_silenced(plan, spec)
    # Told CRITICAL; flapped unseen under the silence, which ends at 3 while
    # it still flaps; it settles CRITICAL at 4: that is told as the silence
    # ending, not as a flap settling (nobody heard of the flap).
    assert seen == [(0, P, C, None), (4, S, C, C)]


def test_hysteresis_does_not_hold_an_unknown():
    spec = make_spec(clear_below=75.0, repeat=0)
    # WARNING at 82, then the check broke (UNKNOWN), then OK at 78: the OK
    # after a blind run is taken as it says.
    _, seen = drive("WUO", spec, values=[82, None, 78])
    assert seen == [(0, P, W, None), (1, P, U, W), (2, M, O, U)]
