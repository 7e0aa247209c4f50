"""The built-in ``load`` check: the kernel's load average, optionally per core.

The load average counts processes running or waiting to run (and, on Linux,
those in uninterruptible disk sleep), averaged by the kernel over 1, 5 and 15
minutes. ``minutes`` picks which average is compared, 5 by default: the
1-minute figure jumps with every cron job, the 15-minute one reacts late.
``per_core`` (on by default) divides it by the number of logical CPUs, so
the same thresholds suit a small and a large machine. Registered through the
public hook like any plugin.

Evidence: a run that is not OK lists the processes that used the most CPU
time since the previous run (or over the 200 ms the run waits when the
previous run was well below the thresholds and kept no per-process sample).
An OK run has no evidence and reads the process table only once the compared
load has reached 80% of the lower threshold, to keep a sample for the next
run; see :mod:`notifier.checks.procs`.
"""

from __future__ import annotations

import os
from typing import Final

import psutil

from notifier import hookimpl
from notifier.checks.base import CheckContext, CheckType, Result, threshold_status
from notifier.checks.procs import MAX_LISTED, BusiestProcesses
from notifier.options import Option

AVERAGED_MINUTES: Final = (1, 5, 15)
WARMUP_SECONDS: Final = 1.0
"""Interval after creation that gives the busiest-process list meaning."""

OPTIONS: Final = (
    Option(
        "minutes",
        "int",
        5,
        "Which load average to compare: over 1, 5 or 15 minutes.",
        choices=("1", "5", "15"),
    ),
    Option(
        "per_core",
        "bool",
        True,
        "Divide the load by the number of logical CPUs before comparing.",
    ),
    Option(
        "warning",
        "float",
        2.0,
        "WARNING when the load (per core, with per_core) is this high, or more.",
        minimum=0,
    ),
    Option(
        "critical",
        "float",
        4.0,
        "CRITICAL when the load (per core, with per_core) is this high, or more.",
        minimum=0,
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
    """Provide the ``load`` check type."""
    return [
        CheckType(
            name="load",
            create=LoadCheck,
            options=OPTIONS,
            summary="Load average over 1, 5 or 15 minutes, optionally per core.",
        )
    ]


class LoadCheck:
    """Compares one load average with thresholds; lists the busiest processes.

    ``warmup`` tells one-shot callers how long to wait after creating the
    check before the busiest-process list covers a useful interval.
    """

    warmup: float = WARMUP_SECONDS

    def __init__(self, context: CheckContext) -> None:
        """Read the options.

        :raises ValueError: when ``minutes`` is not 1, 5 or 15.
        """
        options = context.options
        self.minutes: int = options["minutes"]
        if self.minutes not in AVERAGED_MINUTES:
            msg = (
                f"minutes = {self.minutes} is not an average the kernel keeps; "
                "use 1, 5 or 15"
            )
            raise ValueError(msg)
        self.per_core: bool = options["per_core"]
        self.warning: float = options["warning"]
        self.critical: float = options["critical"]
        self.top: int = options["top"]
        self._processes = BusiestProcesses(self.top, self.warning, self.critical)

    def run(self) -> Result:
        """Read the load averages once."""
        averages = dict(zip(AVERAGED_MINUTES, psutil.getloadavg(), strict=True))
        cores = psutil.cpu_count(logical=True) or os.cpu_count() or 1
        load = averages[self.minutes]
        compared = load / cores if self.per_core else load
        summary = f"load {load:.2f} over {self.minutes} min"
        summary += f" ({compared:.2f} per core, {cores} cores)" if self.per_core else ""
        status = threshold_status(compared, self.warning, self.critical)
        return Result(
            status,
            summary,
            metrics={
                "load_1m": averages[1],
                "load_5m": averages[5],
                "load_15m": averages[15],
                "cores": cores,
                "compared": round(compared, 3),
            },
            value=compared,
            evidence=self._processes.evidence(status, compared),
        )
