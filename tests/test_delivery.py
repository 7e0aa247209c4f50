"""The sender against a real aiosmtpd server over TLS, time driven by a clock
the test holds (no sleeps): backoff, refusals, recovery, crash safety."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from smtp_server import reserve_port
from test_transport import make_message, smtp_table, write_config

from notifier.delivery import Sender, backoff_delay, read_status
from notifier.loader import load
from notifier.outbox import Outbox
from notifier.transport import create_transport

T0 = 1_800_000_000.0


class Clock:
    """The time as the test decides it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_sender(path, clock, chance=lambda: 0.5):
    loaded = load(path)
    transport = create_transport(loaded.config, loaded.registry.transport_map())
    outbox = Outbox.in_state_dir(loaded.config.notifier.state_dir)
    return Sender(loaded.config, transport, outbox, clock=clock, chance=chance), outbox


def subjects(server):
    return [received.message()["Subject"] for received in server.messages]


def test_backoff_doubles_up_to_the_maximum_with_bounded_jitter():
    assert [backoff_delay(step, 60, 3600, 0.0) for step in range(1, 9)] == [
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert backoff_delay(1, 60, 3600, 0.999) == pytest.approx(48, abs=0.1)


@pytest.mark.parametrize("refusals", [1, 3])
def test_refused_login_backs_off_then_delivers_each_alert_once(
    smtp_server, ca_file, tmp_path, caplog, refusals
):
    server = smtp_server(tls="implicit", refuse_logins=refusals)
    clock = Clock()
    path = write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    sender, outbox = make_sender(path, clock, chance=lambda: 0.25)
    for number in range(3):
        outbox.put(make_message(f"alert {number}"), now=clock.now)

    # Each backoff step costs exactly one login, whatever the queue holds.
    expected_waits = []
    with caplog.at_level(logging.WARNING):
        for step in range(1, refusals + 1):
            report = sender.deliver_due()
            assert "535" in report.error
            assert len(server.logins) == step
            wait = read_status(tmp_path / "state").next_try - clock.now
            expected = 60 * 2 ** (step - 1) * (1 - 0.2 * 0.25)
            assert wait == pytest.approx(expected)
            expected_waits.append(wait)

            # Before the step is over nothing is tried, however often we ask.
            clock.now += wait - 1
            waiting = sender.deliver_due()
            assert not waiting.sent and not waiting.error
            assert len(server.logins) == step
            clock.now += 1

        report = sender.deliver_due()

    assert len(server.logins) == refusals + 1
    assert server.logins[-1].accepted
    assert sorted(subjects(server)) == ["alert 0", "alert 1", "alert 2"]
    assert outbox.entries() == []
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == refusals
    assert "535" in critical[0].getMessage()
    assert "3 message(s) queued" in critical[0].getMessage()

    # The first message out says what was delayed; a minute late, all say so.
    first = server.messages[0].message()
    assert (
        "Mail delivery from this host was failing"
        in first.get_body(("plain",)).get_content()
    )
    late = clock.now - T0 >= 60
    for received in server.messages:
        assert bool(received.message()["X-Notifier-Queued-Since"]) is late
    assert read_status(tmp_path / "state").failing_since is None

    # Nothing more goes out later.
    clock.now += 7200
    sender.deliver_due()
    assert len(server.messages) == 3


def test_status_file_says_what_is_failing(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit", refuse_logins=10)
    clock = Clock()
    sender, outbox = make_sender(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path)), clock
    )
    outbox.put(make_message(), now=clock.now)
    outbox.put(make_message("second"), now=clock.now)

    sender.deliver_due()

    status = read_status(tmp_path / "state")
    assert status.failing_since == T0
    assert status.kind == "auth"
    assert "535" in status.last_error
    assert status.queued == 2
    assert status.oldest_queued == T0
    assert T0 + 48 <= status.next_try <= T0 + 60


