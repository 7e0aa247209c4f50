"""The ``disk`` check on this machine's real filesystems.

Thresholds are computed from the usage measured just before the run, with
wide margins, so each status is forced without filling a disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from notifier.checks.base import Status
from notifier.config import build_config
from notifier.errors import ConfigError
from notifier.plugins import build_registry
from notifier.runner import create_check, run_check


def disk_check(tmp_path: Path, **options):
    """Create a disk check the way the daemon does: validated config, hook,
    runner."""
    registry = build_registry()
    raw = {
        "notifier": {"state_dir": str(tmp_path / "state")},
        "check": [{"name": "data", "type": "disk", **options}],
    }
    config = build_config(raw, None, registry.check_type_map())
    return create_check(config.checks[0], registry, config)


def run_disk(tmp_path: Path, **options):
    return run_check(disk_check(tmp_path, **options), 10.0, "data")


def used_percent(path: Path) -> float:
    return psutil.disk_usage(str(path)).percent


def test_disk_is_ok_below_both_thresholds(tmp_path):
    used = used_percent(tmp_path)
    assert used < 95, "this test needs a filesystem that is not nearly full"

    result = run_disk(tmp_path, path=str(tmp_path), warning=99.0, critical=99.5)

    assert result.status is Status.OK
    assert result.value == pytest.approx(used, abs=2)


def test_disk_warns_between_warning_and_critical(tmp_path):
    used = used_percent(tmp_path)
    warning = used / 2
    critical = used + (100 - used) / 2

    result = run_disk(tmp_path, path=str(tmp_path), warning=warning, critical=critical)

    assert result.status is Status.WARNING


def test_disk_is_critical_above_critical(tmp_path):
    used = used_percent(tmp_path)

    result = run_disk(tmp_path, path=str(tmp_path), warning=used / 4, critical=used / 2)

    assert result.status is Status.CRITICAL


def test_disk_summary_names_mount_path_and_sizes(tmp_path):
    usage = psutil.disk_usage(str(tmp_path))

    result = run_disk(tmp_path, path=str(tmp_path))

    # tmp_path is a folder on some mount; the summary names both.
    assert f"(holding {tmp_path})" in result.summary
    assert "% full (" in result.summary
    assert " free of " in result.summary
    assert "\n" not in result.summary
    assert result.metrics["total_bytes"] == usage.total
    assert result.metrics["free_bytes"] == pytest.approx(usage.free, rel=0.05)
    assert result.metrics["used_percent"] == result.value


def test_disk_summary_names_mount_point_alone(tmp_path):
    result = run_disk(tmp_path, path="/")

    assert result.summary.startswith("/ is ")
    assert "holding" not in result.summary


def test_disk_free_critical_trips_when_free_space_at_or_below(tmp_path):
    free = psutil.disk_usage(str(tmp_path)).free

    result = run_disk(
        tmp_path,
        path=str(tmp_path),
        warning=100.0,
        critical=100.0,
        free_critical=str(free * 2),
    )

    assert result.status is Status.CRITICAL


def test_disk_free_warning_trips_alone(tmp_path):
    free = psutil.disk_usage(str(tmp_path)).free

    result = run_disk(
        tmp_path,
        path=str(tmp_path),
        warning=100.0,
        critical=100.0,
        free_warning=str(free * 2),
        free_critical=str(free // 2),
    )

    assert result.status is Status.WARNING


def test_disk_free_thresholds_written_as_sizes(tmp_path):
    result = run_disk(
        tmp_path, path=str(tmp_path), warning=100.0, critical=100.0, free_warning="1KiB"
    )

    assert result.status is Status.OK


def test_disk_inode_critical_trips_and_is_in_summary(tmp_path):
    stats = os.statvfs(tmp_path)
    if stats.f_files == 0:
        pytest.skip("this filesystem reports no inodes")
    inodes_used = (stats.f_files - stats.f_ffree) / stats.f_files * 100

    result = run_disk(
        tmp_path,
        path=str(tmp_path),
        warning=100.0,
        critical=100.0,
        inode_critical=inodes_used / 2,
    )

    assert result.status is Status.CRITICAL
    assert "of inodes used" in result.summary
    assert result.metrics["inodes_used_percent"] == pytest.approx(inodes_used, abs=1)


def test_disk_inode_thresholds_skipped_on_filesystem_without_inodes(tmp_path):
    # /proc is a real filesystem that reports zero inodes, like btrfs does.
    if os.statvfs("/proc").f_files != 0:
        pytest.skip("/proc reports inodes on this kernel")

    result = run_disk(
        tmp_path, path="/proc", warning=100.0, critical=100.0, inode_critical=0.0
    )

    assert result.status is Status.OK
    assert "inode use not reported" in result.summary
    assert "inodes_used_percent" not in result.metrics


def test_disk_missing_path_is_unknown_with_reason(tmp_path):
    missing = tmp_path / "not-mounted"

    result = run_disk(tmp_path, path=str(missing))

    assert result.status is Status.UNKNOWN
    assert result.summary.startswith(f"{missing} does not exist")


def test_disk_relative_path_is_a_config_error_naming_the_path(tmp_path):
    with pytest.raises(ConfigError) as caught:
        disk_check(tmp_path, path="var/log")

    assert (
        "[[check]] \"data\" path: 'var/log' is not an absolute path (write an "
        "absolute path, such as /var/log/syslog)"
    ) in str(caught.value)


def test_disk_threshold_out_of_range_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        disk_check(tmp_path, warning=150)

    assert '[[check]] "data" warning: 150 is above the maximum' in str(caught.value)


def test_disk_unknown_option_gets_a_hint(tmp_path):
    with pytest.raises(ConfigError) as caught:
        disk_check(tmp_path, free_warnin="1GiB")

    assert "did you mean 'free_warning'?" in str(caught.value)
