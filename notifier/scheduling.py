"""APScheduler as the daemon uses it, imported without ``asyncio``.

APScheduler 3's ``apscheduler.util`` imports ``asyncio`` for one function,
``iscoroutinefunction`` (it refuses coroutines as jobs of a thread pool),
and ``asyncio`` brings ``ssl`` and OpenSSL with it: about 7 MiB resident in
a daemon that never runs an event loop and whose idle budget is 25 MB in
all. So while APScheduler is first imported, ``asyncio`` is a stand-in
module with that one function, taken from ``inspect``, which answers the
same for every job we add (plain functions). The stand-in is removed at
once, so a later ``import asyncio`` gets the real one; where ``asyncio`` is
already loaded (a test process) nothing is replaced.
"""

from __future__ import annotations

import inspect
import sys
import types


def _import_without_asyncio() -> None:
    if "asyncio" in sys.modules or "apscheduler.util" in sys.modules:
        return
    stand_in = types.ModuleType("asyncio", "stands in while APScheduler loads")
    stand_in.iscoroutinefunction = inspect.iscoroutinefunction  # type: ignore[attr-defined]
    sys.modules["asyncio"] = stand_in
    try:
        import apscheduler.util  # noqa: F401  (binds the stand-in's function)
    finally:
        del sys.modules["asyncio"]


_import_without_asyncio()

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