def test_server_down_then_up(server_cert, ca_file, tmp_path):
    from smtp_server import SmtpServer

    clock = Clock()
    holder = reserve_port()
    port = holder.getsockname()[1]
    table = {
        "host": "127.0.0.1",
        "port": port,
        "security": "ssl",
        "ca_file": str(ca_file),
        "timeout": "5s",
    }
    sender, outbox = make_sender(write_config(tmp_path, smtp=table), clock)
    outbox.put(make_message("while down"), now=clock.now)

    report = sender.deliver_due()

    assert "connection refused" in report.error
    assert [entry.subject for entry in outbox.entries()] == ["while down"]
    holder.close()
    with SmtpServer(tls="implicit", cert=server_cert, port=port) as server:
        clock.now = read_status(tmp_path / "state").next_try
        report = sender.deliver_due()

        assert subjects(server) == ["while down"]
    assert report.sent and not report.error
    assert outbox.entries() == []


def test_size_refusal_moves_the_message_to_failed_and_the_batch_goes_on(
    smtp_server, ca_file, tmp_path, caplog
):
    server = smtp_server(tls="implicit")
    server.handler.data_replies.append("552 5.3.4 message size exceeds limit")
    clock = Clock()
    sender, outbox = make_sender(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path)), clock
    )
    big = outbox.put(make_message("too big"), now=clock.now)
    outbox.put(make_message("fine"), now=clock.now + 1)
    clock.now += 1

    with caplog.at_level(logging.ERROR):
        report = sender.deliver_due()

    assert report.failed == [big.id]
    assert subjects(server) == ["fine"]
    assert outbox.entries() == []
    [dead] = outbox.failed()
    assert "552" in dead.last_error
    assert any(
        r.levelno == logging.ERROR and "too big" in r.getMessage()
        for r in caplog.records
    )


def test_recipient_refused_for_good_does_not_repeat_to_the_other(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="implicit")
    server.handler.rcpt_replies["gone@example.test"] = "550 5.1.1 no such user"
    clock = Clock()
    sender, outbox = make_sender(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path)), clock
    )
    outbox.put(make_message(to="ops@example.test, gone@example.test"), now=clock.now)

    sender.deliver_due()
    clock.now += 86400
    sender.deliver_due()

    assert [m.rcpt_tos for m in server.messages] == [("ops@example.test",)]
    assert outbox.entries() == []
    [dead] = outbox.failed()
    assert dead.recipients == ("gone@example.test",)
    assert "no such user" in dead.reasons["gone@example.test"]


def test_recipient_refused_for_now_gets_it_later_alone(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit")
    server.handler.rcpt_replies["full@example.test"] = "452 4.2.2 mailbox full"
    clock = Clock()
    sender, outbox = make_sender(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path)), clock
    )
    outbox.put(make_message(to="ops@example.test, full@example.test"), now=clock.now)

    report = sender.deliver_due()
    [waiting] = outbox.entries()
    assert waiting.recipients == ("full@example.test",)
    assert report.retrying == [waiting.id]
    del server.handler.rcpt_replies["full@example.test"]
    clock.now = waiting.next_try
    sender.deliver_due()

    assert [m.rcpt_tos for m in server.messages] == [
        ("ops@example.test",),
        ("full@example.test",),
    ]
    assert outbox.entries() == []


def test_temporary_refusal_of_one_message_leaves_the_others_going(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="implicit")
    server.handler.data_replies.append("451 4.3.0 try again later")
    clock = Clock()
    sender, outbox = make_sender(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path)), clock
    )
    slow = outbox.put(make_message("first"), now=clock.now)
    outbox.put(make_message("second"), now=clock.now + 1)
    clock.now += 1

    report = sender.deliver_due()

    assert report.retrying == [slow.id]
    assert subjects(server) == ["second"]
    [waiting] = outbox.entries()
    assert waiting.attempts == 1
    assert "451" in waiting.last_error
    assert read_status(tmp_path / "state").failing_since is None


