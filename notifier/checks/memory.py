"""The built-in ``memory`` check: memory and swap in use.

Used memory is what ``psutil.virtual_memory().percent`` reports: the share of
RAM that is not available to new programs without swapping (page cache that
can be dropped counts as available). Swap has thresholds of its own, off
unless set. Registered through the public hook like any plugin.

Evidence: a run that is not OK lists the processes with the most resident
memory at that moment. An OK run has no evidence and reads no process, which
keeps a run every ten seconds cheap; see :mod:`notifier.checks.procs`.
"""

from __future__ import annotations

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
from notifier.checks.procs import MAX_LISTED, readable_size, top_by_memory
from notifier.options import Option

OPTIONS: Final = (
    Option(
        "warning",
        "float",
        90.0,
        "WARNING when this percent of memory is in use, or more.",
        minimum=0,
        maximum=100,
    ),
    Option(
        "critical",
        "float",
        95.0,
        "CRITICAL when this percent of memory is in use, or more.",
        minimum=0,
        maximum=100,
    ),
    Option(
        "swap_warning",
        "float",
        None,
        "WARNING when this percent of swap is in use, or more; unset is off.",
        minimum=0,
        maximum=100,
    ),
    Option(
        "swap_critical",
        "float",
        None,
        "CRITICAL when this percent of swap is in use, or more; unset is off.",
        minimum=0,
        maximum=100,
    ),
    Option(
        "top",
        "int",
        5,
        "How many of the largest processes (resident memory) to list as "
        "evidence; 0 lists none.",
        minimum=0,
        maximum=MAX_LISTED,
    ),
)


@hookimpl
def notifier_check_types() -> list[CheckType]:
    """Provide the ``memory`` check type."""
    return [
        CheckType(
            name="memory",
            create=MemoryCheck,
            options=OPTIONS,
            summary="Percent of memory and swap in use, with the largest processes.",
        )
    ]


class MemoryCheck:
    """Compares memory and swap use with thresholds."""

    def __init__(self, context: CheckContext) -> None:
        options = context.options
        self.warning: float = options["warning"]
        self.critical: float = options["critical"]
        self.swap_warning: float | None = options["swap_warning"]
        self.swap_critical: float | None = options["swap_critical"]
        self.top: int = options["top"]

    def run(self) -> Result:
        """Measure memory and swap once."""
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        statuses = [threshold_status(memory.percent, self.warning, self.critical)]
        summary = (
            f"memory {_percent(memory.percent)} used "
            f"({readable_size(memory.available)} available of "
            f"{readable_size(memory.total)})"
        )

        # A host without swap has nothing to compare; say so rather than
        # report "0% of 0B".
        if swap.total > 0:
            statuses.append(
                threshold_status(swap.percent, self.swap_warning, self.swap_critical)
            )
            summary += (
                f", swap {_percent(swap.percent)} used "
                f"({readable_size(swap.used)} of {readable_size(swap.total)})"
            )
        else:
            summary += ", no swap"

        # The process list is a pass over every process: only worth it when
        # someone will read it.
        status = worst(statuses)
        evidence: tuple[str, ...] = ()
        if status is not Status.OK:
            evidence = tuple(process.describe() for process in top_by_memory(self.top))
        return Result(
            status,
            summary,
            metrics={
                "used_percent": memory.percent,
                "available_bytes": memory.available,
                "total_bytes": memory.total,
                "swap_used_percent": swap.percent,
                "swap_used_bytes": swap.used,
                "swap_total_bytes": swap.total,
            },
            value=memory.percent,
            evidence=evidence,
        )


def _percent(value: float) -> str:
    return f"{round(value, 1):g}%"
