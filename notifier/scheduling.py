"""APScheduler as the daemon uses it, imported without what it never needs.

The idle daemon's budget is 25 MB resident, and a bare Python 3.11 is 10.6
MiB of it. APScheduler 3 imports, at its own import, four modules that a
daemon of threads and plain functions never uses, each of which brings more:

- ``asyncio``, for ``iscoroutinefunction`` (it refuses coroutines as jobs of
  a thread pool); ``asyncio`` brings ``ssl`` and OpenSSL, about 7 MiB.
- ``importlib.metadata``, to read its own version and to scan every installed
  distribution for plugin aliases (``"interval"``, ``"threadpool"``); it
  brings ``zipfile``, ``csv`` and ``email``, and the scan leaves its garbage
  in the heap: about 1 MiB, and 10 to 20 ms of every start.
- ``multiprocessing`` and ``concurrent.futures.process``, for the process
  pool executor: about 1 MiB.
- ``uuid``, for ``uuid4``, which names a job given no id (the daemon names
  every job); it brings ``platform``: 0.3 MiB. Its stand-in's ``uuid4``
  imports the real module when called.

So while APScheduler is first imported, those modules are stand-ins
(:func:`_stand_ins`) holding just the names it binds at import time, and they
are removed at once: a later ``import asyncio`` (or any of them) gets the
real module. Where a real one is already loaded (a test process), it is kept.

What that changes: the daemon passes every trigger, executor and job store
as an instance, never by alias, so the empty alias tables are never read;
``apscheduler.__version__`` reads ``3.5.0``, its fallback when it cannot
find its own metadata, and nothing here reads it; ``iscoroutinefunction``
answers the same for the plain functions we add. ``tests/test_footprint.py``
imports this module in a fresh interpreter and runs a scheduler with it, so
an APScheduler release that binds more of these names fails there, not in a
running daemon.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uuid


class _PackageNotFoundError(ModuleNotFoundError):
    """Stands in for ``importlib.metadata.PackageNotFoundError``."""


def _no_version(distribution: str) -> str:
    raise _PackageNotFoundError(distribution)


def _no_entry_points(**selection: str) -> tuple[()]:
    return ()


class _BrokenProcessPool(RuntimeError):
    """Stands in for ``concurrent.futures.process.BrokenProcessPool``."""


def _uuid4() -> uuid.UUID:
    import uuid  # the real one: the stand-in is gone by the time of a call

    return uuid.uuid4()


def _stand_ins() -> dict[str, dict[str, object]]:
    """Return, per module name, the names APScheduler 3 binds from it."""
    return {
        "asyncio": {"iscoroutinefunction": inspect.iscoroutinefunction},
        "importlib.metadata": {
            "version": _no_version,
            "PackageNotFoundError": _PackageNotFoundError,
            "entry_points": _no_entry_points,
        },
        "multiprocessing": {},
        "concurrent.futures.process": {"BrokenProcessPool": _BrokenProcessPool},
        "uuid": {"uuid4": _uuid4},
    }


@contextlib.contextmanager
def _standing_in(modules: dict[str, dict[str, object]]) -> Iterator[None]:
    """Put a stand-in in ``sys.modules`` for each of ``modules`` not yet
    loaded, for the duration of the block; remove them after."""
    placed = []
    for name, contents in modules.items():
        if name in sys.modules:
            continue
        stand_in = types.ModuleType(name, "stands in while APScheduler loads")
        for attribute, value in contents.items():
            setattr(stand_in, attribute, value)
        sys.modules[name] = stand_in
        placed.append(name)
    try:
        yield
    finally:
        for name in placed:
            del sys.modules[name]


def _import_apscheduler() -> None:
    if "apscheduler.schedulers.background" in sys.modules:
        return
    with _standing_in(_stand_ins()):
        import apscheduler.executors.pool
        import apscheduler.schedulers.background  # noqa: F401


_import_apscheduler()

from apscheduler.events import (  # noqa: E402
    EVENT_JOB_ERROR,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor  # noqa: E402
from apscheduler.schedulers.background import BackgroundScheduler  # noqa: E402
from apscheduler.triggers.cron import CronTrigger  # noqa: E402
from apscheduler.triggers.date import DateTrigger  # noqa: E402
from apscheduler.triggers.interval import IntervalTrigger  # noqa: E402

__all__ = [
    "EVENT_JOB_ERROR",
    "EVENT_JOB_MISSED",
    "BackgroundScheduler",
    "CronTrigger",
    "DateTrigger",
    "IntervalTrigger",
    "JobExecutionEvent",
    "ThreadPoolExecutor",
]
