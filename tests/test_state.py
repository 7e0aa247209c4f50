"""Alert state on disk: restarts, damaged files, pruning, write failures."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifier.checks.base import Result, Status
from notifier.config import CheckCommon, CheckSpec, MailSettings
from notifier.events import EventKind
from notifier.state import (
    AlertState,
    AlertStore,
    advance,
    read_alert_states,
    state_from_json,
    state_to_json,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MAIL = MailSettings(to=("ops@example.org",))
OK, W, C = Status.OK, Status.WARNING, Status.CRITICAL
P, M = EventKind.PROBLEM, EventKind.RECOVERY


def make_spec(**common):
    return CheckSpec("root-disk", "disk", CheckCommon(**common), {}, 0)


def test_state_survives_a_restart_without_a_second_problem(tmp_path):
    spec = make_spec(repeat=3600)
    store = AlertStore(tmp_path)
    state, events = advance(None, Result(C, "x"), T0, spec, host="h", mail=MAIL)
    store.put("root-disk", state)
    assert [e.kind for e in events] == [P]

    restarted = AlertStore(tmp_path)
    again, events = advance(
        restarted.get("root-disk"),
        Result(C, "x"),
        T0 + timedelta(minutes=1),
        spec,
        host="h",
        mail=MAIL,
    )
    assert events == []
    assert again.firing
    assert restarted.get("root-disk") == state


def test_recovery_that_happened_while_stopped_is_reported_after_restart(tmp_path):
    spec = make_spec()
    store = AlertStore(tmp_path)
    state, _ = advance(None, Result(W, "x"), T0, spec, host="h", mail=MAIL)
    store.put("root-disk", state)

    # Stopped for a day; the first result after the restart is OK.
    restarted = AlertStore(tmp_path)
    _, events = advance(
        restarted.get("root-disk"),
        Result(OK, "fine"),
        T0 + timedelta(days=1),
        spec,
        host="h",
        mail=MAIL,
    )
    assert [(e.kind, e.previous_status) for e in events] == [(M, W)]


def test_damaged_state_file_is_moved_aside_and_the_check_starts_afresh(
    tmp_path, caplog
):
    store = AlertStore(tmp_path)
    state, _ = advance(None, Result(W, "x"), T0, make_spec(), host="h", mail=MAIL)
    store.put("root-disk", state)
    store.put("load", state)
    damaged = tmp_path / "alerts" / "root-disk.json"
    damaged.write_text('{"version": 1, "status": "WARN')

    with caplog.at_level(logging.ERROR, logger="notifier.state"):
        restarted = AlertStore(tmp_path)

    assert restarted.get("root-disk") is None
    assert restarted.get("load") == state
    assert not damaged.exists()
    (moved,) = (tmp_path / "alerts").glob("root-disk.json.corrupt-*")
    assert moved.read_text() == '{"version": 1, "status": "WARN'
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert str(damaged) in record.getMessage()


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        '{"version": 99}',
        "not json",
        "\xff\xfe",
        '{"version": 1}',
    ],
)
def test_any_damage_is_survived(tmp_path, content):
    folder = tmp_path / "alerts"
    folder.mkdir()
    (folder / "x.json").write_text(content, encoding="latin-1")
    assert AlertStore(tmp_path).all() == {}
    assert len(list(folder.glob("x.json.corrupt-*"))) == 1


def test_a_time_without_zone_in_the_file_counts_as_damage():
    data = state_to_json(AlertState(since=T0))
    data["since"] = "2026-03-01T12:00:00"
    with pytest.raises(ValueError, match="time zone"):
        state_from_json(data)


def test_unchanged_state_is_not_written_again(tmp_path):
    store = AlertStore(tmp_path)
    spec = make_spec()
    state, _ = advance(None, Result(OK, "x"), T0, spec, host="h", mail=MAIL)
    store.put("root-disk", state)
    path = tmp_path / "alerts" / "root-disk.json"
    for minute in range(1, 20):
        state, _ = advance(
            state,
            Result(OK, "x"),
            T0 + timedelta(minutes=minute),
            spec,
            host="h",
            mail=MAIL,
        )
        store.put("root-disk", state)
    first = path.stat().st_ino

    # Once the history window is full of OK, staying OK changes nothing.
    for minute in range(20, 40):
        state, _ = advance(
            state,
            Result(OK, "x"),
            T0 + timedelta(minutes=minute),
            spec,
            host="h",
            mail=MAIL,
        )
        store.put("root-disk", state)
    assert path.stat().st_ino == first


def test_prune_forgets_checks_removed_from_the_config(tmp_path):
    store = AlertStore(tmp_path)
    for name in ("a", "b", "c"):
        store.put(name, AlertState(since=T0))
    assert store.prune(["b", "new"]) == ["a", "c"]
    assert sorted(AlertStore(tmp_path).all()) == ["b"]
    assert sorted(p.name for p in (tmp_path / "alerts").iterdir()) == ["b.json"]


def test_leftover_temporary_files_are_cleaned_at_start(tmp_path):
    folder = tmp_path / "alerts"
    folder.mkdir()
    (folder / ".a.json.xyz.tmp").write_text("half")
    AlertStore(tmp_path)
    assert list(folder.iterdir()) == []


def test_read_alert_states_leaves_damaged_files_in_place(tmp_path):
    store = AlertStore(tmp_path)
    store.put("good", AlertState(since=T0))
    (tmp_path / "alerts" / "bad.json").write_text("{")
    assert read_alert_states(tmp_path) == {"good": AlertState(since=T0)}
    assert (tmp_path / "alerts" / "bad.json").exists()


def test_invalid_check_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a valid check name"):
        AlertStore(tmp_path).put("../etc/passwd", AlertState())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_unwritable_folder_is_logged_and_state_kept_in_memory(tmp_path, caplog):
    store = AlertStore(tmp_path)
    (tmp_path / "alerts").chmod(0o500)
    try:
        with caplog.at_level(logging.ERROR, logger="notifier.state"):
            store.put("a", AlertState(since=T0))
            store.put("a", AlertState(since=T0, bad_count=1))
    finally:
        (tmp_path / "alerts").chmod(0o700)
    assert store.get("a") == AlertState(since=T0, bad_count=1)
    assert len(caplog.records) == 1


def test_write_failure_is_logged_once_and_state_kept_in_memory(tmp_path, caplog):
    store = AlertStore(tmp_path)
    # Stand-in for a full disk or a read-only folder, which cannot be made
    # for root on a test machine: the target path is a folder, so the atomic
    # rename fails with a real OSError.
    (tmp_path / "alerts" / "a.json").mkdir()
    with caplog.at_level(logging.INFO, logger="notifier.state"):
        store.put("a", AlertState(since=T0))
        store.put("a", AlertState(since=T0, bad_count=1))
    assert store.get("a") == AlertState(since=T0, bad_count=1)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "kept in memory" in errors[0].getMessage()

    (tmp_path / "alerts" / "a.json").rmdir()
    with caplog.at_level(logging.INFO, logger="notifier.state"):
        store.put("a", AlertState(since=T0, bad_count=1))
    assert "saved again" in caplog.records[-1].getMessage()
    assert AlertStore(tmp_path).get("a") == AlertState(since=T0, bad_count=1)


def test_state_file_is_readable_json(tmp_path):
    store = AlertStore(tmp_path)
    state, _ = advance(None, Result(C, "x"), T0, make_spec(), host="h", mail=MAIL)
    store.put("root-disk", state)
    data = json.loads((tmp_path / "alerts" / "root-disk.json").read_text())
    assert data["firing"] is True
    assert data["alert_status"] == "CRITICAL"
    assert data["since"] == "2026-03-01T12:00:00+00:00"


def test_store_folder_is_created(tmp_path):
    AlertStore(tmp_path / "deep" / "state")
    assert Path(tmp_path / "deep" / "state" / "alerts").is_dir()