def test_untrusted_certificate_keeps_the_message_queued(smtp_server, tmp_path):
    server = smtp_server(tls="implicit")
    clock = Clock()
    sender, outbox = make_sender(
        write_config(tmp_path, smtp=smtp_table(server, None, tmp_path)), clock
    )
    outbox.put(make_message(), now=clock.now)

    report = sender.deliver_due()

    assert "certificate not verified" in report.error
    assert len(outbox.entries()) == 1
    assert server.messages == []


def test_messages_older_than_max_age_move_to_failed(tmp_path, ca_file):
    clock = Clock()
    with reserve_port() as holder:
        table = {
            "host": "127.0.0.1",
            "port": holder.getsockname()[1],
            "ca_file": str(ca_file),
        }
        path = write_config(tmp_path, smtp=table, mail={"max_age": "1h"})
        sender, outbox = make_sender(path, clock)
        outbox.put(make_message("stale"), now=clock.now)
        sender.deliver_due()
        clock.now += 3601
        report = sender.deliver_due()

    assert outbox.entries() == []
    [dead] = outbox.failed()
    assert report.failed == [dead.id]
    assert "undelivered after 1h" in dead.last_error
    assert "connection refused" in dead.last_error


def test_flush_ignores_the_backoff(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit", refuse_logins=1)
    clock = Clock()
    sender, outbox = make_sender(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path)), clock
    )
    outbox.put(make_message(), now=clock.now)
    sender.deliver_due()

    sender.deliver_due(force=True)

    assert len(server.messages) == 1


def test_file_transport_through_the_outbox(tmp_path):
    clock = Clock()
    folder = tmp_path / "mail"
    path = write_config(
        tmp_path, mail={"transport": "file"}, file={"directory": str(folder)}
    )
    sender, outbox = make_sender(path, clock)
    outbox.put(make_message(), now=clock.now)

    report = sender.deliver_due()

    assert len(report.sent) == 1
    assert len(list(folder.glob("*.eml"))) == 1
    assert outbox.sent()[0].endswith("<disk-full@web-1.example.test>")


