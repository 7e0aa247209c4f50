"""Log lines as journald and a terminal see them; repeating warnings held back."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.logsetup import (
    RateLimitedLogger,
    setup_logging,
    stream_is_journal,
    syslog_priority,
)

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")

# What the daemon might log in one run: every level, a traceback, a message
# quoting a watched log line that tries to pass for an emergency, and the
# scheduler's chatter.
LOGGING_PROGRAM = """
import logging
from notifier.logsetup import setup_logging

setup_logging("info")
log = logging.getLogger("notifier.demo")
log.debug("check %r ran", "root-disk")
log.info("started with %d checks", 3)
log.warning("smtp %s:%d refused the connection; retry in 1m", "127.0.0.1", 25)
log.error("log file %r matched:\\n<0>kernel: fake emergency\\0<1>alert", "/x")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("check %r crashed", "root-disk")
log.critical("stopping: state directory is gone")
logging.getLogger("apscheduler.scheduler").info("running job every 30s")
logging.getLogger("apscheduler.scheduler").warning("run of job missed by 5s")
"""


def run_logging_program(tmp_path: Path, *, journal: str | None) -> list[str]:
    """Run LOGGING_PROGRAM with stderr on a file; return the file's lines.

    ``journal`` is "match" for $JOURNAL_STREAM naming that very file (what
    systemd does when stderr goes to the journal), "other" for a value naming
    a different file, None for no variable at all.
    """
    stderr_path = tmp_path / "stderr.log"
    other_path = tmp_path / "other.log"
    other_path.write_text("")
    env = {key: value for key, value in os.environ.items() if key != "JOURNAL_STREAM"}
    with stderr_path.open("wb") as stderr_file:
        if journal is not None:
            target = stderr_path if journal == "match" else other_path
            stat = target.stat()
            env["JOURNAL_STREAM"] = f"{stat.st_dev}:{stat.st_ino}"
        subprocess.run(
            [sys.executable, "-c", LOGGING_PROGRAM],
            stderr=stderr_file,
            env=env,
            check=True,
        )
    return stderr_path.read_text().splitlines()


def test_under_journald_every_line_has_priority_and_no_timestamp(tmp_path):
    lines = run_logging_program(tmp_path, journal="match")

    assert lines[:3] == [
        "<6>notifier.demo: started with 3 checks",
        "<4>notifier.demo: smtp 127.0.0.1:25 refused the connection; retry in 1m",
        "<3>notifier.demo: log file '/x' matched:",
    ]
    assert not any(TIMESTAMP.search(line) for line in lines)
    assert all(re.match(r"<[0-7]>", line) for line in lines)


def test_under_journald_quoted_text_cannot_forge_a_priority(tmp_path):
    lines = run_logging_program(tmp_path, journal="match")

    # journald reads only the first <N>: the quoted line stays an error.
    assert "<3><0>kernel: fake emergency" in lines
    assert "<3><1>alert" in lines


def test_under_journald_traceback_lines_are_errors_too(tmp_path):
    lines = run_logging_program(tmp_path, journal="match")

    start = lines.index("<3>notifier.demo: check 'root-disk' crashed")
    traceback_lines = lines[
        start + 1 : lines.index("<2>notifier.demo: stopping: state directory is gone")
    ]
    assert traceback_lines[0] == "<3>Traceback (most recent call last):"
    assert traceback_lines[-1] == "<3>ZeroDivisionError: division by zero"
    assert all(line.startswith("<3>") for line in traceback_lines)


def test_debug_and_scheduler_chatter_are_left_out_at_info(tmp_path):
    lines = run_logging_program(tmp_path, journal="match")

    assert not any("check 'root-disk' ran" in line for line in lines)
    assert not any("running job" in line for line in lines)
    assert "<4>apscheduler.scheduler: run of job missed by 5s" in lines


def test_outside_journald_lines_carry_timestamp_level_and_logger(tmp_path):
    lines = run_logging_program(tmp_path, journal=None)

    error_line = next(line for line in lines if "matched:" in line)
    assert TIMESTAMP.match(error_line)
    assert error_line.endswith(" ERROR notifier.demo: log file '/x' matched:")
    # Continuation lines are indented: quoted text cannot pass for a record.
    assert all(TIMESTAMP.match(line) or line.startswith("  ") for line in lines)
    assert "  <0>kernel: fake emergency\0<1>alert" in lines
    assert "  Traceback (most recent call last):" in lines


def test_inherited_journal_stream_for_another_file_is_ignored(tmp_path):
    # A child of a journald-logged service inherits $JOURNAL_STREAM even when
    # its own stderr goes elsewhere; only the matching file counts.
    lines = run_logging_program(tmp_path, journal="other")

    assert TIMESTAMP.match(lines[0])
    assert "INFO notifier.demo: started with 3 checks" in lines[0]


def test_stream_without_file_descriptor_is_not_the_journal():
    assert stream_is_journal(io.StringIO(), {"JOURNAL_STREAM": "1:2"}) is False


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.INFO + 5, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
    ],
)
def test_syslog_priority_of_each_level(level, priority):
    assert syslog_priority(level) == priority


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Undo what setup_logging does to the process-wide loggers."""
    root = logging.getLogger()
    scheduler = logging.getLogger("apscheduler")
    saved = (list(root.handlers), root.level, scheduler.level)
    yield
    for handler in root.handlers[:]:
        if handler not in saved[0]:
            root.removeHandler(handler)
    root.setLevel(saved[1])
    scheduler.setLevel(saved[2])


