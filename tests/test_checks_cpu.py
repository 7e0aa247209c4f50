"""The ``cpu`` check with real CPU load from a real subprocess."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from notifier.checks.base import Status
from notifier.checks.cpu import busy_shares
from notifier.config import build_config
from notifier.plugins import build_registry
from notifier.runner import create_check, run_check, warmup_of


def cpu_check(tmp_path: Path, **options):
    registry = build_registry()
    raw = {
        "notifier": {"state_dir": str(tmp_path / "state")},
        "check": [{"name": "cpu", "type": "cpu", **options}],
    }
    config = build_config(raw, None, registry.check_type_map())
    return create_check(config.checks[0], registry, config)


def start_burner() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def wait_for_cpu_seconds(pid: int, seconds: float) -> None:
    """Wait until ``pid`` has used ``seconds`` of CPU (not a timing assertion:
    the deadline only stops a broken test from hanging)."""
    process = psutil.Process(pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        times = process.cpu_times()
        if times.user + times.system >= seconds:
            return
        time.sleep(0.05)
    pytest.fail(f"burner {pid} never used {seconds}s of CPU")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()


def test_cpu_lists_a_process_that_burned_cpu_since_the_previous_run(tmp_path):
    # warning 0: every run is bad, so every run lists and samples processes.
    check = cpu_check(tmp_path, top=10, warning=0.0, critical=100.0)
    run_check(check, 10.0, "cpu")
    burner = start_burner()
    try:
        wait_for_cpu_seconds(burner.pid, 0.5)
        result = run_check(check, 10.0, "cpu")
    finally:
        stop(burner)

    listed = [line for line in result.evidence if line.startswith(f"pid {burner.pid} ")]
    assert listed, result.evidence
    assert "while True: pass" in listed[0]
    assert "% cpu" in listed[0]
    assert result.metrics["busy_percent"] > 0


def test_cpu_stops_listing_a_process_once_it_is_gone(tmp_path):
    check = cpu_check(tmp_path, top=50, warning=0.0, critical=100.0)
    burner = start_burner()
    try:
        wait_for_cpu_seconds(burner.pid, 0.3)
    finally:
        stop(burner)

    # The burner's CPU time fell before this run's sample; the run after
    # covers only the time since, when the burner no longer existed.
    run_check(check, 10.0, "cpu")
    result = run_check(check, 10.0, "cpu")

    assert result.status is not Status.OK
    assert not [line for line in result.evidence if f"pid {burner.pid} " in line]


def test_cpu_measures_the_interval_since_the_previous_run(tmp_path):
    check = cpu_check(tmp_path)
    run_check(check, 10.0, "cpu")
    after_first = time.monotonic()
    burner = start_burner()
    try:
        wait_for_cpu_seconds(burner.pid, 0.2)
    finally:
        stop(burner)
    before_second = time.monotonic()

    result = run_check(check, 10.0, "cpu")

    # The metric is rounded to the millisecond; the interval it measures
    # began before `after_first` and ended after `before_second`.
    assert (
        result.metrics["interval_seconds"]
        >= round(before_second - after_first, 3) - 0.001
    )
    assert result.summary.startswith("cpu ")
    assert "% busy over the last " in result.summary


def test_cpu_first_run_compares_with_the_sample_taken_at_creation(tmp_path):
    created_at = time.monotonic()
    check = cpu_check(tmp_path)
    time.sleep(warmup_of(check))

    result = run_check(check, 10.0, "cpu")

    assert result.status is not Status.UNKNOWN
    assert warmup_of(check) > 0
    interval = result.metrics["interval_seconds"]
    assert warmup_of(check) <= interval <= time.monotonic() - created_at


def test_cpu_critical_threshold_zero_always_trips(tmp_path):
    check = cpu_check(tmp_path, warning=0, critical=0)
    time.sleep(warmup_of(check))

    result = run_check(check, 10.0, "cpu")

    assert result.status is Status.CRITICAL
    assert result.value == result.metrics["busy_percent"]


def test_cpu_top_zero_lists_no_processes(tmp_path):
    check = cpu_check(tmp_path, top=0, warning=0.0, critical=100.0)
    burner = start_burner()
    try:
        wait_for_cpu_seconds(burner.pid, 0.2)
        result = run_check(check, 10.0, "cpu")
    finally:
        stop(burner)

    assert result.status is not Status.OK
    assert result.evidence == ()


def test_busy_shares_counts_iowait_as_idle():
    before = psutil.cpu_times()
    after = before._replace(
        user=before.user + 3.0, idle=before.idle + 0.5, iowait=before.iowait + 0.5
    )

    shares = busy_shares(before, after)

    assert shares is not None
    assert shares["busy_percent"] == 75.0
    assert shares["iowait_percent"] == 12.5
    assert shares["user_percent"] == 75.0


def test_busy_shares_none_when_no_time_passed():
    sample = psutil.cpu_times()

    assert busy_shares(sample, sample) is None


def test_cpu_first_bad_run_lists_the_burner(tmp_path):
    burner = start_burner()
    try:
        wait_for_cpu_seconds(burner.pid, 0.2)
        # A burner keeps at least one core busy: 1% is below current usage.
        check = cpu_check(tmp_path, top=10, warning=1.0, critical=100.0)
        time.sleep(warmup_of(check))
        result = run_check(check, 10.0, "cpu")
    finally:
        stop(burner)

    assert result.status is not Status.OK
    assert [line for line in result.evidence if line.startswith(f"pid {burner.pid} ")]


def test_cpu_ok_runs_list_no_processes(tmp_path):
    check = cpu_check(tmp_path, top=50, warning=100.0, critical=100.0)
    results = []
    for _ in range(10):
        time.sleep(warmup_of(check) / 4)
        results.append(run_check(check, 10.0, "cpu"))

    # Only a machine whose every CPU was busy through every run has no OK
    # run; on any other, each OK run had processes (this one at least) that
    # used CPU and are not listed.
    ok = [result for result in results if result.status is Status.OK]
    if not ok:
        pytest.skip("every CPU was 100% busy through all ten runs")
    assert all(result.evidence == () for result in ok), ok
