"""``notifier replay CHECK FILE``, run as a sysadmin would: a real subprocess."""

from __future__ import annotations

import gzip
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from notifier.checks.logscan import Thresholds
from notifier.logrules import Rules
from notifier.replay import plan_windows, time_parser
from notifier.replay import replay as replay_windows

CONFIG = """
[notifier]
state_dir = "{state}"

[[check]]
name = "app-errors"
type = "logscan"
path = "{log}"
pattern = ["ERROR", "(?i)segfault"]
ignore = ["ERROR expected"]
warning = 2
critical = 5
max_evidence_lines = 2
every = "1m"
recovery = true

[[check]]
name = "true"
type = "command"
command = ["true"]
"""
# Matching lines per minute of the log below: 0, 3, 1, 0, 6 (10 in all).
MATCHES_PER_MINUTE = (0, 3, 1, 0, 6)


def write_log(path: Path, stamp) -> None:
    """Write five minutes of log, stamped by ``stamp(minute, second)``."""
    lines = []
    for minute, matches in enumerate(MATCHES_PER_MINUTE):
        for second in range(0, 60, 5):
            lines.append(f"{stamp(minute, second)} app[7]: all well at {second}\n")
            if second == 0:
                lines.append(f"{stamp(minute, second)} app[7]: ERROR expected\n")
        for number in range(matches):
            kind = "ERROR" if number % 2 == 0 else "Segfault"
            lines.append(f"{stamp(minute, 58)} app[7]: {kind} number {number}\n")
            lines.append("    a continuation line without a timestamp\n")
    path.write_text("".join(lines))


def iso(minute: int, second: int) -> str:
    return f"2024-05-01T12:{minute:02d}:{second:02d}+02:00"


def syslog(minute: int, second: int) -> str:
    return f"May  1 12:{minute:02d}:{second:02d} host"


@pytest.fixture
def setup(tmp_path):
    log = tmp_path / "app.log.1"
    config = tmp_path / "notifier.toml"
    state = tmp_path / "state"
    config.write_text(CONFIG.format(state=state, log=tmp_path / "app.log"))
    return config, log, state


def replay(config: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notifier", "replay", *arguments, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_replay_prints_each_run_with_matches_and_the_alert_it_would_send(setup):
    config, log, state = setup
    write_log(log, iso)

    finished = replay(config, "app-errors", str(log))

    assert finished.returncode == 0, finished.stderr
    written = log.read_text().splitlines()
    first_match = "2024-05-01T12:01:58+02:00 app[7]: ERROR number 0"
    lines = finished.stdout.splitlines()
    assert lines[0] == (
        f'replay of check "app-errors" over {log}: {len(written)} lines, '
        "5 runs of 1m by the timestamps at line starts"
    )
    runs = [line for line in lines if line.startswith("2024-")]
    assert runs == [
        f"2024-05-01 12:01:00 +1m  WARNING  3 matching lines in {log}: "
        "2024-05-01T12:01:58+02:00 app[7]: ERROR number 0",
        f"2024-05-01 12:02:00 +1m  OK  1 matching line in {log}: "
        "2024-05-01T12:02:58+02:00 app[7]: ERROR number 0",
        f"2024-05-01 12:04:00 +1m  CRITICAL  6 matching lines in {log}: "
        "2024-05-01T12:04:58+02:00 app[7]: ERROR number 0",
    ]
    number = written.index(first_match) + 1
    assert f"    {log}:{number}: {first_match}" in lines
    assert "    (4 more matching lines not shown)" in lines
    sent = [line.strip() for line in lines if line.strip().startswith("->")]
    assert sent == [
        "-> would send PROBLEM (WARNING)",
        "-> would send RECOVERY",
        "-> would send PROBLEM (CRITICAL)",
    ]
    assert lines[-2:] == [
        "2 of 5 runs would have alerted (1 WARNING, 1 CRITICAL); "
        "10 matching lines in all",
        "3 messages would have gone out: 2 PROBLEM, 1 RECOVERY",
    ]
    assert not state.exists()


def test_replay_applies_the_alert_lifecycle_of_the_check(setup):
    config, log, _state = setup
    # Bad runs never come two in a row in this log, so `for = 2` sends nothing.
    config.write_text(
        config.read_text().replace('every = "1m"', 'every = "1m"\nfor = 2')
    )
    write_log(log, iso)

    finished = replay(config, "app-errors", str(log))

    assert finished.returncode == 0, finished.stderr
    assert "would send" not in finished.stdout
    assert finished.stdout.splitlines()[-1] == "no message would have gone out"


def test_window_option_changes_the_length_of_a_run(setup):
    config, log, _state = setup
    write_log(log, iso)

    finished = replay(config, "app-errors", str(log), "--window", "1h")

    assert finished.returncode == 0, finished.stderr
    assert "lines, 1 run of 1h by the timestamps" in finished.stdout
    assert "2024-05-01 12:00:00 +1h  CRITICAL  10 matching lines" in finished.stdout
    assert finished.stdout.splitlines()[-2].startswith("1 of 1 run would have")


def test_syslog_timestamps_and_gzip_files_are_understood(setup, tmp_path):
    config, log, _state = setup
    write_log(log, syslog)
    packed = tmp_path / "app.log.2.gz"
    with gzip.open(packed, "wb") as stream:
        stream.write(log.read_bytes())

    finished = replay(config, "app-errors", str(packed))

    assert finished.returncode == 0, finished.stderr
    assert "5 runs of 1m" in finished.stdout
    assert finished.stdout.splitlines()[-2] == (
        "2 of 5 runs would have alerted (1 WARNING, 1 CRITICAL); "
        "10 matching lines in all"
    )


def test_file_without_timestamps_is_one_run(setup):
    config, log, _state = setup
    log.write_text("ERROR one\nfine\nsegfault two\nERROR expected\n")

    finished = replay(config, "app-errors", str(log))

    assert finished.returncode == 0, finished.stderr
    assert "4 lines, one run: no timestamps at line starts" in finished.stdout
    assert f"whole file  WARNING  2 matching lines in {log}: ERROR one" in (
        finished.stdout
    )


def test_counts_of_one_are_written_in_the_singular(setup):
    config, log, _state = setup
    log.write_text("ERROR alone\n")

    finished = replay(config, "app-errors", str(log))

    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0].endswith(": 1 line, one run: no timestamps at line starts")
    assert lines[-2] == "0 of 1 run would have alerted; 1 matching line in all"


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        (("nope", "{log}"), 64, "no check named 'nope'"),
        (("true", "{log}"), 78, "replay works on logscan checks only"),
        (("app-errors", "{missing}"), 65, "cannot read"),
        (("app-errors", "{log}", "--window", "soon"), 64, "--window"),
    ],
)
def test_replay_fails_with_a_one_line_error_and_its_exit_status(
    setup, tmp_path, arguments, status, message
):
    config, log, _state = setup
    write_log(log, iso)
    filled = [
        argument.format(log=log, missing=tmp_path / "missing.log")
        for argument in arguments
    ]

    finished = replay(config, *filled)

    assert finished.returncode == status
    assert finished.stdout == ""
    assert len(finished.stderr.splitlines()) == 1
    assert message in finished.stderr
    assert "Traceback" not in finished.stderr


