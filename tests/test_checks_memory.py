"""The ``memory`` check on this machine's real memory, with a real process
holding memory to be found in the evidence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from notifier.checks.base import Status
from notifier.checks.procs import readable_size
from notifier.config import build_config
from notifier.plugins import build_registry
from notifier.runner import create_check, run_check

HOLD_BYTES = 256 * 1024 * 1024

# Touches every page (bytes * n writes them), then says so and waits.
HOLDER = f"""
import sys
held = b"\\x01" * {HOLD_BYTES}
sys.stdout.write("ready\\n")
sys.stdout.flush()
sys.stdin.read()
"""


def run_memory(tmp_path: Path, **options):
    registry = build_registry()
    raw = {
        "notifier": {"state_dir": str(tmp_path / "state")},
        "check": [{"name": "memory", "type": "memory", **options}],
    }
    config = build_config(raw, None, registry.check_type_map())
    check = create_check(config.checks[0], registry, config)
    return run_check(check, 10.0, "memory")


@pytest.fixture
def holder():
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        yield process
        process.kill()


def test_memory_lists_a_process_holding_memory_with_its_size(tmp_path, holder):
    rss = psutil.Process(holder.pid).memory_info().rss
    assert rss >= HOLD_BYTES

    result = run_memory(tmp_path, top=20, warning=0.0)

    listed = [line for line in result.evidence if line.startswith(f"pid {holder.pid} ")]
    assert listed, result.evidence
    assert "resident" in listed[0]
    assert readable_size(rss)[:2] in listed[0]
    # The holder's command line has newlines: shown on one line, cut short.
    command = listed[0].split("resident  ", 1)[1]
    assert command.startswith(f"{sys.executable} -c ?import sys?held = b")
    assert command.endswith("...")
    assert len(command) == 120


def test_memory_evidence_is_largest_first_and_bounded(tmp_path):
    result = run_memory(tmp_path, top=3, warning=0.0)

    assert len(result.evidence) == 3
    pids = [int(line.split()[1]) for line in result.evidence]
    sizes = []
    for pid in pids:
        try:
            sizes.append(psutil.Process(pid).memory_info().rss)
        except psutil.NoSuchProcess:
            pytest.skip("a listed process exited before the test could look")
    # Sizes move a little between the run and now; the order holds for the
    # top three of a whole machine unless two are within a few pages.
    assert sizes[0] >= sizes[2] * 0.9


def test_memory_is_ok_under_thresholds_of_100(tmp_path):
    result = run_memory(tmp_path, warning=100.0, critical=100.0)

    assert result.status is Status.OK
    assert result.value == pytest.approx(psutil.virtual_memory().percent, abs=5)
    assert result.summary.startswith("memory ")
    assert " available of " in result.summary


def test_memory_warning_of_zero_warns(tmp_path):
    result = run_memory(tmp_path, warning=0.0, critical=100.0)

    assert result.status is Status.WARNING


def test_memory_critical_of_zero_is_critical(tmp_path):
    result = run_memory(tmp_path, warning=0.0, critical=0.0)

    assert result.status is Status.CRITICAL


def test_memory_swap_thresholds_apply_only_when_there_is_swap(tmp_path):
    swap = psutil.swap_memory()

    result = run_memory(tmp_path, warning=100.0, critical=100.0, swap_critical=0.0)

    assert result.metrics["swap_total_bytes"] == swap.total
    if swap.total == 0:
        assert result.status is Status.OK
        assert result.summary.endswith(", no swap")
    else:
        assert result.status is Status.CRITICAL
        assert ", swap " in result.summary


def test_memory_swap_thresholds_are_off_by_default(tmp_path):
    result = run_memory(tmp_path, warning=100.0, critical=100.0)

    assert result.status is Status.OK


def test_memory_ok_run_lists_no_processes(tmp_path, holder):
    result = run_memory(tmp_path, top=20, warning=100.0, critical=100.0)

    assert result.status is Status.OK
    assert result.evidence == ()
