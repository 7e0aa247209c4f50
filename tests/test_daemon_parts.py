"""The daemon's wiring, in-process: digest scheduling, refusals at start-up.

The end-to-end behaviour is in tests/test_daemon.py with real subprocesses;
these tests reach the parts a subprocess cannot show without waiting for a
clock time (the daily digest at 08:00).
"""

from __future__ import annotations

import email
import email.policy
import os
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from notifier.daemon import Daemon
from notifier.errors import ConfigError, TemporaryError
from notifier.sdnotify import SystemdNotifier


def write_config(folder: Path, mail: str) -> Path:
    path = folder / "notifier.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [notifier]
            hostname = "web-1.example.test"
            state_dir = "{folder / "state"}"

            [mail]
            transport = "file"
            {mail}

            [[check]]
            name = "root-disk"
            type = "disk"
            path = "/"
            warning = 100.0
            critical = 100.0
            """
        )
    )
    return path


def quiet_systemd() -> SystemdNotifier:
    return SystemdNotifier.from_environment({})


@pytest.fixture
def make_daemon():
    """Build daemons in-process; they never run to their end, where they
    would let go of their state folder's lock, so let go of it afterwards."""
    made: list[Daemon] = []

    def make(config: Path) -> Daemon:
        daemon = Daemon(config, quiet_systemd())
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.instance.release()


def test_digest_is_scheduled_daily_at_the_configured_local_time(
    tmp_path, monkeypatch, make_daemon
):
    # A zone far from UTC, so local time and UTC cannot be confused.
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    config = write_config(tmp_path, 'to = ["ops@example.test"]\ndigest = "08:00"')
    daemon = make_daemon(config)

    daemon._schedule_housekeeping()
    daemon.scheduler.start(paused=True)
    try:
        job = daemon.scheduler.get_job("digest")
        when = job.next_run_time.astimezone(ZoneInfo("Asia/Tokyo"))
    finally:
        daemon.scheduler.shutdown(wait=False)
        monkeypatch.delenv("TZ")
        time.tzset()

    assert (when.hour, when.minute) == (8, 0)
    now = datetime.now(UTC)
    assert 0 < (when - now).total_seconds() <= 24 * 3600


def test_digest_goes_to_the_outbox_addressed_to_mail_to(tmp_path, make_daemon):
    config = write_config(tmp_path, 'to = ["ops@example.test"]\ndigest = "08:00"')
    daemon = make_daemon(config)

    daemon._send_digest()

    (queued,) = sorted((tmp_path / "state" / "outbox").glob("*.eml"))
    message = email.message_from_bytes(queued.read_bytes(), policy=email.policy.default)
    assert "daily digest" in message["Subject"]
    assert message["To"] == "ops@example.test"
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "root-disk" in body
    assert "If this digest stops arriving" in body


def test_no_digest_job_when_digest_is_off(tmp_path, make_daemon):
    config = write_config(tmp_path, 'to = ["ops@example.test"]')
    daemon = make_daemon(config)

    daemon._schedule_housekeeping()

    assert daemon.scheduler.get_job("digest") is None


def test_start_is_refused_when_nobody_would_get_alerts(tmp_path, make_daemon):
    config = write_config(tmp_path, "to = []")

    with pytest.raises(ConfigError) as caught:
        make_daemon(config)

    assert str(caught.value) == (
        f"{config}: [mail] to: is empty and no check has its own 'to': nobody "
        'would get alerts (set to = ["you@example.com"])'
    )


def test_reload_keeps_unchanged_checks_and_rebuilds_changed_ones(tmp_path, make_daemon):
    config = write_config(tmp_path, 'to = ["ops@example.test"]')
    config.write_text(
        config.read_text() + '\n[[check]]\nname = "cpu"\ntype = "cpu"\nwarning = 90.0\n'
    )
    daemon = make_daemon(config)
    disk_before = daemon.runtime.checks["root-disk"][1]
    cpu_before = daemon.runtime.checks["cpu"][1]

    config.write_text(config.read_text().replace("warning = 90.0", "warning = 80.0"))
    assert daemon.reload()

    # The CPU check measures since its previous run: a reload that did not
    # touch it must not reset that.
    assert daemon.runtime.checks["root-disk"][1] is disk_before
    assert daemon.runtime.checks["cpu"][1] is not cpu_before
    assert daemon.runtime.checks["cpu"][0].options["warning"] == 80.0


def test_a_second_daemon_on_the_same_state_folder_is_refused(tmp_path, make_daemon):
    config = write_config(tmp_path, 'to = ["ops@example.test"]')
    first = make_daemon(config)

    with pytest.raises(TemporaryError) as caught:
        make_daemon(config)

    assert str(caught.value) == (
        f"another notifier run (pid {os.getpid()}) is using {tmp_path / 'state'}; "
        "stop it first, or give this one its own [notifier] state_dir"
    )
    assert caught.value.exit_code == 75
    first.instance.release()
    make_daemon(config)  # free again


def test_an_alert_the_outbox_cannot_take_waits_and_goes_out_later(
    tmp_path, make_daemon
):
    config = write_config(tmp_path, 'to = ["ops@example.test"]\n')
    config.write_text(config.read_text().replace("warning = 100.0", "warning = 0.0"))
    daemon = make_daemon(config)
    outbox = tmp_path / "state" / "outbox"
    outbox.write_text("in the way")  # the outbox folder cannot be made
    spec, check = daemon.runtime.checks["root-disk"]
    daemon._take_result(spec, daemon.runtime.config, check.run(), 0.01)

    daemon._queue_batches(daemon.grouper.drain())
    assert daemon.grouper.pending() == 1  # handed back, not dropped

    outbox.unlink()
    daemon._flush_groups()
    daemon._queue_batches(daemon.grouper.drain())

    (queued,) = outbox.glob("*.eml")
    assert "root-disk" in queued.read_text()
    assert daemon.grouper.pending() == 0
