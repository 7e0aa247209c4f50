"""``notifier status`` as a user runs it: a subprocess reading a state folder
filled by the real modules (alert store, silences, outbox, sender), and once
against a real running daemon."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tomli_w
from test_digest import fail_delivery
from test_transport import make_message

from notifier import __version__
from notifier.atomicfile import write_atomic
from notifier.checks.base import Result, Status
from notifier.loader import load
from notifier.outbox import Outbox
from notifier.silences import SilenceStore
from notifier.state import AlertStore, advance

pytestmark = pytest.mark.slow

HOST = "web-1.example.test"


def write_config(folder: Path, state_dir: Path | None = None, **extra) -> Path:
    document = {
        "notifier": {
            "hostname": HOST,
            "state_dir": str(state_dir or folder / "state"),
            **extra,
        },
        "mail": {"transport": "file", "to": ["ops@example.test"]},
        "check": [
            {"name": "root-disk", "type": "disk", "path": str(folder)},
            {"name": "memory", "type": "memory"},
            {
                "name": "app-log",
                "type": "logscan",
                "path": str(folder / "app.log"),
                "pattern": "ERROR",
            },
        ],
    }
    path = folder / "notifier.toml"
    path.write_text(tomli_w.dumps(document))
    return path


def status(path, *args, prefix=(), **options):
    return subprocess.run(
        [*prefix, sys.executable, "-m", "notifier", "status", "-c", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **options,
    )


def stamp(moment):
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def write_daemon_status(state_dir, pid, written, records):
    """Write the status file in the daemon's format.

    Stands in for a daemon so that the test chooses its pid and how fresh the
    file is; one test below reads the file a real daemon wrote.
    """
    document = {
        "pid": pid,
        "version": __version__,
        "config": "/etc/notifier/notifier.toml",
        "started": stamp(written - timedelta(hours=5)),
        "written": stamp(written),
        "checks": records,
    }
    data = json.dumps(document, indent=1).encode()
    write_atomic(state_dir / "status.json", data, mode=0o644)


def records_at(now):
    def one(status, summary, value, next_in):
        return {
            "status": status,
            "summary": summary,
            "last_run": stamp(now - timedelta(seconds=3)),
            "duration": 0.01,
            "value": value,
            "next_run": stamp(now + timedelta(seconds=next_in)),
        }

    return {
        "root-disk": one("CRITICAL", "/ is 95% full (4.9GiB free of 98GiB)", 95, 57),
        "memory": one("OK", "\x1b[31m40%\x1b[0m of memory in use", 40, 27),
        "app-log": one("OK", "no new matching lines", 0, 7),
    }


@pytest.fixture
def populated(tmp_path):
    """A state folder as a daemon leaves it after a bad night."""
    (tmp_path / "failing").mkdir()
    path = write_config(tmp_path)
    config = load(path).config
    state_dir = config.notifier.state_dir
    now = datetime.now(UTC)

    store = AlertStore(state_dir)
    bad, events = advance(
        None,
        Result(Status.CRITICAL, "/ is 95% full", value=95.0),
        now - timedelta(hours=2),
        config.check("root-disk"),
        host=HOST,
        mail=config.mail,
    )
    assert events
    store.put("root-disk", bad)
    fine, _ = advance(
        None,
        Result(Status.OK, "40% of memory in use", value=40.0),
        now - timedelta(days=1),
        config.check("memory"),
        host=HOST,
        mail=config.mail,
    )
    store.put("memory", fine)

    SilenceStore(state_dir).add(
        "app-log", now + timedelta(hours=2), "deploy in progress"
    )

    outbox = Outbox.in_state_dir(state_dir)
    outbox.put(make_message("disk full on web-1"))
    dead = outbox.put(make_message("too big"))
    outbox.dead_letter(dead, dead.recipients, "552 5.3.4 message too big", time.time())
    report = fail_delivery(config, tmp_path, state_dir, outbox)
    assert report.error
    return path, state_dir, now


def test_running_daemon_shows_checks_firing_silences_and_outbox(populated):
    path, state_dir, now = populated
    write_daemon_status(state_dir, os.getpid(), datetime.now(UTC), records_at(now))

    result = status(path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"notifier {__version__} is running as pid {os.getpid()}"
    )
    [disk] = [line for line in lines if line.startswith("root-disk ")]
    assert disk.split()[1] == "CRITICAL"
    assert "(2h" in disk and "in " in disk and "/ is 95% full" in disk
    [log_row] = [line for line in lines if line.startswith("app-log ")]
    assert "OK (silenced)" in log_row
    [memory] = [line for line in lines if line.startswith("memory ")]
    assert "(1d" in memory and "40% of memory in use" in memory
    assert "\x1b" not in result.stdout
    assert "firing: 1" in lines
    assert any(line.startswith("  root-disk CRITICAL since ") for line in lines)
    assert "silences: 1" in lines
    assert any(
        "app-log until" in line and "deploy in progress" in line for line in lines
    )
    [outbox] = [line for line in lines if line.startswith("outbox: ")]
    assert outbox.startswith("outbox: 1 queued, the oldest queued ")
    assert outbox.endswith("; 1 failed (`notifier queue list`)")
    [delivery] = [line for line in lines if line.startswith("delivery: failing")]
    assert "(1 attempt)" in delivery and "connection refused" in delivery


def test_json_has_the_same_facts_for_machines(populated):
    path, state_dir, now = populated
    write_daemon_status(state_dir, os.getpid(), datetime.now(UTC), records_at(now))

    result = status(path, "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["daemon"]["running"] is True
    assert report["daemon"]["pid"] == os.getpid()
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["root-disk"]["status"] == "CRITICAL"
    assert checks["root-disk"]["firing"] is True
    since = datetime.fromisoformat(checks["root-disk"]["since"])
    assert since == (now - timedelta(hours=2)).replace(microsecond=0)
    assert checks["app-log"]["silenced_until"] is not None
    assert checks["memory"]["summary"] == "\x1b[31m40%\x1b[0m of memory in use"
    assert [alert["name"] for alert in report["firing"]] == ["root-disk"]
    assert report["silences"][0]["reason"] == "deploy in progress"
    assert report["outbox"]["queued"] == 1
    assert report["outbox"]["failed"] == 1
    assert "connection refused" in report["delivery"]["last_error"]


def finished_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_daemon_gone_exits_69_and_still_shows_what_it_saw(populated):
    path, state_dir, now = populated
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    write_daemon_status(state_dir, finished_pid(), an_hour_ago, records_at(now))

    result = status(path)

    assert result.returncode == 69, result.stderr
    assert result.stdout.startswith("notifier is not running; last seen ")
    assert "(1h" in result.stdout.splitlines()[0]
    assert any(
        line.startswith("root-disk ") and "CRITICAL" in line
        for line in result.stdout.splitlines()
    )
    assert json.loads(status(path, "--json").stdout)["daemon"]["running"] is False


def test_status_file_gone_stale_means_not_running_even_if_the_pid_lives(populated):
    path, state_dir, now = populated
    stale = datetime.now(UTC) - timedelta(minutes=5)
    write_daemon_status(state_dir, os.getpid(), stale, records_at(now))

    result = status(path)

    assert result.returncode == 69
    assert "not running; last seen" in result.stdout
    assert "(5m" in result.stdout


def test_never_started_says_so(tmp_path):
    path = write_config(tmp_path)

    result = status(path)

    assert result.returncode == 69
    assert result.stdout.startswith("notifier is not running; never seen")
    assert "PENDING" in result.stdout
    assert "outbox: 0 queued; 0 failed" in result.stdout


def test_broken_config_exits_78_with_one_line(tmp_path):
    path = tmp_path / "notifier.toml"
    path.write_text('[notifier]\nworkers = "many"\n')

    result = status(path)

    assert result.returncode == 78
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "[notifier] workers" in line


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root to run the command as another user",
)
def test_unreadable_state_folder_exits_77_not_not_running():
    with tempfile.TemporaryDirectory(dir="/tmp") as name:
        folder = Path(name)
        folder.chmod(0o755)
        path = write_config(folder)
        path.chmod(0o644)
        state_dir = folder / "state"
        state_dir.mkdir(mode=0o700)
        write_daemon_status(state_dir, os.getpid(), datetime.now(UTC), {})

        nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
        result = status(path, prefix=nobody)

    assert result.returncode == 77, result.stderr
    assert f"cannot read the state folder {state_dir}" in result.stderr
    assert "Traceback" not in result.stderr


def test_against_a_real_daemon(tmp_path):
    path = write_config(tmp_path)
    (tmp_path / "app.log").write_text("")
    log = tmp_path / "daemon.log"
    with log.open("w") as stderr:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "notifier", "run", "-c", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 30
        result = status(path)
        while result.returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            result = status(path)

        assert result.returncode == 0, result.stdout + log.read_text()
        assert f"is running as pid {daemon.pid}" in result.stdout
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)

    after = status(path)
    assert after.returncode == 69
    assert "not running; last seen" in after.stdout


def test_a_reader_that_goes_away_ends_the_output_quietly(populated):
    path, _state_dir, _now = populated
    # `notifier status | head -1`: the reader closes the pipe after one line.
    reader, writer = os.pipe()
    os.close(reader)

    finished = subprocess.run(
        [sys.executable, "-m", "notifier", "status", "-c", str(path), "--json"],
        stdout=writer,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    os.close(writer)

    assert finished.returncode == 141
    assert finished.stderr == ""
