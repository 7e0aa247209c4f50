"""Drop-in check ``systemd_failed``: are any systemd units in the failed state?

Copy this file into a folder named in ``[notifier] plugin_dirs``, then::

    [[check]]
    name = "failed-units"
    type = "systemd_failed"
    ignore = ['^apt-daily']

It asks ``systemctl list-units --failed --output=json`` (systemd 246 and
later) and falls back to the plain listing on older systemd. The units are
the evidence, one line each; ``failed_units`` is the metric and the value.
When systemd is not running (a container, a chroot), the check is UNKNOWN
with systemctl's own explanation.

``systemctl`` runs through :func:`notifier.checks.command.run_command`, so a
hung systemctl (a stuck D-Bus) is killed at the check's timeout like any
``command`` check's program.
"""

from __future__ import annotations

import json
import re
from typing import Final

from notifier import CheckContext, CheckType, Option, Result, Status, hookimpl
from notifier.checks.command import CommandError, budget_for, run_command

MAX_EVIDENCE: Final = 50

OPTIONS: Final = (
    Option(
        "ignore",
        "regex_list",
        (),
        "Units whose name matches one of these regexes are not counted.",
    ),
    Option(
        "status",
        "choice",
        "critical",
        "How bad a failed unit is.",
        choices=("warning", "critical"),
    ),
    Option(
        "user", "bool", False, "Look at the user's units (--user), not the system's."
    ),
)


class SystemdFailedCheck:
    """One configured ``systemd_failed`` check."""

    def __init__(self, context: CheckContext) -> None:
        self.ignore = [re.compile(pattern) for pattern in context.options["ignore"]]
        self.bad_status = Status[context.options["status"].upper()]
        self.scope = ["--user"] if context.options["user"] else []
        self.timeout = context.timeout

    def run(self) -> Result:
        """List the failed units and judge them."""
        try:
            units = self.failed_units()
        except RuntimeError as error:
            return Result.unknown(str(error))

        counted = [u for u in units if not any(p.search(u[0]) for p in self.ignore)]
        evidence = tuple(f"{unit}: {state} ({about})" for unit, state, about in counted)
        metrics = {"failed_units": float(len(counted))}
        if not counted:
            ignored = len(units) - len(counted)
            note = f" ({ignored} ignored)" if ignored else ""
            return Result(Status.OK, f"no failed units{note}", metrics, 0.0)
        names = ", ".join(unit for unit, _, _ in counted[:3])
        more = f" and {len(counted) - 3} more" if len(counted) > 3 else ""
        summary = f"{len(counted)} failed unit{'s' if len(counted) > 1 else ''}: "
        return Result(
            self.bad_status,
            summary + names + more,
            metrics,
            float(len(counted)),
            evidence[:MAX_EVIDENCE],
        )

    def failed_units(self) -> list[tuple[str, str, str]]:
        """Return (unit, sub-state, description) of every failed unit.

        :raises RuntimeError: when systemctl cannot tell; the message is why.
        """
        base = ["systemctl", *self.scope, "list-units", "--failed", "--no-pager"]
        as_json = self.systemctl([*base, "--output=json"])
        if as_json is not None:
            parsed = _from_json(as_json)
            if parsed is not None:
                return parsed
        plain = self.systemctl([*base, "--plain", "--no-legend"], must=True)
        return _from_plain(plain or "")

    def systemctl(self, argv: list[str], *, must: bool = False) -> str | None:
        """Return what ``argv`` printed, or ``None`` when it failed.

        :raises RuntimeError: when ``must`` and it failed.
        """
        # Two calls may be needed; each gets half the time.
        budget = budget_for(self.timeout / 2)
        try:
            finished = run_command(argv, timeout=budget.run, grace=budget.grace)
        except CommandError as error:
            raise RuntimeError(str(error)) from error
        if finished.returncode == 0:
            return finished.stdout.decode("utf-8", errors="replace")
        if not must:
            return None
        if finished.timed_out:
            msg = "systemctl did not answer in time"
            raise RuntimeError(msg)
        said = finished.stderr.decode("utf-8", errors="replace").strip()
        first = said.splitlines()[0] if said else f"exit status {finished.returncode}"
        msg = f"systemctl: {first}"
        raise RuntimeError(msg)


def _from_json(text: str) -> list[tuple[str, str, str]] | None:
    try:
        rows = json.loads(text)
    except ValueError:
        return None
    if not isinstance(rows, list):
        return None
    return [
        (
            str(row.get("unit", "?")),
            str(row.get("sub", "")),
            str(row.get("description", "")),
        )
        for row in rows
        if isinstance(row, dict)
    ]


def _from_plain(text: str) -> list[tuple[str, str, str]]:
    units = []
    for line in text.splitlines():
        # Some versions mark failed units with a bullet even with --plain.
        fields = line.replace("\u25cf", " ").split(None, 4)
        if len(fields) >= 4:
            description = fields[4] if len(fields) == 5 else ""
            units.append((fields[0], fields[3], description))
    return units


@hookimpl
def notifier_check_types() -> list[CheckType]:
    """Provide the ``systemd_failed`` check type."""
    return [
        CheckType(
            name="systemd_failed",
            create=SystemdFailedCheck,
            options=OPTIONS,
            summary="Report systemd units in the failed state.",
        )
    ]
