"""`notifier run` as a real subprocess: alerts, reloads, signals, systemd, isolation.

Every test starts the daemon the way systemd would, with a configuration in
a temporary folder, and watches what a sysadmin would see: mail arriving at a
real TLS SMTP server (aiosmtpd with a trustme CA), .eml files, the exit
status, sd_notify datagrams on a real unix socket.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from smtp_server import PASSWORD, USERNAME, SmtpServer

pytestmark = pytest.mark.slow

PASSWORD_ENV = "NOTIFIER_TEST_SMTP_PASSWORD"  # noqa: S105 - a variable name

# A drop-in plugin with two check types: "tick" appends a line to a file on
# every run (so a test can see the scheduler keep time) and "hang" blocks
# until the process ends (a check that never returns).
PLUGIN = '''
"""Test check types for the daemon tests."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from notifier import CheckType, Option, Result, Status, hookimpl


class Tick:
    def __init__(self, context):
        self.path = Path(context.options["file"])

    def run(self):
        with self.path.open("a") as handle:
            handle.write(f"{time.time()}\\n")
        return Result(Status.OK, "tick")


class Hang:
    def __init__(self, context):
        pass

    def run(self):
        threading.Event().wait()


@hookimpl
def notifier_check_types():
    return [
        CheckType("tick", Tick, (Option("file", "path", required=True),)),
        CheckType("hang", Hang),
    ]
