"""The busiest processes on this host, listed as evidence by cpu, memory and load.

Built to run every ten seconds: one pass over the process table reads only
what ranks a process (its CPU time, or its resident memory); the user name
and command line are read afterwards, for the few processes that are listed.
CPU use is the CPU time a process spent between two samples divided by the
wall-clock time between them, so nothing here ever sleeps.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Final

import psutil

COMMAND_WIDTH: Final = 120
"""Longest command line shown; longer ones are cut and end in ``...``."""

MAX_LISTED: Final = 50
"""Most processes one call lists, whatever the caller asks for."""

# psutil.process_iter caches its Process objects in one module-wide table and
# stores each call's answers on the shared objects (``proc.info``). Two checks
# iterating at once from different worker threads (cpu and memory, say) would
# read each other's answers, so every pass over the table holds this lock.
_PROCESS_TABLE_LOCK: Final = threading.Lock()

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

    Keeps ``{pid: (create_time, cpu seconds)}`` from the last call; the
    constructor takes the first sample, so the first :meth:`top` already
    covers the time since the check was created. Not safe to call from two
    threads at once (a check's runs never overlap).
    """

    def __init__(self) -> None:
        self._previous: dict[int, tuple[float, float]] = {}
        self._taken_at = 0.0
        self.top(0)

    def top(self, count: int) -> list[ProcessSummary]:
        """Sample again and return the ``count`` busiest processes since the last.

        Processes that used no CPU at all are not listed. A process that
        started since the previous sample counts all of its CPU time.

        :param count: how many to return, at most :data:`MAX_LISTED`.
        """
        with _PROCESS_TABLE_LOCK:
            taken_at = time.monotonic()
            current: dict[int, tuple[float, float]] = {}
            processes: dict[int, psutil.Process] = {}
            for process in psutil.process_iter(_CPU_ATTRS, ad_value=None):
                created, times = process.info["create_time"], process.info["cpu_times"]
                if created is None or times is None:
                    continue
                current[process.pid] = (created, times.user + times.system)
                processes[process.pid] = process

            # Rank by the CPU seconds used since the previous sample; a pid
            # whose create_time changed is a new process that reused the pid.
            elapsed = taken_at - self._taken_at
            used: list[tuple[float, int]] = []
            for pid, (created, seconds) in current.items():
                before = self._previous.get(pid)
                delta = (
                    seconds - before[1] if before and before[0] == created else seconds
                )
                if delta > 0:
                    used.append((delta, pid))
            used.sort(reverse=True)
            listed = [
                _summarise(processes[pid], cpu_percent=delta / elapsed * 100)
                for delta, pid in used[: _bounded(count)]
                if elapsed > 0
            ]

        self._previous, self._taken_at = current, taken_at
        return listed


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
