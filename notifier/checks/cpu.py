"""The built-in ``cpu`` check: how busy the CPUs were since the previous run.

The check keeps the system's CPU times from its previous run (the first run
compares with a sample taken when the check was created) and reports the
share of that interval spent busy, so a run never sleeps to measure it.
Time waiting for I/O counts as idle, as in ``top``; it is reported apart.
Registered through the public hook like any plugin.

Evidence: a run that is not OK lists the processes that used the most CPU
time since the previous run (or, when the previous run was well below the
thresholds and kept no per-process sample, over the 200 ms the run then
waits). An OK run has no evidence and reads the process table only once the
busy percent has reached 80% of the lower threshold, to keep a sample for the
next run; see :mod:`notifier.checks.procs`.
"""

from __future__ import annotations

import time
from typing import Final

import psutil

from notifier import hookimpl
from notifier.checks.base import CheckContext, CheckType, Result, threshold_status
from notifier.checks.procs import MAX_LISTED, BusiestProcesses
from notifier.options import Option
from notifier.units import format_duration

WARMUP_SECONDS: Final = 1.0
"""Shortest interval after creation that gives a meaningful first reading."""

IOWAIT_WORTH_SAYING: Final = 5.0
"""Percent of time waiting for I/O from which the summary mentions it."""

OPTIONS: Final = (
    Option(
        "warning",
        "float",
        90.0,
        "WARNING when the CPUs were busy this percent of the time, or more.",
        minimum=0,
        maximum=100,
    ),
    Option(
        "critical",
        "float",
        95.0,
        "CRITICAL when the CPUs were busy this percent of the time, or more.",
        minimum=0,
        maximum=100,
    ),
    Option(
        "top",
        "int",
        5,
        "How many of the busiest processes to list as evidence; 0 lists none.",
        minimum=0,
        maximum=MAX_LISTED,
    ),
)


@hookimpl
def notifier_check_types() -> list[CheckType]:
    """Provide the ``cpu`` check type."""
    return [
        CheckType(
            name="cpu",
            create=CpuCheck,
            options=OPTIONS,
            summary="Percent of CPU time busy since the previous run, with the "
            "busiest processes.",
        )
    ]


class CpuCheck:
    """Busy percent of all CPUs between two runs, and the processes behind it.

    ``warmup`` tells one-shot callers (``notifier check``) how long to wait
    after creating the check before its first run means something.
    """

    warmup: float = WARMUP_SECONDS

    def __init__(self, context: CheckContext) -> None:
        options = context.options
        self.warning: float = options["warning"]
        self.critical: float = options["critical"]
        self.top: int = options["top"]
        self._previous = psutil.cpu_times()
        self._previous_at = time.monotonic()
        self._processes = BusiestProcesses(self.top, self.warning, self.critical)

    def run(self) -> Result:
        """Return the busy percent since the previous run or creation."""
        current, now = psutil.cpu_times(), time.monotonic()
        shares = busy_shares(self._previous, current)
        window = now - self._previous_at
        self._previous, self._previous_at = current, now
        if shares is None:
            return Result.unknown(
                "cpu: no CPU time passed since the previous run; runs are too "
                "close together to measure"
            )

        busy = shares["busy_percent"]
        summary = f"cpu {round(busy):d}% busy over the last {_window(window)}"
        if shares["iowait_percent"] >= IOWAIT_WORTH_SAYING:
            summary += f", {round(shares['iowait_percent']):d}% waiting for I/O"
        status = threshold_status(busy, self.warning, self.critical)
        return Result(
            status,
            summary,
            metrics={**shares, "interval_seconds": round(window, 3)},
            value=busy,
            evidence=self._processes.evidence(status, busy),
        )


def busy_shares(
    before: tuple[float, ...], after: tuple[float, ...]
) -> dict[str, float] | None:
    """Return percent busy, user, system, iowait and steal between two
    ``psutil.cpu_times()`` samples, or ``None`` when no time passed.

    On Linux ``guest`` time is already counted in ``user`` (and ``guest_nice``
    in ``nice``), so it is not added again.
    """

    def spent(name: str) -> float:
        return float(getattr(after, name, 0.0)) - float(getattr(before, name, 0.0))

    fields: tuple[str, ...] = getattr(after, "_fields", ())
    total = sum(spent(name) for name in fields if name not in ("guest", "guest_nice"))
    if total <= 0:
        return None

    def share(amount: float) -> float:
        return round(min(100.0, max(0.0, amount / total * 100)), 1)

    idle = spent("idle") + spent("iowait")
    return {
        "busy_percent": share(total - idle),
        "user_percent": share(spent("user") + spent("nice")),
        "system_percent": share(spent("system") + spent("irq") + spent("softirq")),
        "iowait_percent": share(spent("iowait")),
        "steal_percent": share(spent("steal")),
    }


def _window(seconds: float) -> str:
    return format_duration(round(seconds) if seconds >= 1 else round(seconds, 2))
