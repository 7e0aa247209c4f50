"""Drop-in check ``crashdump``: a crash dump appeared; send the newest along.

Copy this file into a folder named in ``[notifier] plugin_dirs``, then::

    [[check]]
    name = "crashes"
    type = "crashdump"
    folder = "/var/crash"
    pattern = "*.crash"
    recent = "1d"

Any file matching ``pattern`` in ``folder`` modified within ``recent`` makes
the check ``status`` (CRITICAL by default). The newest one goes in
``Result.attachments``, so the alert email carries it (its tail, size-capped
and compressed by the mail side); the others are listed as evidence.

The check also shows how to keep something between runs: the modification
time of the newest dump already seen is stored in ``context.state_dir``,
which the daemon keeps across restarts, and ``new_dumps`` counts the dumps
newer than that.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

from notifier import CheckContext, CheckType, Option, Result, Status, hookimpl
from notifier.units import format_duration, format_size

MAX_EVIDENCE: Final = 10

OPTIONS: Final = (
    Option("folder", "path", Path("/var/crash"), "Folder where dumps are written."),
    Option("pattern", "str", "*", "Glob of the dump files' names, such as '*.crash'."),
    Option(
        "recent",
        "duration",
        86400.0,
        "Dumps modified this recently count; older ones are history.",
        minimum=1,
    ),
    Option(
        "status",
        "choice",
        "critical",
        "How bad a recent dump is.",
        choices=("warning", "critical"),
    ),
)


class CrashDumpCheck:
    """One configured ``crashdump`` check."""

    def __init__(self, context: CheckContext) -> None:
        self.folder: Path = context.options["folder"]
        self.pattern: str = context.options["pattern"]
        self.recent_for: float = context.options["recent"]
        self.bad_status = Status[context.options["status"].upper()]
        self.seen_file = context.state_dir / "newest-seen"

    def run(self) -> Result:
        """Look for recent dumps; attach the newest."""
        if not self.folder.is_dir():
            return Result.unknown(f"folder {self.folder} does not exist")

        now = time.time()
        dumps = self.dumps()
        recent = [dump for dump in dumps if now - dump[0] <= self.recent_for]
        new = [dump for dump in dumps if dump[0] > self.newest_seen()]
        if dumps:
            self.seen_file.write_text(repr(dumps[0][0]))
        metrics = {"recent_dumps": float(len(recent)), "new_dumps": float(len(new))}

        period = format_duration(self.recent_for)
        if not recent:
            summary = f"no crash dump in {self.folder} in the last {period}"
            return Result(Status.OK, summary, metrics, 0.0)
        newest_mtime, newest_size, newest = recent[0]
        age = round(now - newest_mtime)
        when = f"{format_duration(age)} ago" if age >= 1 else "just now"
        count = len(recent)
        summary = (
            f"{count} crash dump{'s' if count > 1 else ''} in {self.folder} in the "
            f"last {period}; newest {newest.name} ({format_size(newest_size)}, {when})"
        )
        evidence = tuple(
            f"{path} ({format_size(size)})" for _, size, path in recent[:MAX_EVIDENCE]
        )
        return Result(
            self.bad_status,
            summary,
            metrics,
            float(count),
            evidence,
            attachments=(newest,),
        )

    def dumps(self) -> list[tuple[float, int, Path]]:
        """Return (mtime, size, path) of every dump, newest first."""
        found = []
        for path in self.folder.glob(self.pattern):
            try:
                status = path.stat()
            except OSError:
                continue  # deleted while we looked
            if path.is_file():
                found.append((status.st_mtime, status.st_size, path))
        return sorted(found, reverse=True)

    def newest_seen(self) -> float:
        """Return the modification time of the newest dump of earlier runs."""
        try:
            return float(self.seen_file.read_text())
        except (FileNotFoundError, ValueError):
            return 0.0


@hookimpl
def notifier_check_types() -> list[CheckType]:
    """Provide the ``crashdump`` check type."""
    return [
        CheckType(
            name="crashdump",
            create=CrashDumpCheck,
            options=OPTIONS,
            summary="Alert on recent crash dumps and attach the newest.",
        )
    ]
