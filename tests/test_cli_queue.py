"""``notifier queue`` as a user runs it: subprocesses over a real outbox, and a
real aiosmtpd server for ``flush``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from smtp_server import reserve_port
from test_transport import make_message, smtp_table, write_config

from notifier.outbox import Outbox

pytestmark = pytest.mark.slow


def queue(path, *args):
    return subprocess.run(
        [sys.executable, "-m", "notifier", "queue", *args, "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_list_of_an_empty_outbox(tmp_path):
    result = queue(write_config(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "the outbox is empty" in result.stdout


def test_list_shows_queued_and_failed_messages(tmp_path):
    path = write_config(tmp_path)
    outbox = Outbox.in_state_dir(tmp_path / "state")
    waiting = outbox.put(make_message("disk full on web-1"))
    dead = outbox.put(make_message("too big"))
    outbox.dead_letter(dead, dead.recipients, "552 5.3.4 message too big", dead.created)

    result = queue(path, "list")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "AGE",
        "ATTEMPTS",
        "NEXT",
        "TRY",
        "LAST",
        "ERROR",
        "SUBJECT",
    ]
    [row] = [line for line in lines if line.startswith(waiting.id)]
    assert "due" in row and "disk full on web-1" in row
    [row] = [line for line in lines if line.startswith(dead.id)]
    assert "failed" in row and "552 5.3.4 message too big" in row
    assert "1 queued, 1 failed" in result.stdout


def test_drop_unknown_id_exits_64_naming_the_known_ones(tmp_path):
    path = write_config(tmp_path)
    entry = Outbox.in_state_dir(tmp_path / "state").put(make_message())

    result = queue(path, "drop", "no-such-id")

    assert result.returncode == 64
    assert "no message 'no-such-id'" in result.stderr
    assert entry.id in result.stderr


def test_drop_removes_one_and_says_which(tmp_path):
    path = write_config(tmp_path)
    outbox = Outbox.in_state_dir(tmp_path / "state")
    keep = outbox.put(make_message("keep me"))
    gone = outbox.put(make_message("drop me"))

    result = queue(path, "drop", gone.id)

    assert result.returncode == 0, result.stderr
    assert f"dropped queued message {gone.id} 'drop me'" in result.stdout
    assert [entry.id for entry in outbox.entries()] == [keep.id]


def test_retry_brings_a_failed_message_back(tmp_path):
    path = write_config(tmp_path)
    outbox = Outbox.in_state_dir(tmp_path / "state")
    entry = outbox.put(make_message("again"))
    outbox.dead_letter(entry, entry.recipients, "550 nope", entry.created)

    result = queue(path, "retry", entry.id)

    assert result.returncode == 0, result.stderr
    assert "'again' is due now" in result.stdout
    assert [e.id for e in outbox.entries()] == [entry.id]
    assert outbox.failed() == []


def test_flush_delivers_now_ignoring_next_try(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit")
    path = write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    outbox = Outbox.in_state_dir(tmp_path / "state")
    entry = outbox.put(make_message("flushed"))
    outbox.update(dataclasses.replace(entry, next_try=entry.created + 3600))

    result = queue(path, "flush")

    assert result.returncode == 0, result.stderr
    assert "1 sent" in result.stdout
    assert [m.message()["Subject"] for m in server.messages] == ["flushed"]
    assert outbox.entries() == []


def test_flush_with_the_server_down_exits_69_and_keeps_the_message(tmp_path, ca_file):
    with reserve_port() as holder:
        table = {
            "host": "127.0.0.1",
            "port": holder.getsockname()[1],
            "ca_file": str(ca_file),
        }
        path = write_config(tmp_path, smtp=table)
        outbox = Outbox.in_state_dir(tmp_path / "state")
        outbox.put(make_message())
        result = queue(path, "flush")

    assert result.returncode == 69
    assert "connection refused" in result.stderr
    assert len(outbox.entries()) == 1
    listing = queue(path, "list")
    assert "delivery failing for" in listing.stdout


def test_flush_with_login_refused_exits_77(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit", refuse_logins=1)
    path = write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    Outbox.in_state_dir(tmp_path / "state").put(make_message())

    result = queue(path, "flush")

    assert result.returncode == 77
    assert "535" in result.stderr
