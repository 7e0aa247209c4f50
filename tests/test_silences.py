"""Silences on disk: add, clear, expiry, and a reader that sees changes."""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest

from notifier.checks.base import Result, Status
from notifier.config import CheckCommon, CheckSpec, MailSettings
from notifier.events import EventKind
from notifier.silences import ALL, SilenceStore
from notifier.state import advance

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand, for silences that end."""

    def __init__(self, start=T0):
        self.now = start

    def __call__(self):
        return self.now

    def forward(self, **delta):
        self.now += timedelta(**delta)
        return self.now


def test_silence_covers_its_check_until_it_ends(tmp_path):
    clock = Clock()
    store = SilenceStore(tmp_path, clock)
    store.add("root-disk", T0 + timedelta(hours=2), "disk swap")

    assert store.is_silenced("root-disk", T0)
    assert store.is_silenced("root-disk", T0 + timedelta(hours=1, minutes=59))
    assert not store.is_silenced("root-disk", T0 + timedelta(hours=2))
    assert not store.is_silenced("load", T0)


def test_all_covers_every_check(tmp_path):
    store = SilenceStore(tmp_path, Clock())
    store.add(ALL, T0 + timedelta(minutes=30))
    assert store.is_silenced("root-disk", T0)
    assert store.is_silenced("anything", T0)
    assert store.silence_for("load", T0).name == ALL


def test_list_and_clear(tmp_path):
    clock = Clock()
    store = SilenceStore(tmp_path, clock)
    store.add("b", T0 + timedelta(hours=1), "second")
    store.add("a", T0 + timedelta(hours=3), "first")
    assert [(s.name, s.reason) for s in store.list()] == [
        ("a", "first"),
        ("b", "second"),
    ]

    removed = store.clear("a")
    assert removed.name == "a"
    assert [s.name for s in store.list()] == ["b"]
    assert store.clear("a") is None
    assert not store.is_silenced("a", T0)


def test_adding_again_replaces_the_silence(tmp_path):
    store = SilenceStore(tmp_path, Clock())
    store.add("a", T0 + timedelta(hours=4))
    store.add("a", T0 + timedelta(minutes=10), "shorter")
    (silence,) = store.list()
    assert silence.until == T0 + timedelta(minutes=10)
    assert silence.reason == "shorter"


def test_ended_silences_are_not_listed_and_dropped_at_the_next_write(tmp_path):
    clock = Clock()
    store = SilenceStore(tmp_path, clock)
    store.add("old", T0 + timedelta(minutes=5))
    clock.forward(minutes=10)
    assert store.list() == []
    assert store.clear("old") is None  # it had ended: nothing to clear
    store.add("new", clock() + timedelta(minutes=5))
    data = json.loads(store.path.read_text())
    assert [entry["name"] for entry in data["silences"]] == ["new"]


def test_the_daemon_sees_a_silence_added_by_another_process(tmp_path):
    daemon = SilenceStore(tmp_path)
    assert not daemon.is_silenced("a", T0)

    # The command line writes with a store of its own.
    SilenceStore(tmp_path, Clock()).add("a", T0 + timedelta(hours=1))
    assert daemon.is_silenced("a", T0)

    SilenceStore(tmp_path, Clock()).clear("a")
    assert not daemon.is_silenced("a", T0)


def test_refresh_reads_only_when_the_file_changed(tmp_path):
    daemon = SilenceStore(tmp_path)
    assert not daemon.refresh()  # no file: nothing to read
    SilenceStore(tmp_path, Clock()).add("a", T0 + timedelta(hours=1))
    assert daemon.refresh()
    assert not daemon.refresh()


def test_reason_is_cleaned_of_control_characters_and_capped(tmp_path):
    store = SilenceStore(tmp_path, Clock())
    silence = store.add("a", T0 + timedelta(hours=1), "line\r\nBcc: x@y\x1b[31m" * 40)
    assert "\n" not in silence.reason
    assert "\x1b" not in silence.reason
    assert len(silence.reason) == 200


@pytest.mark.parametrize(
    ("until", "message"),
    [
        (T0, "in the future"),
        (T0 - timedelta(seconds=1), "in the future"),
        (datetime(2026, 3, 2, 12, 0), "timezone-aware"),  # noqa: DTZ001 - on purpose
    ],
)
def test_a_silence_must_end_in_the_future(tmp_path, until, message):
    with pytest.raises(ValueError, match=message):
        SilenceStore(tmp_path, Clock()).add("a", until)


def test_damaged_file_counts_as_no_silences_and_is_moved_aside_on_write(
    tmp_path, caplog
):
    (tmp_path / "silences.json").write_text("{not json")
    daemon = SilenceStore(tmp_path)
    with caplog.at_level(logging.ERROR, logger="notifier.silences"):
        assert not daemon.is_silenced("a", T0)
        assert not daemon.is_silenced("a", T0)
    # Logged once, naming the file.
    (record,) = caplog.records
    assert str(tmp_path / "silences.json") in record.getMessage()

    writer = SilenceStore(tmp_path, Clock())
    writer.add("a", T0 + timedelta(hours=1))
    assert writer.set_aside is not None
    assert writer.set_aside.read_text() == "{not json"
    assert daemon.is_silenced("a", T0)


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        '{"version": 2, "silences": []}',
        '{"version": 1, "silences": {}}',
        '{"version": 1, "silences": [1]}',
        '{"version": 1, "silences": [{"name": "a"}]}',
        '{"version": 1, "silences": [{"name": "a", "until": "2026-03-01T13:00:00",'
        ' "reason": "", "created": "2026-03-01T12:00:00+00:00"}]}',
    ],
)
def test_any_damage_reads_as_no_silences(tmp_path, content):
    (tmp_path / "silences.json").write_text(content)
    assert not SilenceStore(tmp_path).is_silenced("a", T0)


def test_concurrent_writers_do_not_lose_each_others_silences(tmp_path):
    names = [f"check-{number}" for number in range(40)]

    def add(name):
        SilenceStore(tmp_path).add(name, datetime.now(UTC) + timedelta(hours=1))

    threads = [threading.Thread(target=add, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(s.name for s in SilenceStore(tmp_path).list()) == sorted(names)


def test_file_is_readable_by_the_daemon_user(tmp_path):
    SilenceStore(tmp_path, Clock()).add("a", T0 + timedelta(hours=1))
    assert os.stat(tmp_path / "silences.json").st_mode & 0o777 == 0o644  # noqa: PTH116


def test_silence_ended_event_when_a_problem_outlasts_the_silence(tmp_path):
    # The whole path the daemon takes: the store answers is_silenced for
    # each run, the state machine holds events back and announces the end.
    clock = Clock()
    store = SilenceStore(tmp_path, clock)
    spec = CheckSpec("root-disk", "disk", CheckCommon(repeat=0), {}, 0)
    mail = MailSettings(to=("ops@x.org",))
    store.add("root-disk", T0 + timedelta(minutes=30), "replacing the disk")

    state = None
    sent = []
    for minute in range(0, 50, 5):
        now = T0 + timedelta(minutes=minute)
        state, events = advance(
            state,
            Result(Status.CRITICAL, "/ is 97% full"),
            now,
            spec,
            host="web-1",
            mail=mail,
            silenced=store.is_silenced("root-disk", now),
        )
        sent.extend((minute, e.kind) for e in events)
    assert sent == [(30, EventKind.SILENCE_ENDED)]
