"""The built-in ``disk`` check: space and inodes used on one filesystem.

Space comes from ``psutil.disk_usage``, the numbers ``df`` shows: the percent
is of the space ordinary users can fill, so blocks reserved for root count as
neither used nor free and 100% means only root can still write. Inodes come
from ``os.statvfs``. Registered through the public hook like any plugin.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import psutil

from notifier import hookimpl
from notifier.checks.base import (
    CheckContext,
    CheckType,
    Result,
    Status,
    threshold_status,
    worst,
)
from notifier.checks.procs import readable_size
from notifier.options import Option

OPTIONS: Final = (
    Option(
        "path",
        "path",
        Path("/"),
        "Mount point to watch, or any path on that filesystem.",
    ),
    Option(
        "warning",
        "float",
        80.0,
        "WARNING when this percent of the space is used, or more.",
        minimum=0,
        maximum=100,
    ),
    Option(
        "critical",
        "float",
        90.0,
        "CRITICAL when this percent of the space is used, or more.",
        minimum=0,
        maximum=100,
    ),
    Option(
        "free_warning",
        "size",
        None,
        "WARNING when this much space is free, or less ('10GiB'); unset is off.",
    ),
    Option(
        "free_critical",
        "size",
        None,
        "CRITICAL when this much space is free, or less ('2GiB'); unset is off.",
    ),
    Option(
        "inode_warning",
        "float",
        None,
        "WARNING when this percent of the inodes is used, or more; unset is off.",
        minimum=0,
        maximum=100,
    ),
    Option(
        "inode_critical",
        "float",
        None,
        "CRITICAL when this percent of the inodes is used, or more; unset is off.",
        minimum=0,
        maximum=100,
    ),
)


@hookimpl
def notifier_check_types() -> list[CheckType]:
    """Provide the ``disk`` check type."""
    return [
        CheckType(
            name="disk",
            create=DiskCheck,
            options=OPTIONS,
            summary="Space and inodes used on the filesystem holding a path.",
        )
    ]


class DiskCheck:
    """Compares the used space, free space and used inodes with thresholds."""

    def __init__(self, context: CheckContext) -> None:
        """Read the options.

        :raises ValueError: when ``path`` is relative: the daemon's working
            folder is not something a configuration should depend on.
        """
        options = context.options
        self.path: Path = options["path"]
        if not self.path.is_absolute():
            msg = f"path {str(self.path)!r} is relative; write it from '/'"
            raise ValueError(msg)
        self.warning: float = options["warning"]
        self.critical: float = options["critical"]
        self.free_warning: int | None = options["free_warning"]
        self.free_critical: int | None = options["free_critical"]
        self.inode_warning: float | None = options["inode_warning"]
        self.inode_critical: float | None = options["inode_critical"]

    def run(self) -> Result:
        """Measure the filesystem once; UNKNOWN when the path cannot be read."""
        try:
            usage = psutil.disk_usage(str(self.path))
            inodes = os.statvfs(self.path)
        except FileNotFoundError:
            return Result.unknown(
                f"{self.path} does not exist; set path to a mount point or a "
                "folder on the filesystem to watch"
            )
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            return Result.unknown(f"cannot read {self.path}: {reason}")

        used_percent = usage.percent
        statuses = [
            threshold_status(used_percent, self.warning, self.critical),
            threshold_status(
                usage.free,
                self.free_warning,
                self.free_critical,
                higher_is_worse=False,
            ),
        ]
        metrics: dict[str, float] = {
            "used_percent": used_percent,
            "free_bytes": usage.free,
            "total_bytes": usage.total,
        }
        summary = (
            f"{_place(self.path)} is {_percent(used_percent)} full "
            f"({readable_size(usage.free)} free of {readable_size(usage.total)})"
        )

        # Some filesystems (btrfs, vfat, network mounts) report no inodes at
        # all; for them inode thresholds cannot trip and say so.
        if inodes.f_files > 0:
            inode_percent = (inodes.f_files - inodes.f_ffree) / inodes.f_files * 100
            metrics["inodes_used_percent"] = round(inode_percent, 1)
            inode_status = threshold_status(
                inode_percent, self.inode_warning, self.inode_critical
            )
            statuses.append(inode_status)
            if self._watches_inodes() or inode_status is not Status.OK:
                summary += f", {_percent(inode_percent)} of inodes used"
        elif self._watches_inodes():
            summary += ", inode use not reported by this filesystem"

        return Result(
            worst(statuses),
            summary,
            metrics=metrics,
            value=used_percent,
        )

    def _watches_inodes(self) -> bool:
        return self.inode_warning is not None or self.inode_critical is not None


def _place(path: Path) -> str:
    """Return how the summary names ``path``: the mount point, and the path
    itself when it is somewhere below it."""
    mount = path
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    return str(path) if mount == path else f"{mount} (holding {path})"


def _percent(value: float) -> str:
    return f"{round(value, 1):g}%"
