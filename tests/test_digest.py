"""The daily digest: the record of a day (threads, restarts, rotation, limits)
and the message composed from real alert states, a real outbox and a real
failed delivery, read back as a mail client would."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser

import pytest
import tomli_w
from smtp_server import reserve_port
from test_transport import make_message, write_config

from notifier.checks.base import Result, Status
from notifier.compose import compose_alert
from notifier.daemon import CheckRecord
from notifier.delivery import Sender, read_status
from notifier.digest import DigestLog, compose_digest, near_miss
from notifier.errors import ConfigError
from notifier.events import AlertEvent, EventKind
from notifier.loader import load
from notifier.outbox import Outbox
from notifier.state import AlertStore, advance
from notifier.transport import create_transport

HOST = "web-1.example.test"


def digest_config(tmp_path, **mail):
    """Write a configuration with four checks and return it loaded."""
    tables = {
        "mail": {"to": ["ops@example.test"], "digest": "08:00", **mail},
        "check": [
            {"name": "root-disk", "type": "disk", "path": str(tmp_path)},
            {
                "name": "data-disk",
                "type": "disk",
                "path": str(tmp_path),
                "warning": 50.0,
                "critical": 60.0,
            },
            {"name": "memory", "type": "memory"},
            {
                "name": "app-log",
                "type": "logscan",
                "path": str(tmp_path / "app.log"),
                "pattern": "ERROR",
            },
        ],
    }
    document = {
        "notifier": {"hostname": HOST, "state_dir": str(tmp_path / "state")},
        **tables,
    }
    path = tmp_path / "notifier.toml"
    path.write_text(tomli_w.dumps(document))
    return load(path).config


def record(status, summary, value=None, at=None):
    stamp = (at or datetime.now(UTC)).isoformat(timespec="seconds")
    return dataclasses.asdict(
        CheckRecord(status, summary, last_run=stamp, duration=0.01, value=value)
    )


def parse(message):
    return BytesParser(policy=policy.default).parsebytes(message.as_bytes())


def body_of(parsed):
    return parsed.get_body(("plain",)).get_content()


def section(body, title):
    """Return the lines under the heading ``title`` up to the next heading."""
    lines = body.splitlines()
    start = lines.index(title) + 2
    end = start
    while end < len(lines) and not (
        end + 1 < len(lines) and set(lines[end + 1]) == {"-"} and lines[end]
    ):
        end += 1
    return "\n".join(lines[start:end])


def fail_delivery(config, tmp_path, state_dir, outbox):
    """Run the real sender against a port that refuses connections."""
    with reserve_port() as holder:
        table = {
            "host": "127.0.0.1",
            "port": holder.getsockname()[1],
            "security": "none",
            "timeout": "5s",
        }
        failing = load(
            write_config(
                tmp_path / "failing",
                notifier={"state_dir": str(state_dir)},
                smtp=table,
            )
        )
        transport = create_transport(failing.config, failing.registry.transport_map())
        return Sender(failing.config, transport, outbox).deliver_due()


def deliver_by_file(tmp_path, state_dir, outbox):
    """Deliver what is due through the real file transport."""
    path = write_config(
        tmp_path / "byfile",
        notifier={"state_dir": str(state_dir)},
        mail={"transport": "file"},
    )
    loaded = load(path)
    transport = create_transport(loaded.config, loaded.registry.transport_map())
    return Sender(loaded.config, transport, outbox).deliver_due()


@pytest.fixture
def busy_day(tmp_path):
    """A day with an incident, a near miss, a sent, a waiting and a failed
    message, and a mail server down at the end of it."""
    (tmp_path / "failing").mkdir()
    (tmp_path / "byfile").mkdir()
    config = digest_config(tmp_path)
    state_dir = config.notifier.state_dir
    now = datetime.now(UTC)
    start = now - timedelta(days=1)
    digest_log = DigestLog(state_dir, now=start, peak_flush_seconds=0)
    store = AlertStore(state_dir)
    outbox = Outbox.in_state_dir(state_dir)

    # root-disk goes CRITICAL in the night; the state machine says PROBLEM.
    went_bad = now - timedelta(hours=6)
    state, events = advance(
        None,
        Result(Status.CRITICAL, "/ is 95% full (4.9GiB free of 98GiB)", value=95.0),
        went_bad,
        config.check("root-disk"),
        host=HOST,
        mail=config.mail,
    )
    store.put("root-disk", state)
    for event in events:
        digest_log.note_event(event)

    # The PROBLEM email went out through the file transport.
    alert = compose_alert(
        events, config.mail, hostname=HOST, recipients=["ops@example.test"], now=now
    )
    outbox.put(alert, ["ops@example.test"])
    assert deliver_by_file(tmp_path, state_dir, outbox).sent

    # memory peaked close to its warning (90) in the afternoon, is low now.
    for value in (40.0, 85.5, 60.0):
        digest_log.note_value("memory", Status.OK, value, now - timedelta(hours=3))
    digest_log.note_value("memory", Status.CRITICAL, 99.0, now - timedelta(hours=2))

    # One message four days old expires as the server is down; one waits.
    outbox.put(make_message("old news"), now=time.time() - 4 * 86400)
    outbox.put(make_message("disk full on web-1"))
    report = fail_delivery(config, tmp_path, state_dir, outbox)
    assert report.error and report.failed

    records = {
        "root-disk": record("CRITICAL", "/ is 95% full (4.9GiB free of 98GiB)", 95.0),
        "data-disk": record("OK", "/data is 45% full", 45.0),
        "memory": record("OK", "40% of memory in use; token=hunter2secret", 40.0),
    }
    return config, records, store, digest_log, outbox, now


def test_digest_shows_every_section_of_a_busy_day(busy_day):
    config, records, store, digest_log, outbox, now = busy_day

    message = compose_digest(
        config,
        records=records,
        alerts=store.all(),
        digest_log=digest_log,
        outbox=outbox,
        now=now,
    )

    parsed = parse(message)
    assert parsed["Subject"] == (
        f"[notifier] daily digest {HOST}: 2 checks OK, 1 CRITICAL, 1 PENDING"
    )
    assert parsed["To"] == "ops@example.test"
    assert parsed["X-Notifier-Kind"] == "DIGEST"
    assert parsed["X-Notifier-Status"] == "CRITICAL"
    assert parsed["Message-ID"].endswith(f"@{HOST}>")
    body = body_of(parsed)

    checks = section(body, "Checks").splitlines()
    assert checks[0].startswith("CRITICAL  root-disk: / is 95% full")
    assert "alert firing" in checks[1] and "since " in checks[1]
    assert any(line.startswith("PENDING   app-log: not run yet") for line in checks)
    assert "hunter2secret" not in body

    close = section(body, "Came close")
    assert "data-disk: reached 45 while OK (warning at 50)" in close
    assert "memory: reached 85.5 while OK (warning at 90), now 40" in close
    assert "root-disk" not in close

    alerts = section(body, "Alerts")
    assert "1 alert in this period:" in alerts
    assert "PROBLEM CRITICAL root-disk" in alerts
    assert "1 message delivered in this period" in alerts

    delayed = " ".join(section(body, "Delayed").split())
    assert "Mail delivery has been failing since" in delayed
    assert read_status(config.notifier.state_dir).last_error in delayed
    assert "1 message waiting in the outbox" in delayed
    assert "disk full on web-1" in delayed

    failed = " ".join(section(body, "Failed").split())
    assert "1 message failed for good in this period" in failed
    assert "old news" in failed
    assert "max_age" in failed

    assert body.rstrip().splitlines()[-1] == (
        f"If this digest stops arriving, notifier itself is broken on {HOST}."
    )


def test_quiet_day_says_so_in_each_section(tmp_path):
    config = digest_config(tmp_path)
    state_dir = config.notifier.state_dir
    now = datetime.now(UTC)
    records = {
        "root-disk": record("OK", "/ is 10% full", 10.0),
        "data-disk": record("OK", "/data is 10% full", 10.0),
        "memory": record("OK", "20% of memory in use", 20.0),
        "app-log": record("OK", "no new matching lines", 0.0),
    }

    message = compose_digest(
        config,
        records=records,
        alerts={},
        digest_log=DigestLog(state_dir, now=now - timedelta(days=1)),
        outbox=Outbox.in_state_dir(state_dir),
        now=now,
    )

    parsed = parse(message)
    assert parsed["Subject"] == f"[notifier] daily digest {HOST}: 4 checks OK"
    body = body_of(parsed)
    assert "4 checks: 4 OK; 0 alerts firing." in body
    assert "No check came within 20% of its warning threshold." in body
    assert "No alerts in this period." in body
    assert "0 messages delivered in this period" in body
    assert "Nothing is waiting in the outbox." in body
    assert "No message failed for good in this period." in body
    assert "failing" not in body


def test_digest_refuses_when_nobody_would_get_it(tmp_path):
    config = digest_config(tmp_path)
    config = dataclasses.replace(config, mail=dataclasses.replace(config.mail, to=()))

    with pytest.raises(ValueError, match="nobody"):
        compose_digest(
            config,
            records={},
            alerts={},
            digest_log=DigestLog(config.notifier.state_dir),
            outbox=Outbox.in_state_dir(config.notifier.state_dir),
            now=datetime.now(UTC),
        )


def make_event(check, at, kind=EventKind.PROBLEM, status=Status.WARNING, summary=""):
    return AlertEvent(
        kind=kind,
        check=check,
        check_type="disk",
        host=HOST,
        status=status,
        previous_status=None,
        summary=summary or f"{check} at {at.isoformat()}",
        since=at,
        at=at,
    )


def test_digest_masks_secrets_wherever_it_quotes_check_output(tmp_path):
    config = digest_config(tmp_path, redact=[r"customer=(\w+)"])
    state_dir = config.notifier.state_dir
    now = datetime.now(UTC)
    digest_log = DigestLog(state_dir, now=now - timedelta(days=1))
    line = "ERROR login failed password=hunter2 token=abcd1234secret"
    digest_log.note_event(
        make_event("app-log", now - timedelta(hours=5), summary=f"1 line: {line}")
    )
    digest_log.note_event(
        make_event(
            "app-log", now - timedelta(hours=4), summary="refund customer=ACME42"
        )
    )
    # The record keeps 300 characters: the cut must not leave half a secret.
    long_summary = "x" * 270 + ' passphrase="correct horse battery staple"'
    digest_log.note_event(
        make_event("app-log", now - timedelta(hours=3), summary=long_summary)
    )
    outbox = Outbox.in_state_dir(state_dir)
    outbox.put(make_message(f"CRITICAL app-log {line}"))
    records = {
        "app-log": record("CRITICAL", f"1 line: {line}", 1.0),
        "memory": record("OK", "41% used; top: mysqld --password s3cr3tpw", 41.0),
    }

    message = compose_digest(
        config,
        records=records,
        alerts={},
        digest_log=digest_log,
        outbox=outbox,
        now=now,
    )

    raw = message.as_bytes()
    for secret in (b"hunter2", b"abcd1234secret", b"ACME42", b"correct", b"s3cr3tpw"):
        assert secret not in raw
    body = body_of(parse(message))
    alerts = section(body, "Alerts")
    assert "1 line: ERROR login failed password=[masked] token=[masked]" in alerts
    assert "refund customer=[masked]" in alerts
    assert "CRITICAL  app-log: 1 line: ERROR login failed password=[masked]" in body
    assert "mysqld --password [masked]" in section(body, "Checks")
    assert "CRITICAL app-log ERROR login failed password=[masked]" in (
        " ".join(section(body, "Delayed").split())
    )
    assert b"hunter2" not in (state_dir / "digest.jsonl").read_bytes()


def test_events_noted_from_many_threads_are_all_kept_whole(tmp_path):
    digest_log = DigestLog(tmp_path, peak_flush_seconds=0)
    start = datetime.now(UTC)
    barrier = threading.Barrier(8)

    def note(worker):
        barrier.wait()
        for number in range(200):
            at = start + timedelta(milliseconds=number)
            digest_log.note_event(make_event(f"check-{worker}", at))
            digest_log.note_value(f"check-{worker}", Status.OK, number, at)

    threads = [threading.Thread(target=note, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(digest_log.events()) == 1600
    lines = (tmp_path / "digest.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines].count("event") == 1600
    reread = DigestLog(tmp_path)
    assert len(reread.events()) == 1600
    counts = {n: 0 for n in range(8)}
    for noted in reread.events():
        counts[int(noted.check.rpartition("-")[2])] += 1
    assert set(counts.values()) == {200}
    assert reread.peaks()["check-3"].high == 199


def test_peaks_are_not_written_on_every_run(tmp_path):
    digest_log = DigestLog(tmp_path)
    size = (tmp_path / "digest.jsonl").stat().st_size
    at = datetime.now(UTC)

    for value in range(500):
        digest_log.note_value("memory", Status.OK, float(value), at)

    assert (tmp_path / "digest.jsonl").stat().st_size == size
    assert digest_log.peaks()["memory"].high == 499


def test_rotation_forgets_what_the_digest_covered_and_keeps_later_events(tmp_path):
    t0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    digest_log = DigestLog(tmp_path, now=t0, peak_flush_seconds=0)
    digest_log.note_event(make_event("root-disk", t0 + timedelta(hours=2)))
    digest_log.note_value("memory", Status.OK, 88.0, t0 + timedelta(hours=3))
    digest_log.note_event(make_event("late", t0 + timedelta(days=1, seconds=5)))

    digest_log.rotate(t0 + timedelta(days=1))

    for record_ in (digest_log, DigestLog(tmp_path)):
        assert record_.period_start == t0 + timedelta(days=1)
        assert [noted.check for noted in record_.events()] == ["late"]
        assert record_.peaks() == {}


def test_restart_keeps_the_period_events_and_peaks(tmp_path):
    t0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    digest_log = DigestLog(tmp_path, now=t0, peak_flush_seconds=0)
    digest_log.note_event(make_event("root-disk", t0 + timedelta(hours=1)))
    for value in (50.0, 87.0, 30.0):
        digest_log.note_value("memory", Status.OK, value, t0 + timedelta(hours=2))

    restarted = DigestLog(tmp_path, now=t0 + timedelta(hours=5))

    assert restarted.period_start == t0
    assert [noted.check for noted in restarted.events()] == ["root-disk"]
    assert restarted.peaks()["memory"].high == 87.0
    assert restarted.peaks()["memory"].low == 30.0


def test_record_stops_growing_at_its_limit_and_counts_the_rest(tmp_path):
    config = digest_config(tmp_path)
    state_dir = config.notifier.state_dir
    now = datetime.now(UTC)
    digest_log = DigestLog(state_dir, now=now - timedelta(days=1), max_bytes=4096)

    for number in range(80):
        digest_log.note_event(make_event("root-disk", now - timedelta(minutes=number)))

    assert (state_dir / "digest.jsonl").stat().st_size <= 4096
    kept = len(digest_log.events())
    assert 0 < kept < 80
    assert kept + digest_log.overflow() == 80
    message = compose_digest(
        config,
        records={},
        alerts={},
        digest_log=digest_log,
        outbox=Outbox.in_state_dir(state_dir),
        now=now,
    )
    body = body_of(parse(message))
    assert "80 alerts in this period:" in body
    assert f"... and {80 - 50} earlier, not listed" in body


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path, caplog):
    t0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    digest_log = DigestLog(tmp_path, now=t0)
    digest_log.note_event(make_event("root-disk", t0 + timedelta(hours=1)))
    with (tmp_path / "digest.jsonl").open("a") as handle:
        handle.write('{"type": "event", "at": "2026-03-0')

    restarted = DigestLog(tmp_path)

    assert [noted.check for noted in restarted.events()] == ["root-disk"]
    assert "1 damaged lines skipped" in caplog.text


def test_near_miss_rule_both_directions():
    assert near_miss(80.0, 100.0, higher_is_worse=True)
    assert not near_miss(79.9, 100.0, higher_is_worse=True)
    # Lower is worse (free space): 12 is within 20% of a warning at 10.
    assert near_miss(12.0, 10.0, higher_is_worse=False)
    assert not near_miss(12.6, 10.0, higher_is_worse=False)


@pytest.mark.parametrize(("written", "kept"), [("8:00", "08:00"), ("", "")])
def test_digest_time_is_a_time_of_day_or_off(tmp_path, written, kept):
    config = digest_config(tmp_path, digest=written)

    assert config.mail.digest == kept


def test_digest_time_that_is_not_one_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        digest_config(tmp_path, digest="25:00")

    assert "[mail] digest: '25:00' is not valid" in str(caught.value)
    assert "a time of day such as '08:00', or '' for off" in str(caught.value)
