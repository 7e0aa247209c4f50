"""The busiest processes on this host, listed as evidence by cpu, memory and load.

Built to run every ten seconds, and to cost next to nothing while all is well.
A pass over the process table reads every process on the host (about 5 ms of
CPU for a hundred processes), so the checks make one only when the evidence
can matter:

- ``memory`` lists the largest processes only on a run that is not OK:
  resident memory is a reading of the moment, so nothing is lost by not
  looking earlier.
- ``cpu`` and ``load`` rank processes by the CPU time they used between two
  samples, divided by the wall-clock time between them, which needs a sample
  from before. :class:`BusiestProcesses` takes one per-process sample on a
  run that is not OK, and on an OK run whose value has reached
  :data:`SAMPLE_FROM_SHARE` of its lowest threshold, so that the next bad run
  ranks the processes over the whole interval since that run. An OK run
  further from the thresholds forgets the sample and reads no process at all.
  A bad run without a sample from the previous run (the value jumped from
  well below the thresholds) takes two samples :data:`FRESH_SAMPLE_GAP`
  apart: only such a run waits, and only its worker thread.

The figures the checks compare never wait either: the cpu check's busy
percent comes from the kernel's CPU counters compared with its previous run's,
the load average from the kernel. User name and command line are read only
for the few processes that are listed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Final

import psutil

from notifier.checks.base import Status

COMMAND_WIDTH: Final = 120
"""Longest command line shown; longer ones are cut and end in ``...``."""

MAX_LISTED: Final = 50
"""Most processes one call lists, whatever the caller asks for."""

# psutil.process_iter caches its Process objects in one module-wide table and
# stores each call's answers on the shared objects (``proc.info``). Two checks
# iterating at once from different worker threads (cpu and memory, say) would
# read each other's answers, so every pass over the table holds this lock.
_PROCESS_TABLE_LOCK: Final = threading.Lock()

SAMPLE_FROM_SHARE: Final = 0.8
"""Share of its lowest threshold from which an OK cpu or load run samples the
processes' CPU times, so that a bad run next has a previous sample to rank by."""

FRESH_SAMPLE_GAP: Final = 0.2
"""Seconds between the two samples of a bad run that has no previous sample:
long enough for a process busy on one core to show with about 20 clock ticks,
short beside a check's ``timeout`` (30s unless set)."""

_CPU_ATTRS: Final = ["pid", "create_time", "cpu_times"]
_MEMORY_ATTRS: Final = ["pid", "memory_info"]


@dataclass(frozen=True)
class ProcessSummary:
    """One listed process.

    :param cpu_percent: CPU use since the previous sample, in percent of one
        core as ``top`` shows it (a busy process with four threads can show
        400); ``None`` when ranked by memory.
    :param rss_bytes: resident memory; ``None`` when ranked by CPU.
    """

    pid: int
    user: str
    command: str
    cpu_percent: float | None = None
    rss_bytes: int | None = None

    def describe(self) -> str:
        """Return one evidence line: pid, user, the measured amount, command."""
        if self.cpu_percent is not None:
            amount = f"{self.cpu_percent:6.1f}% cpu"
        elif self.rss_bytes is not None:
            amount = f"{readable_size(self.rss_bytes):>8} resident"
        else:
            amount = ""
        return f"pid {self.pid:<7} {self.user:<10} {amount}  {self.command}"


class CpuTracker:
    """Ranks processes by the CPU time they used since the previous sample.

    Keeps ``{pid: (create_time, cpu seconds)}`` from the last sample; the
    constructor takes the first, so a :meth:`top` right after the warm-up
    covers the time since the check was created. Not safe to call from two
    threads at once (a check's runs never overlap).
    """

    def __init__(self) -> None:
        self._previous: dict[int, tuple[float, float]] | None = None
        self._taken_at = 0.0
        self.sample()

    @property
    def has_sample(self) -> bool:
        """Whether a sample is kept for the next :meth:`top` to compare with."""
        return self._previous is not None

    def sample(self) -> None:
        """Read every process's CPU time and keep it for the next :meth:`top`."""
        with _PROCESS_TABLE_LOCK:
            self._taken_at = time.monotonic()
            self._previous = {
                pid: cpu for pid, (cpu, _process) in _cpu_times_by_pid().items()
            }

    def forget(self) -> None:
        """Drop the kept sample, so that a later :meth:`top` takes a fresh one."""
        self._previous = None

    def top(self, count: int) -> list[ProcessSummary]:
        """Sample again and return the ``count`` busiest processes since the last.

        Without a kept sample (none yet, or :meth:`forget` was called) it takes
        one and waits :data:`FRESH_SAMPLE_GAP` before the second: this call
        then blocks its thread for that long. Processes that used no CPU at
        all are not listed. A process that started since the previous sample
        counts all of its CPU time. The new sample is kept for the next call.

        :param count: how many to return, at most :data:`MAX_LISTED`.
        """
        if self._previous is None:
            self.sample()
            time.sleep(FRESH_SAMPLE_GAP)
        previous = self._previous or {}

        with _PROCESS_TABLE_LOCK:
            taken_at = time.monotonic()
            current = _cpu_times_by_pid()

            # Rank by the CPU seconds used since the previous sample; a pid
            # whose create_time changed is a new process that reused the pid.
            elapsed = taken_at - self._taken_at
            used: list[tuple[float, int]] = []
            for pid, ((created, seconds), _process) in current.items():
                before = previous.get(pid)
                delta = (
                    seconds - before[1] if before and before[0] == created else seconds
                )
                if delta > 0:
                    used.append((delta, pid))
            used.sort(reverse=True)
            listed = [
                _summarise(current[pid][1], cpu_percent=delta / elapsed * 100)
                for delta, pid in used[: _bounded(count)]
                if elapsed > 0
            ]

        self._previous = {pid: cpu for pid, (cpu, _process) in current.items()}
        self._taken_at = taken_at
        return listed


