"""Keeping stdout for a command's own output while other people's code runs.

A command whose output is read by a program or pasted back (``check --json``,
``config show``, ``plugins``) must print nothing else on stdout. Plugins are
other people's code, imported and called in this process: whatever they print
while being loaded, or while a check runs, is sent to stderr instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from notifier.loader import Loaded, load


@contextlib.contextmanager
def reserved_stdout() -> Iterator[TextIO]:
    """Keep stdout for this command's output while other code runs.

    File descriptor 1 is pointed at stderr (so a plugin's ``print``, its
    ``os.write(1, ...)`` and the subprocesses it starts land there) and a
    private duplicate of the real stdout is handed out for the command's own
    output. Doing this once, in the main thread around all the plugin code,
    is sound where swapping ``sys.stdout`` around each call is not: that is
    process-wide and would race between checks running at once.
    """
    # Limitation: plugin code still running after the block (a check
    # abandoned at its timeout, a plugin given up on while loading) that
    # prints after the restore below writes to the real stdout.
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:
        # No stdout at all (closed by the caller): nothing to protect.
        yield sys.stdout
        return
    encoding = sys.stdout.encoding or "utf-8"
    previous = sys.stdout
    output = os.fdopen(saved, "w", encoding=encoding, errors="replace", closefd=False)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        yield output
        output.flush()
    finally:
        sys.stdout = previous
        os.dup2(saved, 1)
        output.close()
        os.close(saved)


def load_reserved(path: Path) -> Loaded:
    """Return :func:`notifier.loader.load` of ``path``, with anything the
    plugins print while they load sent to stderr.

    :raises ConfigError: with every problem in the file.
    :raises PluginError: when plugins conflict.
    """
    with reserved_stdout():
        return load(path)