def test_runs_between_the_lines_of_a_quiet_log_count_as_ok_runs(setup):
    config, log, _state = setup
    # Three errors at 12:00 and three at 12:10; nothing in between.
    log.write_text(
        "".join(
            f"2024-05-01T12:{minute:02d}:0{second} app: ERROR {second}\n"
            for minute in (0, 10)
            for second in range(3)
        )
    )

    finished = replay(config, "app-errors", str(log))

    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert "(a run with no new lines)  OK" in lines
    assert lines[-1] == "3 messages would have gone out: 2 PROBLEM, 1 RECOVERY"


def test_pattern_matching_empty_lines_counts_them_and_ends(setup):
    # `^$` used to send the scan back to the start of the block for ever: the
    # replay never ended (the timeout below turns that into a failure).
    config, log, _state = setup
    config.write_text(
        config.read_text().replace(
            'pattern = ["ERROR", "(?i)segfault"]', 'pattern = ["^$"]'
        )
    )
    log.write_text("ERROR one\n\nfine\n\n\nERROR two\n")

    finished = replay(config, "app-errors", str(log))

    assert finished.returncode == 0, finished.stderr
    assert (
        f"whole file  WARNING  3 matching lines in {log}: (a blank line)"
        in finished.stdout
    )
    assert finished.stdout.splitlines()[-2].endswith("; 3 matching lines in all")


@pytest.mark.parametrize("packed", [False, True])
def test_huge_single_line_is_replayed_in_bounded_memory(tmp_path, packed):
    # 40 MB in one line between stamped lines: only the start of each line
    # is read for its timestamp, the scanner cuts the line into pieces.
    huge = b"2024-05-01T12:01:30 app: " + b"x" * 40_000_000 + b" ERROR\n"
    data = (
        b"2024-05-01T12:00:10 app: ERROR before\n"
        + huge
        + b"2024-05-01T12:02:10 app: ERROR after\n"
    )
    log = tmp_path / ("app.log.gz" if packed else "app.log")
    if packed:
        with gzip.open(log, "wb", compresslevel=1) as stream:
            stream.write(data)
    else:
        log.write_bytes(data)
    del data, huge

    tracemalloc.start()
    try:
        parse = time_parser(log)
        windows = plan_windows(log, 60.0, parse)
        results = list(
            replay_windows(log, windows, Rules(["ERROR"]), {}, Thresholds(1, None))
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 12 * 1024 * 1024
    assert [window.began for window in windows] == [
        1714564800.0,
        1714564860.0,
        1714564920.0,
    ]
    assert [found.result.metrics["matches"] for found in results] == [1, 1, 1]
    assert [found.lines for found in results] == [1, 1, 1]
