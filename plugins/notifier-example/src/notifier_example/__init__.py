"""Check type ``file_age``: a file that should be touched regularly, is it?

A nightly backup that touches ``/var/backups/last-ok`` when it succeeds is
the classic case: when the stamp is older than a day and a half, the backup
has stopped working, whatever it logged::

    [[check]]
    name = "backup"
    type = "file_age"
    path = "/var/backups/last-ok"
    warning = "26h"
    critical = "36h"

Metric and value: ``age_seconds``. A missing file is ``missing`` (CRITICAL
by default).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

from notifier import (
    CheckContext,
    CheckType,
    Option,
    Result,
    Status,
    hookimpl,
    threshold_status,
)
from notifier.units import format_duration

OPTIONS: Final = (
    Option("path", "path", required=True, help="The file whose age is checked."),
    Option("warning", "duration", 26 * 3600.0, "Age at or above this is WARNING."),
    Option("critical", "duration", 36 * 3600.0, "Age at or above this is CRITICAL."),
    Option(
        "missing",
        "choice",
        "critical",
        "Status when the file does not exist.",
        choices=("ok", "warning", "critical", "unknown"),
    ),
)


class FileAgeCheck:
    """One configured ``file_age`` check."""

    def __init__(self, context: CheckContext) -> None:
        self.path: Path = context.options["path"]
        self.warning: float = context.options["warning"]
        self.critical: float = context.options["critical"]
        self.missing = Status[context.options["missing"].upper()]

    def run(self) -> Result:
        """Compare the file's age with the thresholds."""
        try:
            modified = self.path.stat().st_mtime
        except FileNotFoundError:
            return Result(self.missing, f"{self.path} does not exist")

        age = max(0.0, time.time() - modified)
        status = threshold_status(age, self.warning, self.critical)
        shown = format_duration(round(age)) if age >= 1 else "0s"
        summary = f"{self.path} was modified {shown} ago"
        return Result(status, summary, {"age_seconds": age}, age)


@hookimpl
def notifier_check_types() -> list[CheckType]:
    """Provide the ``file_age`` check type."""
    return [
        CheckType(
            name="file_age",
            create=FileAgeCheck,
            options=OPTIONS,
            summary="Alert when a file has not been modified for too long.",
        )
    ]
