"""sd_notify messages reach a real unix datagram socket, as systemd's would."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.sdnotify import STATUS_MAX_CHARS, SystemdNotifier

RECEIVE_TIMEOUT = 10.0


class NotifySocket:
    """A datagram socket standing where systemd's notify socket would be."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value

    def receive(self) -> list[str]:
        """Return the fields of the next datagram, in order."""
        data = self.sock.recv(65536)
        return data.decode("utf-8").split("\n")

    def nothing_pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(65536)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(RECEIVE_TIMEOUT)
        return False


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    # A short directory of its own rather than tmp_path: an AF_UNIX path may
    # not exceed 107 bytes, and pytest's tmp_path for a long test name can.
    with tempfile.TemporaryDirectory(prefix="sdn") as folder:
        path = str(Path(folder) / "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.settimeout(RECEIVE_TIMEOUT)
            yield NotifySocket(sock, path)


@pytest.fixture
def abstract_notify_socket() -> Iterator[NotifySocket]:
    name = f"notifier-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(RECEIVE_TIMEOUT)
        yield NotifySocket(sock, "@" + name)


def test_ready_sends_ready_and_one_line_status(notify_socket):
    notifier = SystemdNotifier(notify_socket.env_value)

    sent = notifier.ready("12 checks, 0 firing, 0 queued")

    assert sent is True
    assert notify_socket.receive() == [
        "READY=1",
        "STATUS=12 checks, 0 firing, 0 queued",
    ]


def test_each_message_reaches_systemd_socket_from_environment(
    notify_socket, monkeypatch
):
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.env_value)
    notifier = SystemdNotifier.from_environment()

    notifier.ready()
    notifier.status("12 checks, 1 firing, 0 queued")
    notifier.watchdog()
    notifier.stopping()

    assert notify_socket.receive() == ["READY=1"]
    assert notify_socket.receive() == ["STATUS=12 checks, 1 firing, 0 queued"]
    assert notify_socket.receive() == ["WATCHDOG=1"]
    assert notify_socket.receive() == ["STOPPING=1"]


def test_reloading_carries_monotonic_clock_for_notify_reload(notify_socket):
    notifier = SystemdNotifier(notify_socket.env_value)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    notifier.reloading()

    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = notify_socket.receive()
    assert fields[0] == "RELOADING=1"
    assert fields[1].startswith("MONOTONIC_USEC=")
    assert before <= int(fields[1].removeprefix("MONOTONIC_USEC=")) <= after


def test_status_text_is_flattened_to_one_line(notify_socket):
    notifier = SystemdNotifier(notify_socket.env_value)

    notifier.status("disk full\non /var\r\n\tand\0more")
    notifier.status("x" * (STATUS_MAX_CHARS + 100))

    assert notify_socket.receive() == ["STATUS=disk full on /var and more"]
    assert notify_socket.receive() == ["STATUS=" + "x" * STATUS_MAX_CHARS]


def test_abstract_namespace_socket_receives_messages(abstract_notify_socket):
    notifier = SystemdNotifier(abstract_notify_socket.env_value)

    notifier.ready()
    notifier.watchdog()

    assert abstract_notify_socket.receive() == ["READY=1"]
    assert abstract_notify_socket.receive() == ["WATCHDOG=1"]


def test_without_notify_socket_every_call_is_a_quiet_no_op(monkeypatch, caplog):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SystemdNotifier.from_environment()

    results = [
        notifier.ready("x"),
        notifier.reloading(),
        notifier.status("y"),
        notifier.watchdog(),
        notifier.stopping(),
    ]

    assert notifier.enabled is False
    assert results == [False] * 5
    assert caplog.records == []


def test_send_failure_warns_once_and_again_after_recovery(tmp_path, caplog):
    # A path where nothing listens: what a vanished systemd socket looks like.
    missing = tmp_path / "gone"
    notifier = SystemdNotifier(str(missing))
    caplog.set_level(logging.DEBUG, logger="notifier.sdnotify")

    results = [notifier.watchdog() for _ in range(3)]

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert results == [False, False, False]
    assert len(warnings) == 1
    assert str(missing) in warnings[0].getMessage()

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(missing))
        assert notifier.watchdog() is True
    caplog.clear()
    assert notifier.watchdog() is False
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_unusable_socket_value_disables_with_one_warning(caplog):
    notifier = SystemdNotifier("vsock:2:1234")

    assert notifier.enabled is False
    assert notifier.ready() is False
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "vsock:2:1234" in caplog.records[0].getMessage()


def test_concurrent_senders_each_get_their_datagram_through(notify_socket):
    notifier = SystemdNotifier(notify_socket.env_value)
    results: list[bool] = []

    def ping() -> None:
        for _ in range(25):
            results.append(notifier.watchdog())

    threads = [threading.Thread(target=ping) for _ in range(4)]
    for thread in threads:
        thread.start()
    received = [notify_socket.receive() for _ in range(100)]
    for thread in threads:
        thread.join()

    assert received == [["WATCHDOG=1"]] * 100
    assert results == [True] * 100
    assert notify_socket.nothing_pending()


def test_full_socket_queue_gives_up_instead_of_hanging(notify_socket, caplog):
    # Nobody reads the socket, as when systemd is busy: its queue fills up
    # (net.unix.max_dgram_qlen datagrams) and the next send must give up.
    notifier = SystemdNotifier(notify_socket.env_value, send_timeout=0.05)

    results = []
    while len(results) < 1000 and (not results or results[-1]):
        results.append(notifier.watchdog())
    results.append(notifier.watchdog())

    assert results[0] is True
    assert results[-2:] == [False, False]
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "timed out" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 30.0),
        ("30000000", "self", 30.0),
        ("1500000", None, 1.5),
        ("30000000", "other", None),
        ("30000000", "junk", None),
        (None, None, None),
        ("0", None, None),
        ("-5", None, None),
        ("soon", None, None),
    ],
)
def test_watchdog_interval_from_environment(monkeypatch, usec, pid, expected):
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        elif value == "self":
            monkeypatch.setenv(name, str(os.getpid()))
        elif value == "other":
            monkeypatch.setenv(name, str(os.getpid() + 1))
        else:
            monkeypatch.setenv(name, value)

    notifier = SystemdNotifier.from_environment()

    assert notifier.watchdog_interval() == expected


def test_unset_environment_hides_systemd_from_child_processes(
    notify_socket, monkeypatch
):
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.env_value)
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    notifier = SystemdNotifier.from_environment(unset_environment=True)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('NOTIFY_SOCKET'))"],
        capture_output=True,
        text=True,
        check=True,
    )

    assert child.stdout.strip() == "None"
    assert notifier.watchdog_interval() == 20.0
    assert notifier.ready() is True
    assert notify_socket.receive() == ["READY=1"]


def test_real_process_started_like_systemd_does_reports_ready(notify_socket):
    # WATCHDOG_PID names this test process, not the child: the child must
    # see that the watchdog is not its own.
    env = {
        **os.environ,
        "NOTIFY_SOCKET": notify_socket.env_value,
        "WATCHDOG_USEC": "10000000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    code = (
        "from notifier.sdnotify import SystemdNotifier\n"
        "n = SystemdNotifier.from_environment()\n"
        "n.ready('started')\n"
        "print(n.watchdog_interval())\n"
    )

    child = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    assert notify_socket.receive() == ["READY=1", "STATUS=started"]
    assert child.stdout.strip() == "None"
    assert child.stderr == ""