'''


def wait_for(condition: Callable[[], object], what: str, limit: float = 30.0) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``limit`` s.

    The limit is generous on purpose: it bounds a broken run, it does not
    measure speed (machines here are shared and noisy).
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    logs = "\n".join(f"--- {d.log_path.name}:\n{d.log[-6000:]}" for d in _running)
    pytest.fail(f"timed out waiting for {what}\n{logs}")


_running: list[Daemon] = []
"""Daemons of the test under way, whose logs a failed wait shows."""


class Daemon:
    """One `notifier run` subprocess with its stderr kept in a file."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = config.parent / f"daemon-{time.monotonic_ns()}.log"
        environment = {**os.environ, PASSWORD_ENV: PASSWORD, **(env or {})}
        environment.pop("NOTIFIER_CONFIG", None)
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "notifier", "run", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, limit: float = 20.0) -> int:
        try:
            return self.process.wait(limit)
        except subprocess.TimeoutExpired:
            pytest.fail(f"daemon still running after {limit}s; its log:\n{self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(config: Path, env: dict[str, str] | None = None) -> Daemon:
        daemon = Daemon(config, env)
        started.append(daemon)
        _running.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
    _running.clear()


def write_config(
    folder: Path,
    *,
    checks: str,
    smtp_port: int | None = None,
    ca_file: Path | None = None,
    extra_notifier: str = "",
    smtp_timeout: str = "5s",
) -> Path:
    """Write a configuration for a daemon under test; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    plugins = folder / "plugins"
    plugins.mkdir(mode=0o755, exist_ok=True)
    (plugins / "testchecks.py").write_text(PLUGIN)
    if smtp_port is None:
        mail = 'transport = "file"'
        smtp = ""
    else:
        mail = 'transport = "smtp"'
        smtp = textwrap.dedent(
            f"""
            [smtp]
            host = "127.0.0.1"
            port = {smtp_port}
            security = "ssl"
            username = "{USERNAME}"
            password_env = "{PASSWORD_ENV}"
            ca_file = "{ca_file}"
            timeout = "{smtp_timeout}"
            """
        )
    text = textwrap.dedent(
        f"""
        [notifier]
        hostname = "web-1.example.test"
        state_dir = "{folder / "state"}"
        plugin_dirs = ["{plugins}"]
        group_wait = "300ms"
        log_level = "debug"
        {extra_notifier}

        [mail]
        {mail}
        to = ["ops@example.test"]
        retry_initial = "500ms"
        retry_max = "1s"

        [file]
        directory = "{folder / "mail"}"
        {smtp}
        """
    )
    path = folder / "notifier.toml"
    path.write_text(text + textwrap.dedent(checks))
    path.chmod(0o600)
    return path


def eml_messages(folder: Path) -> list[email.message.EmailMessage]:
    mail = folder / "mail"
    if not mail.is_dir():
        return []
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(mail.glob("*.eml"))
    ]


def subjects(folder: Path) -> list[str]:
    return [str(message["Subject"]) for message in eml_messages(folder)]


def disk_check(folder: Path, threshold: float, every: str = "500ms") -> str:
    """A disk check on ``folder`` (a temporary directory) at ``threshold``%."""
    return f"""
    [[check]]
    name = "scratch"
    type = "disk"
    path = "{folder}"
    every = "{every}"
    warning = {threshold}
    critical = {threshold}
    """


def test_log_lines_appended_give_exactly_one_email_with_the_log_attached(
    tmp_path, smtp_server, ca_file, start_daemon
):
    server: SmtpServer = smtp_server(tls="implicit")
    log_file = tmp_path / "app.log"
    log_file.write_text("starting up\n")
    config = write_config(
        tmp_path / "run",
        smtp_port=server.port,
        ca_file=ca_file,
        checks=f"""
        [[check]]
        name = "app-errors"
        type = "logscan"
        path = "{log_file}"
        pattern = "ERROR"
        every = "300ms"
        critical = 1
        warning = 1
        repeat = "0"
        """,
    )
    daemon = start_daemon(config)
    wait_for(lambda: "started with 1 checks" in daemon.log, "the daemon to start")
    time.sleep(1)  # a few runs see nothing new

    with log_file.open("a") as handle:
        handle.write("all good\nERROR disk controller reset\nmore good\n")

    wait_for(lambda: server.messages, "the alert to arrive")
    time.sleep(2)  # later runs must not send it again
    assert len(server.messages) == 1
    message = server.messages[0].message()
    assert message["Subject"].startswith("[notifier] CRITICAL web-1.example.test: ")
    assert "app-errors" in message["Subject"]
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "ERROR disk controller reset" in body
    attached = {part.get_filename(): part for part in message.iter_attachments()}
    assert any(name and name.startswith("app.log") for name in attached), attached
    assert server.messages[0].rcpt_tos == ("ops@example.test",)


def test_disk_problem_then_recovery_after_sighup_with_a_raised_threshold(
    tmp_path, start_daemon
):
    folder = tmp_path / "run"
    config = write_config(folder, checks=disk_check(tmp_path, 0.0))
    daemon = start_daemon(config)
    wait_for(
        lambda: any("PROBLEM" in s or "CRITICAL" in s for s in subjects(folder)),
        "the PROBLEM email",
    )
    assert len(eml_messages(folder)) == 1

    config.write_text(
        config.read_text()
        .replace("warning = 0.0", "warning = 100.0")
        .replace("critical = 0.0", "critical = 100.0")
    )
    daemon.signal(signal.SIGHUP)

    wait_for(
        lambda: any("RECOVERY" in s for s in subjects(folder)), "the RECOVERY email"
    )
    assert "reloaded: 1 checks" in daemon.log
    assert daemon.process.poll() is None


def test_sighup_with_a_broken_config_keeps_the_old_one_running(tmp_path, start_daemon):
    folder = tmp_path / "run"
    config = write_config(folder, checks=disk_check(tmp_path, 100.0))
    daemon = start_daemon(config)
    wait_for(lambda: "started with 1 checks" in daemon.log, "the daemon to start")

    config.write_text(config.read_text() + '\n[mial]\nto = "x"\n')
    daemon.signal(signal.SIGHUP)

    wait_for(lambda: "reload refused" in daemon.log, "the reload to be refused")
    assert "[mial]" in daemon.log or "mial" in daemon.log
    assert "did you mean 'mail'?" in daemon.log
    time.sleep(1)
    assert daemon.process.poll() is None
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_sigterm_stops_cleanly_with_exit_0(tmp_path, start_daemon):
    folder = tmp_path / "run"
    daemon = start_daemon(write_config(folder, checks=disk_check(tmp_path, 100.0)))
    wait_for(lambda: "started with 1 checks" in daemon.log, "the daemon to start")

    daemon.signal(signal.SIGTERM)

    assert daemon.wait(limit=15) == 0
    assert "stopping on SIGTERM" in daemon.log
    assert "Traceback" not in daemon.log


def test_sigkill_and_restart_sends_no_second_problem(tmp_path, start_daemon):
    folder = tmp_path / "run"
    config = write_config(folder, checks=disk_check(tmp_path, 0.0))
    first = start_daemon(config)
    wait_for(lambda: subjects(folder), "the PROBLEM email")
    # Killed once the alert has left the group journal: between the outbox
    # and that moment a crash may send it twice by design (never lose one).
    journal = folder / "state" / "pending-alerts.jsonl"
    wait_for(lambda: '"event"' not in journal.read_text(), "the journal to be empty")
    first.signal(signal.SIGKILL)
    first.wait()

    second = start_daemon(config)
    wait_for(
        lambda: second.log.count("check 'scratch': CRITICAL") >= 3,
        "three CRITICAL runs after the restart",
    )

    assert len(eml_messages(folder)) == 1


def test_queued_mail_survives_sigkill_and_goes_out_after_restart(
    tmp_path, smtp_server, ca_file, start_daemon
):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))  # reserved, not listening: the server is down
    port = holder.getsockname()[1]
    folder = tmp_path / "run"
    config = write_config(
        folder, smtp_port=port, ca_file=ca_file, checks=disk_check(tmp_path, 0.0)
    )
    first = start_daemon(config)
    outbox = folder / "state" / "outbox"
    wait_for(lambda: list(outbox.glob("*.eml")), "the alert in the outbox")
    first.signal(signal.SIGKILL)
    first.wait()
    holder.close()

    server: SmtpServer = smtp_server(tls="implicit", port=port)
    start_daemon(config)

    wait_for(lambda: server.messages, "the queued alert to be delivered")
    time.sleep(1.5)
    assert len(server.messages) == 1
    assert not list(outbox.glob("*.eml"))


@pytest.fixture
def notify_socket(tmp_path) -> Iterator[tuple[Path, socket.socket]]:
    """A real unix datagram socket standing where systemd's would be."""
    path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(0.2)
    yield path, receiver
    receiver.close()


def test_systemd_hears_ready_status_and_watchdog(tmp_path, start_daemon, notify_socket):
    notify_path, receiver = notify_socket
    folder = tmp_path / "run"
    daemon = start_daemon(
        write_config(folder, checks=disk_check(tmp_path, 100.0)),
        env={"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "1000000"},
    )
    received: list[str] = []

    def heard(text: str) -> bool:
        with contextlib.suppress(TimeoutError):
            received.append(receiver.recv(4096).decode())
        return any(text in datagram for datagram in received)

    wait_for(lambda: heard("READY=1"), "READY=1")
    wait_for(lambda: heard("WATCHDOG=1"), "WATCHDOG=1")
    wait_for(lambda: heard("STATUS=1 checks, 0 firing, 0 queued"), "STATUS=")
    received.clear()
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: heard("RELOADING=1"), "RELOADING=1")
    reloading = next(d for d in received if "RELOADING=1" in d)
    assert "MONOTONIC_USEC=" in reloading
    wait_for(lambda: heard("READY=1"), "READY=1 after the reload")
    daemon.signal(signal.SIGTERM)
    wait_for(lambda: heard("STOPPING=1"), "STOPPING=1")
    assert daemon.wait() == 0


def ticks(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def hang_config(folder: Path, tick_file: Path, timeout: str) -> Path:
    """Two checks that never return and one that ticks, on one worker thread.

    Were checks run on the workers themselves, "clock" would wait for every
    hung run until its timeout.
    """
    return write_config(
        folder,
        extra_notifier="workers = 1",
        checks=f"""
        [[check]]
        name = "stuck"
        type = "hang"
        every = "200ms"
        timeout = "{timeout}"
        [[check]]
        name = "stuck-too"
        type = "hang"
        every = "200ms"
        timeout = "{timeout}"
        [[check]]
        name = "clock"
        type = "tick"
        file = "{tick_file}"
        every = "200ms"
        """,
    )


def test_hanging_checks_do_not_delay_the_others(tmp_path, start_daemon):
    tick_file = tmp_path / "ticks"
    # The hung runs time out only after a minute, longer than this test may
    # wait for the ticks: every tick seen happened while both were hung.
    daemon = start_daemon(hang_config(tmp_path / "run", tick_file, "60s"))

    wait_for(lambda: ticks(tick_file) >= 10, "ten ticks while two checks hang")

    assert "timed out" not in daemon.log
    assert daemon.process.poll() is None


def test_a_hung_check_is_unknown_at_its_timeout_and_alerts(tmp_path, start_daemon):
    tick_file = tmp_path / "ticks"
    folder = tmp_path / "run"
    daemon = start_daemon(hang_config(folder, tick_file, "500ms"))

    wait_for(lambda: "check 'stuck' timed out" in daemon.log, "the hang to time out")
    wait_for(
        lambda: any("UNKNOWN" in s and "stuck" in s for s in subjects(folder)),
        "the UNKNOWN alert for the hung check",
    )
    before = ticks(tick_file)
    wait_for(lambda: ticks(tick_file) >= before + 10, "ten more ticks")
    assert daemon.process.poll() is None


def test_a_mail_server_that_never_answers_does_not_delay_checks(
    tmp_path, smtp_server, ca_file, start_daemon
):
    # A listening socket that never reads: the TCP handshake completes and
    # then the TLS handshake waits forever, as with a wedged mail server.
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(16)
    port = blackhole.getsockname()[1]
    tick_file = tmp_path / "ticks"
    folder = tmp_path / "run"
    config = write_config(
        folder,
        smtp_port=port,
        ca_file=ca_file,
        smtp_timeout="60s",
        checks=disk_check(tmp_path, 0.0)
        + f"""
        [[check]]
        name = "clock"
        type = "tick"
        file = "{tick_file}"
        every = "200ms"
        """,
    )
    daemon = start_daemon(config)
    outbox = folder / "state" / "outbox"
    wait_for(lambda: list(outbox.glob("*.eml")), "the alert in the outbox")
    before = ticks(tick_file)

    # Ticks go on while delivery is stuck in the handshake. The SMTP timeout
    # is a minute, longer than this wait may take: had checks waited for
    # delivery, not one of these ticks could have happened.
    wait_for(lambda: ticks(tick_file) >= before + 25, "25 ticks while mail hangs")
    assert list(outbox.glob("*.eml"))

    blackhole.close()
    server: SmtpServer = smtp_server(tls="implicit", port=port)
    wait_for(lambda: server.messages, "delivery once the server is back", limit=45)
    assert len(server.messages) == 1
    assert daemon.process.poll() is None


def test_a_silence_holds_alerts_back_and_its_end_sends_one_without_restart(
    tmp_path, start_daemon
):
    folder = tmp_path / "run"
    config = write_config(folder, checks=disk_check(tmp_path, 0.0))

    def notifier(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "notifier", *arguments, "-c", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )

    silenced = notifier("silence", "scratch", "--for", "1h", "--reason", "disk swap")
    assert silenced.returncode == 0, silenced.stderr
    daemon = start_daemon(config)
    wait_for(
        lambda: daemon.log.count("check 'scratch': CRITICAL") >= 4,
        "four CRITICAL runs under the silence",
    )
    assert subjects(folder) == []

    cleared = notifier("silence", "--clear", "scratch")
    assert cleared.returncode == 0, cleared.stderr

    wait_for(lambda: subjects(folder), "the message once the silence is gone")
    (subject,) = subjects(folder)
    assert "scratch" in subject
    assert "CRITICAL" in subject
    assert daemon.process.poll() is None
