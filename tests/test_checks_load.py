"""The ``load`` check on this machine's real load averages."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from notifier.checks.base import Status
from notifier.config import build_config
from notifier.errors import ConfigError
from notifier.plugins import build_registry
from notifier.runner import create_check, run_check


def load_check(tmp_path: Path, **options):
    registry = build_registry()
    raw = {
        "notifier": {"state_dir": str(tmp_path / "state")},
        "check": [{"name": "load", "type": "load", **options}],
    }
    config = build_config(raw, None, registry.check_type_map())
    return create_check(config.checks[0], registry, config)


def run_load(tmp_path: Path, **options):
    return run_check(load_check(tmp_path, **options), 10.0, "load")


def test_load_is_ok_under_huge_thresholds(tmp_path):
    result = run_load(tmp_path, warning=1e6, critical=1e6)

    assert result.status is Status.OK


def test_load_warning_of_zero_warns(tmp_path):
    result = run_load(tmp_path, warning=0.0, critical=1e6)

    assert result.status is Status.WARNING


def test_load_critical_of_zero_is_critical(tmp_path):
    result = run_load(tmp_path, warning=0.0, critical=0.0)

    assert result.status is Status.CRITICAL


def test_load_per_core_divides_by_the_number_of_cpus(tmp_path):
    cores = psutil.cpu_count(logical=True) or os.cpu_count()

    result = run_load(tmp_path, minutes=15, per_core=True)

    assert result.metrics["cores"] == cores
    assert result.value == pytest.approx(result.metrics["load_15m"] / cores)
    assert f"over 15 min ({result.value:.2f} per core, {cores} cores)" in (
        result.summary
    )


def test_load_without_per_core_compares_the_raw_average(tmp_path):
    result = run_load(tmp_path, minutes=1, per_core=False)

    assert result.value == result.metrics["load_1m"]
    assert result.summary == f"load {result.value:.2f} over 1 min"


def test_load_defaults_to_the_five_minute_average(tmp_path):
    result = run_load(tmp_path)

    cores = result.metrics["cores"]
    assert result.value == pytest.approx(result.metrics["load_5m"] / cores)


def test_load_minutes_other_than_1_5_15_is_a_config_error(tmp_path):
    raw = {"check": [{"name": "load", "type": "load", "minutes": 7}]}
    registry = build_registry([], load_entry_points=False)

    with pytest.raises(ConfigError) as caught:
        build_config(raw, tmp_path / "n.toml", registry.check_type_map())

    assert str(caught.value) == (
        f'{tmp_path / "n.toml"}: [[check]] "load" minutes: 7 is not valid '
        "(use one of 1, 5, 15)"
    )


def test_load_lists_the_busiest_processes(tmp_path):
    check = load_check(tmp_path, top=10, warning=0.0, critical=1e6)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        process = psutil.Process(burner.pid)
        deadline = time.monotonic() + 60
        while sum(process.cpu_times()[:2]) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        result = run_check(check, 10.0, "load")
    finally:
        burner.kill()
        burner.wait()

    assert [line for line in result.evidence if line.startswith(f"pid {burner.pid} ")]


def test_load_lists_processes_only_on_a_run_that_is_not_ok(tmp_path):
    calm = load_check(tmp_path, top=50, warning=1e6, critical=1e6)
    # The load average is never negative: 0 is below current usage.
    tripped = load_check(tmp_path, top=50, warning=0.0, critical=1e6)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        process = psutil.Process(burner.pid)
        deadline = time.monotonic() + 60
        while sum(process.cpu_times()[:2]) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        ok = run_check(calm, 10.0, "load")
        bad = run_check(tripped, 10.0, "load")
    finally:
        burner.kill()
        burner.wait()

    assert ok.status is Status.OK
    assert ok.evidence == ()
    assert bad.status is Status.WARNING
    assert [line for line in bad.evidence if line.startswith(f"pid {burner.pid} ")]