SENDER_SCRIPT = textwrap.dedent(
    """
    import email.policy, pathlib, sys, time
    from email.message import EmailMessage
    from notifier.delivery import Sender
    from notifier.loader import load
    from notifier.outbox import Outbox
    from notifier.transport import create_transport

    loaded = load(pathlib.Path(sys.argv[1]))
    outbox = Outbox.in_state_dir(loaded.config.notifier.state_dir)
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "notifier@web-1.example.test"
    message["To"] = "ops@example.test"
    message["Subject"] = "survives a kill"
    message.set_content("body\\n")
    outbox.put(message)
    print("queued", flush=True)
    if sys.argv[2] == "pause":
        time.sleep(60)
    transport = create_transport(loaded.config, loaded.registry.transport_map())
    Sender(loaded.config, transport, outbox).deliver_due()
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["after queueing", "mid-transaction"])
def test_message_survives_sigkill_and_goes_out_after_restart(
    smtp_server, ca_file, tmp_path, moment
):
    server = smtp_server(tls="implicit")
    server.handler.hold_data = moment == "mid-transaction"
    path = write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    script = tmp_path / "send.py"
    script.write_text(SENDER_SCRIPT)
    process = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(path),
            "pause" if moment == "after queueing" else "go",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "queued"
    if moment == "mid-transaction":
        assert server.handler.holding.wait(20)

    os.kill(process.pid, signal.SIGKILL)
    process.wait(20)
    process.stdout.close()
    server.handler.hold_data = False
    server.handler.release.set()
    assert server.messages == []

    # After the restart: the daemon's sender, here `notifier queue flush`.
    flushed = subprocess.run(
        [sys.executable, "-m", "notifier", "queue", "flush", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert flushed.returncode == 0, flushed.stderr
    assert subjects(server) == ["survives a kill"]


class BrokenTransport:
    """A plugin transport that breaks the contract by raising a plain error,
    as smtplib did on a non-ASCII password: the text quotes the password."""

    def describe(self):
        return "broken plugin"

    def session(self):
        auth_line = "\0alerts@example.test\0pässwörd"
        raise UnicodeEncodeError("ascii", auth_line, 22, 23, "ordinal not in range")


def test_a_transport_raising_anything_is_a_failure_not_a_crash(tmp_path, caplog):
    clock = Clock()
    loaded = load(write_config(tmp_path))
    outbox = Outbox.in_state_dir(loaded.config.notifier.state_dir)
    sender = Sender(loaded.config, BrokenTransport(), outbox, clock=clock)
    outbox.put(make_message(), now=clock.now)

    with caplog.at_level(logging.DEBUG):
        report = sender.deliver_due()

    assert "broken plugin raised UnicodeEncodeError while opening a session" in (
        report.error
    )
    assert len(outbox.entries()) == 1
    assert sender.next_wakeup() == read_status(tmp_path / "state").next_try > clock.now
    # Nothing of the error's text (which quotes the password) is kept or
    # logged, not even at DEBUG: only its type and the step.
    status_text = (tmp_path / "state" / "delivery.json").read_text()
    [entry] = outbox.entries()
    for where in (report.error, status_text, caplog.text, entry.last_error):
        assert "\\xe4" not in where and "ä" not in where
        assert "position" not in where
        assert "pässwörd" not in where
    assert "UnicodeEncodeError" in caplog.text


def test_next_wakeup_follows_the_earliest_message(tmp_path):
    clock = Clock()
    sender, outbox = make_sender(
        write_config(tmp_path, mail={"transport": "file"}), clock
    )
    assert sender.next_wakeup() is None

    outbox.put(make_message(), now=clock.now + 30)

    assert sender.next_wakeup() == clock.now + 30


# Found by the audit -----------------------------------------------------


def test_non_ascii_password_delivers(smtp_server, ca_file, tmp_path):
    from test_transport import password_file

    password = "pässwörd"  # noqa: S105 - the test server's
    server = smtp_server(tls="implicit", password=password)
    clock = Clock()
    table = smtp_table(server, ca_file, tmp_path)
    password_file(tmp_path, text=password)
    sender, outbox = make_sender(write_config(tmp_path, smtp=table), clock)
    outbox.put(make_message(), now=clock.now)

    report = sender.deliver_due()

    assert not report.error
    assert subjects(server) == ["disk full"]
    assert server.logins[-1].accepted


def test_backoff_counts_from_when_the_failure_was_seen(
    hanging_server, ca_file, tmp_path, caplog
):
    clock = Clock()

    def thirty_seconds_pass():
        # The server keeps the client waiting 30 s (on the test's clock) and
        # then hangs up without a word; the attempt ends after that.
        clock.now += 30

    server = hanging_server(on_accept=thirty_seconds_pass, hold=False)
    table = {
        "host": server.host,
        "port": server.port,
        "ca_file": str(ca_file),
        "timeout": "5s",
    }
    path = write_config(tmp_path, smtp=table, mail={"retry_initial": "3s"})
    sender, outbox = make_sender(path, clock, chance=lambda: 0.0)
    outbox.put(make_message(), now=clock.now)

    with caplog.at_level(logging.CRITICAL):
        report = sender.deliver_due()

    assert report.error
    assert server.connections == 1
    failed_at = T0 + 30
    assert read_status(tmp_path / "state").next_try == failed_at + 3
    assert "next try in 3s" in caplog.text
    [entry] = outbox.entries()
    assert entry.next_try == failed_at + 3

    clock.now = failed_at + 2
    sender.deliver_due()
    assert server.connections == 1

    clock.now = failed_at + 3
    sender.deliver_due()
    assert server.connections == 2


def test_messages_held_back_by_an_outage_say_why_and_when(tmp_path, ca_file):
    clock = Clock()
    with reserve_port() as holder:
        table = {
            "host": "127.0.0.1",
            "port": holder.getsockname()[1],
            "ca_file": str(ca_file),
        }
        sender, outbox = make_sender(write_config(tmp_path, smtp=table), clock)
        outbox.put(make_message("first"), now=clock.now)
        outbox.put(make_message("second"), now=clock.now)
        for _ in range(3):
            sender.deliver_due()
            clock.now = read_status(tmp_path / "state").next_try

    status = read_status(tmp_path / "state")
    entries = outbox.entries()
    assert [entry.attempts for entry in entries] == [3, 3]
    for entry in entries:
        assert "connection refused" in entry.last_error
        assert entry.next_try == status.next_try


def test_partial_delivery_records_the_message_id_once(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit")
    server.handler.rcpt_replies["full@example.test"] = "452 4.2.2 mailbox full"
    clock = Clock()
    sender, outbox = make_sender(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path)), clock
    )
    outbox.put(make_message(to="ops@example.test, full@example.test"), now=clock.now)

    report = sender.deliver_due()

    assert report.partly_sent == report.retrying
    [line] = outbox.sent()
    assert line.endswith(" <disk-full@web-1.example.test>")
    [waiting] = outbox.entries()
    assert waiting.delivered_to == ("ops@example.test",)

    del server.handler.rcpt_replies["full@example.test"]
    clock.now = waiting.next_try
    sender.deliver_due()

    assert [m.rcpt_tos for m in server.messages] == [
        ("ops@example.test",),
        ("full@example.test",),
    ]
    assert outbox.sent() == [line]
    assert read_status(tmp_path / "state").last_success == clock.now


def test_login_the_server_cannot_check_now_backs_off_then_delivers(
    smtp_server, ca_file, tmp_path, caplog
):
    server = smtp_server(tls="implicit", refuse_logins=1)
    server.authenticator.refusal_reply = "454 4.7.0 Temporary authentication failure"
    clock = Clock()
    sender, outbox = make_sender(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path)), clock
    )
    outbox.put(make_message(), now=clock.now)

    with caplog.at_level(logging.CRITICAL):
        report = sender.deliver_due()

    assert report.error_kind == "transient"
    assert "could not check the login right now" in report.error
    assert "could not check the login right now: 454 4.7.0" in caplog.text
    assert "password_file" not in caplog.text
    status = read_status(tmp_path / "state")
    assert status.kind == "transient"

    clock.now = status.next_try
    sender.deliver_due()

    assert subjects(server) == ["disk full"]
    assert len(server.logins) == 2


def test_outage_note_is_wrapped_to_the_body_width(tmp_path, server_cert, ca_file):
    from smtp_server import SmtpServer

    clock = Clock()
    holder = reserve_port()
    port = holder.getsockname()[1]
    table = {"host": "127.0.0.1", "port": port, "ca_file": str(ca_file)}
    sender, outbox = make_sender(write_config(tmp_path, smtp=table), clock)
    outbox.put(make_message("held back"), now=clock.now)
    sender.deliver_due()
    holder.close()

    with SmtpServer(tls="implicit", cert=server_cert, port=port) as server:
        clock.now = read_status(tmp_path / "state").next_try
        sender.deliver_due()
        [received] = server.messages

    body = received.message().get_body(("plain",)).get_content()
    note = body.split("\n\n")[0]
    assert note.startswith("Mail delivery from this host was failing from")
    assert "connection refused" in " ".join(note.split())
    assert len(note.splitlines()) > 2
    assert max(len(line) for line in body.splitlines()) <= 78


def test_a_sent_log_that_cannot_be_written_never_sends_a_message_twice(tmp_path):
    clock = Clock()
    folder = tmp_path / "mail"
    path = write_config(
        tmp_path, mail={"transport": "file"}, file={"directory": str(folder)}
    )
    sender, outbox = make_sender(path, clock)
    outbox.put(make_message(), now=clock.now)
    outbox.sent_log.mkdir()  # in the way of the file: no permission stops root

    report = sender.deliver_due()
    clock.now += 7200
    sender.deliver_due()

    assert len(list(folder.glob("*.eml"))) == 1
    assert outbox.entries() == []
    assert "Is a directory" in report.error
    assert str(outbox.sent_log) in report.error
