"""``notifier queue`` as a user runs it: subprocesses over a real outbox, and a
real aiosmtpd server for ``flush``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading

import pytest
from smtp_server import reserve_port
from test_transport import make_message, smtp_table, write_config

from notifier.delivery import Sender
from notifier.loader import load
from notifier.outbox import Outbox
from notifier.transport import create_transport

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


# Found by the audit -----------------------------------------------------


def test_parts_refused_and_deferred_have_ids_of_their_own(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="implicit")
    server.handler.rcpt_replies["gone@example.test"] = "550 5.1.1 no such user"
    server.handler.rcpt_replies["busy@example.test"] = "450 4.2.1 mailbox busy"
    path = write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    outbox = Outbox.in_state_dir(tmp_path / "state")
    entry = outbox.put(
        make_message(to="ops@example.test, gone@example.test, busy@example.test")
    )
    loaded = load(path)
    transport = create_transport(loaded.config, loaded.registry.transport_map())
    Sender(loaded.config, transport, outbox).deliver_due()

    listing = queue(path, "list")

    [queued] = outbox.entries()
    [dead] = outbox.failed()
    assert (queued.id, queued.recipients) == (entry.id, ("busy@example.test",))
    assert (dead.id, dead.recipients) == (f"{entry.id}-r1", ("gone@example.test",))
    ids = [line.split()[0] for line in listing.stdout.splitlines()[1:] if line]
    assert ids.count(queued.id) == 1
    assert ids.count(dead.id) == 1

    retried = queue(path, "retry", dead.id)
    assert retried.returncode == 0, retried.stderr
    assert f"{dead.id} 'disk full' is due now for gone@example.test" in retried.stdout
    dropped = queue(path, "drop", entry.id)
    assert dropped.returncode == 0, dropped.stderr
    assert f"dropped queued message {entry.id} " in dropped.stdout

    [left] = outbox.entries()
    assert (left.id, left.recipients) == (dead.id, ("gone@example.test",))
    assert outbox.failed() == []


def test_list_during_an_outage_shows_attempts_error_and_next_try(tmp_path, ca_file):
    with reserve_port() as holder:
        table = {
            "host": "127.0.0.1",
            "port": holder.getsockname()[1],
            "ca_file": str(ca_file),
        }
        path = write_config(tmp_path, smtp=table)
        outbox = Outbox.in_state_dir(tmp_path / "state")
        tried = outbox.put(make_message("tried twice"))
        for _ in range(2):
            assert queue(path, "flush").returncode == 69
        later = outbox.put(make_message("queued during the outage"))

    listing = queue(path, "list")

    assert listing.returncode == 0, listing.stderr
    [row] = [line for line in listing.stdout.splitlines() if line.startswith(tried.id)]
    assert row.split()[2] == "2"  # attempts
    assert "connection refused" in row
    assert " in " in row and " due " not in row
    [row] = [line for line in listing.stdout.splitlines() if line.startswith(later.id)]
    assert " in " in row and " due " not in row


def test_retry_and_drop_do_not_wait_for_a_hung_server(
    hanging_server, tmp_path, ca_file
):
    server = hanging_server()
    table = {
        "host": server.host,
        "port": server.port,
        "ca_file": str(ca_file),
        "timeout": "5m",
    }
    path = write_config(tmp_path, smtp=table)
    outbox = Outbox.in_state_dir(tmp_path / "state")
    keep = outbox.put(make_message("keep me"))
    gone = outbox.put(make_message("drop me"))
    loaded = load(path)
    transport = create_transport(loaded.config, loaded.registry.transport_map())
    sender = Sender(loaded.config, transport, outbox)
    reports = []
    delivering = threading.Thread(target=lambda: reports.append(sender.deliver_due()))
    delivering.start()
    assert server.accepted.wait(30)

    # The sender now waits for the server, which will never answer: the
    # commands must not wait for it (the outbox lock is not held).
    dropped = queue(path, "drop", gone.id)
    retried = queue(path, "retry", keep.id)

    assert dropped.returncode == 0, dropped.stderr
    assert retried.returncode == 0, retried.stderr
    assert delivering.is_alive()
    server.release()
    delivering.join(30)
    [report] = reports
    assert report.error_kind == "transient"
    # The dropped message stays dropped; the other keeps the error.
    [left] = outbox.entries()
    assert left.id == keep.id
    assert left.attempts == 1
    assert left.last_error == report.error