class BusiestProcesses:
    """The evidence of the cpu and load checks: the busiest processes, read
    only when they can matter (see the module docstring for when).

    One per check; not safe to call from two threads at once.

    :param count: how many processes a bad run lists; 0 reads none, ever.
    :param warning: the check's WARNING threshold (higher is worse), or
        ``None``.
    :param critical: the check's CRITICAL threshold, or ``None``.
    """

    def __init__(
        self, count: int, warning: float | None, critical: float | None
    ) -> None:
        self.count = _bounded(count)
        thresholds = [value for value in (warning, critical) if value is not None]
        self.sample_from: float | None = (
            min(thresholds) * SAMPLE_FROM_SHARE if thresholds else None
        )
        self._tracker = CpuTracker() if self.count else None

    @property
    def keeps_sample(self) -> bool:
        """Whether a per-process sample is kept for the next run to rank by."""
        return self._tracker is not None and self._tracker.has_sample

    def evidence(self, status: Status, value: float) -> tuple[str, ...]:
        """Return the evidence lines for one run's verdict on ``value``.

        Empty on an OK run, which reads no process at all unless ``value``
        has reached :attr:`sample_from` (then it samples for the next run).
        A run that is not OK lists the busiest processes since the previous
        run's sample, or over :data:`FRESH_SAMPLE_GAP` when there is none.
        """
        if self._tracker is None:
            return ()

        if status is not Status.OK:
            return tuple(
                process.describe() for process in self._tracker.top(self.count)
            )

        if self.sample_from is not None and value >= self.sample_from:
            self._tracker.sample()
        else:
            self._tracker.forget()
        return ()


def top_by_memory(count: int) -> list[ProcessSummary]:
    """Return the ``count`` processes with the most resident memory, largest first.

    :param count: how many to return, at most :data:`MAX_LISTED`.
    """
    with _PROCESS_TABLE_LOCK:
        ranked: list[tuple[int, int, psutil.Process]] = []
        for process in psutil.process_iter(_MEMORY_ATTRS, ad_value=None):
            memory = process.info["memory_info"]
            if memory is not None and memory.rss > 0:
                ranked.append((memory.rss, process.pid, process))
        ranked.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
        return [
            _summarise(process, rss_bytes=rss)
            for rss, _pid, process in ranked[: _bounded(count)]
        ]


def readable_size(size: int) -> str:
    """Return ``size`` bytes for a person to read: ``8.2GiB``, ``98GiB``.

    Unlike :func:`notifier.units.format_size`, which keeps exact multiples
    exact so that they parse back (and so prints a disk as ``83259008KiB``),
    this always picks the largest binary unit and one decimal at most.
    """
    units = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
    for unit, factor in units:
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + unit
    return f"{size}B"


def _cpu_times_by_pid() -> dict[int, tuple[tuple[float, float], psutil.Process]]:
    """Return ``{pid: ((create_time, cpu seconds), process)}`` for every process
    that could be read; the caller holds :data:`_PROCESS_TABLE_LOCK`."""
    found: dict[int, tuple[tuple[float, float], psutil.Process]] = {}
    for process in psutil.process_iter(_CPU_ATTRS, ad_value=None):
        created, times = process.info["create_time"], process.info["cpu_times"]
        if created is not None and times is not None:
            found[process.pid] = ((created, times.user + times.system), process)
    return found


def _bounded(count: int) -> int:
    return max(0, min(count, MAX_LISTED))


def _summarise(
    process: psutil.Process,
    *,
    cpu_percent: float | None = None,
    rss_bytes: int | None = None,
) -> ProcessSummary:
    """Read user and command line of one listed process; a process that is
    gone or hidden by now keeps its pid with ``?`` for what could not be read."""
    try:
        user = process.username()
    except psutil.Error:
        user = "?"
    try:
        command = " ".join(process.cmdline())
        if not command:
            command = f"[{process.name()}]"
    except psutil.Error:
        command = "?"
    return ProcessSummary(
        pid=process.pid,
        user=_printable(user, 32),
        command=_printable(command, COMMAND_WIDTH),
        cpu_percent=cpu_percent,
        rss_bytes=rss_bytes,
    )


def _printable(text: str, width: int) -> str:
    """Return ``text`` on one line, control characters replaced, cut to
    ``width``: a command line is chosen by whoever started the process, and it
    ends up in a terminal and an email."""
    cleaned = "".join(char if char.isprintable() else "?" for char in text)
    if len(cleaned) > width:
        return cleaned[: width - 3] + "..."
    return cleaned
