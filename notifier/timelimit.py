"""Running someone else's code with a time limit: a plugin's import or hook.

A plugin that hangs (waiting on the network at import, a ``sleep`` left in a
hook) must not hang every command and the daemon's start with it. Python
cannot stop a thread, so the code runs in a daemon thread that is given up
on when the limit passes: it is left behind, and dies with the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

ResultT = TypeVar("ResultT")


class TimeLimitExceeded(Exception):
    """The code was still running when its time was up."""


def call_within(limit: float, work: Callable[[], ResultT], name: str) -> ResultT:
    """Return ``work()``, run in a thread of its own, if it ends within
    ``limit`` seconds.

    Whatever ``work`` raises (``SystemExit`` included) is raised here, with
    its traceback.

    :param name: the thread's name, which shows in a debugger or ``py-spy``.
    :raises TimeLimitExceeded: when ``work`` is still running after
        ``limit`` seconds; its thread is abandoned, not stopped.
    """
    # Limitation: an abandoned thread keeps whatever it holds (an import
    # lock, memory) until the process ends; a daemon reloading with a hung
    # plugin leaves one more such thread behind each time.
    returned: list[ResultT] = []
    raised: list[BaseException] = []

    def run() -> None:
        # Everything is handed to the caller, who decides what is fatal.
        try:
            returned.append(work())
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        msg = f"still running after {limit}s"
        raise TimeLimitExceeded(msg)
    if raised:
        raise raised[0]
    return returned[0]