def test_setting_up_again_replaces_the_handler_and_level(restored_logging):
    first, second = io.StringIO(), io.StringIO()
    log = logging.getLogger("notifier.reload-test")

    setup_logging("info", stream=first, journal=False)
    setup_logging("warning", stream=second, journal=True)
    log.info("hidden after reload")
    log.warning("shown after reload")

    assert first.getvalue() == ""
    assert second.getvalue() == "<4>notifier.reload-test: shown after reload\n"


def test_unknown_level_names_the_value_and_the_choices(restored_logging):
    with pytest.raises(ValueError, match=r"'verbose' is not one of 'debug', 'info'"):
        setup_logging("verbose", stream=io.StringIO())


class FakeClock:
    """Seconds that move only when the test says so (a window of minutes)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limited(clock, caplog) -> RateLimitedLogger:
    caplog.set_level(logging.DEBUG, logger="notifier.limited")
    return RateLimitedLogger(logging.getLogger("notifier.limited"), 300, clock=clock)


def shown(caplog, level=logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_repeated_warning_is_held_back_then_summarised(limited, clock, caplog):
    for _ in range(3):
        limited.warning("smtp", "smtp %s: connection refused", "mail.example")
        clock.now += 60
    clock.now += 200
    let_through = limited.warning("smtp", "smtp %s: connection refused", "mail")

    assert let_through is True
    assert shown(caplog) == [
        "smtp mail.example: connection refused",
        "smtp mail: connection refused (2 more like this in the last 6m20s)",
    ]
    assert shown(caplog, logging.DEBUG) == [
        "smtp mail.example: connection refused",
        "smtp mail.example: connection refused",
    ]


def test_different_keys_are_limited_apart(limited, caplog):
    limited.warning(("timeout", "root-disk"), "check %r timed out", "root-disk")
    limited.warning(("timeout", "load"), "check %r timed out", "load")
    held = limited.warning(("timeout", "load"), "check %r timed out", "load")

    assert held is False
    assert shown(caplog) == ["check 'root-disk' timed out", "check 'load' timed out"]


def test_forget_lets_the_next_message_through_at_once(limited, caplog):
    limited.error("login", "smtp login refused")
    limited.forget("login")
    limited.error("login", "smtp login refused")

    assert shown(caplog, logging.ERROR) == ["smtp login refused"] * 2


def test_literal_percent_survives_the_summary(limited, clock, caplog):
    limited.warning("disk", "disk at 100% on /")
    limited.warning("disk", "disk at 100% on /")
    clock.now += 300
    limited.warning("disk", "disk at 100% on /")

    assert shown(caplog)[-1] == "disk at 100% on / (1 more like this in the last 5m)"


def test_record_names_the_caller_not_the_limiter(limited, caplog):
    limited.info("start", "started")

    assert caplog.records[0].funcName == "test_record_names_the_caller_not_the_limiter"
    assert caplog.records[0].pathname == __file__


def test_many_other_keys_do_not_unmute_a_live_one(limited, clock, caplog):
    limited.warning("hot", "hot message")
    for number in range(RateLimitedLogger.PRUNE_ABOVE + 100):
        limited.info(number, "message %d", number)
    clock.now += 10

    assert limited.warning("hot", "hot message") is False
    assert shown(caplog) == ["hot message"]
