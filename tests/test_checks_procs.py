"""When the cpu and load checks read the process table, with real processes.

A "burst" process uses half a second of CPU and then sleeps: it shows only in a
list that covers the moment it burned. A "burner" uses CPU the whole time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from notifier.checks.base import Status
from notifier.checks.procs import SAMPLE_FROM_SHARE, BusiestProcesses

BURST = """
import sys, time
started = time.process_time()
while time.process_time() - started < 0.5:
    pass
sys.stdout.write("done\\n")
sys.stdout.flush()
sys.stdin.read()
"""


@pytest.fixture
def burner() -> Iterator[subprocess.Popen[bytes]]:
    with subprocess.Popen([sys.executable, "-c", "while True: pass"]) as process:
        wait_until(lambda: cpu_seconds(process.pid) >= 0.1, "burner to burn")
        yield process
        process.kill()


def start_burst() -> subprocess.Popen[bytes]:
    """Start a burst process and return once it has burned and sleeps."""
    process = subprocess.Popen(
        [sys.executable, "-c", BURST], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"done\n"
    wait_until(
        lambda: psutil.Process(process.pid).status() == psutil.STATUS_SLEEPING,
        "burst process to sleep",
    )
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (the deadline only stops a broken test from hanging;
    it is not a timing assertion)."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for the {what}")
        time.sleep(0.02)


def listed(evidence: tuple[str, ...], pid: int) -> list[str]:
    return [line for line in evidence if line.startswith(f"pid {pid} ")]


def test_ok_run_far_below_the_thresholds_lists_nothing_and_keeps_no_sample(burner):
    processes = BusiestProcesses(10, warning=90.0, critical=95.0)

    evidence = processes.evidence(Status.OK, 10.0)

    assert evidence == ()
    assert not processes.keeps_sample


def test_ok_run_near_the_threshold_lists_nothing_but_keeps_a_sample(burner):
    processes = BusiestProcesses(10, warning=90.0, critical=95.0)
    processes.evidence(Status.OK, 10.0)

    evidence = processes.evidence(Status.OK, 90.0 * SAMPLE_FROM_SHARE)

    assert evidence == ()
    assert processes.keeps_sample


def test_bad_run_after_a_near_run_lists_what_burned_since_that_run():
    processes = BusiestProcesses(20, warning=90.0, critical=95.0)
    processes.evidence(Status.OK, 80.0)
    burst = start_burst()
    try:
        evidence = processes.evidence(Status.WARNING, 91.0)
    finally:
        stop(burst)

    assert listed(evidence, burst.pid), evidence
    assert "% cpu" in listed(evidence, burst.pid)[0]


def test_bad_run_after_a_far_run_samples_afresh_and_lists_only_current_burners(
    burner,
):
    processes = BusiestProcesses(20, warning=90.0, critical=95.0)
    processes.evidence(Status.OK, 10.0)
    burst = start_burst()
    try:
        evidence = processes.evidence(Status.CRITICAL, 99.0)
    finally:
        stop(burst)

    # The burst burned before this run looked: a fresh pair of samples does
    # not see it, while the process still burning shows.
    assert listed(evidence, burner.pid), evidence
    assert not listed(evidence, burst.pid), evidence
    assert processes.keeps_sample


def test_bad_runs_keep_sampling_so_the_next_one_ranks_since_the_last(burner):
    processes = BusiestProcesses(20, warning=2.0, critical=4.0)
    burned = cpu_seconds(burner.pid)
    wait_until(lambda: cpu_seconds(burner.pid) >= burned + 0.1, "burner to burn")

    first = processes.evidence(Status.WARNING, 2.5)
    burst = start_burst()
    try:
        second = processes.evidence(Status.WARNING, 2.5)
    finally:
        stop(burst)

    assert listed(first, burner.pid), first
    assert listed(second, burst.pid), second


def test_top_zero_never_lists_nor_samples(burner):
    processes = BusiestProcesses(0, warning=90.0, critical=95.0)

    evidence = processes.evidence(Status.CRITICAL, 99.0)

    assert evidence == ()
    assert not processes.keeps_sample


def test_near_means_a_share_of_the_lowest_threshold_set():
    assert BusiestProcesses(5, 90.0, 95.0).sample_from == pytest.approx(72.0)
    assert BusiestProcesses(5, None, 10.0).sample_from == pytest.approx(8.0)
    assert BusiestProcesses(5, None, None).sample_from is None
