"""Where log records go and how they look; quieting messages that repeat.

This module owns the process-wide logging setup of ``notifier run``: one
handler on the root logger writing to stderr. Under journald (systemd connects
stderr to the journal and says so in ``$JOURNAL_STREAM``) each line starts with
a ``<N>`` syslog priority and carries no timestamp, since the journal adds its
own; ``journalctl -p err`` then shows errors only. Elsewhere each line carries
a timestamp, the level and the logger name.

A multi-line record (a traceback, a message quoting several log lines) gets
the prefix on every line: journald stores each line as an entry of its own,
and a line without a prefix would be filed at the default priority, so the
traceback of an error would be missing from ``journalctl -p err``. It also
means text quoted from a watched log cannot forge a priority of its own.
Outside journald the continuation lines are indented instead, so that quoted
text cannot pass for a record of its own either.

It also owns :class:`RateLimitedLogger`, for warnings that would otherwise
repeat on every check run::

    log = logging.getLogger(__name__)
    limited = RateLimitedLogger(log, interval=300)
    ...
    limited.warning(("unreadable", path), "log file %r: %s; skipped", path, err)

The first call for a key logs; further calls with the same key within
``interval`` seconds go to DEBUG only, and the next one let through says how
many were held back. ``limited.forget(key)`` when the condition clears, so a
new occurrence is reported at once.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TextIO

from notifier.units import format_duration

#: The level names ``[notifier] log_level`` accepts, and what they mean.
LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

PLAIN_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT: Final = "%(name)s: %(message)s"


def syslog_priority(levelno: int) -> int:
    """Return the syslog priority (0 emerg .. 7 debug) for a logging level.

    :param levelno: a ``logging`` level number; levels between the standard
        ones take the priority of the standard level below them.
    :returns: 2 for CRITICAL, 3 ERROR, 4 WARNING, 6 INFO, 7 DEBUG.
    """
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """Formats a record for journald: ``<N>`` on every line, no timestamp."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """Return the record, each line prefixed with its syslog priority.

        journald ends an entry at a NUL byte as well as at a newline, so a NUL
        starts a new, prefixed line too.
        """
        text = super().format(record)
        prefix = f"<{syslog_priority(record.levelno)}>"
        lines = text.replace("\0", "\n").split("\n")
        return "\n".join(prefix + line for line in lines)


class PlainFormatter(logging.Formatter):
    """Formats a record for a terminal or file: timestamp, level, logger name.

    Lines after the first (a traceback, quoted text) are indented by two
    spaces.
    """

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """Return the record with its continuation lines indented."""
        return super().format(record).replace("\n", "\n  ")


def stream_is_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Tell whether ``stream`` is connected to journald.

    systemd sets ``$JOURNAL_STREAM`` to ``DEVICE:INODE`` of the stream it
    connected to the journal; it counts only if ``stream`` is that very file,
    not merely a descendant that inherited the variable but writes elsewhere.

    :param stream: the stream logs are written to.
    :param environ: where to read ``$JOURNAL_STREAM``; ``os.environ`` if None.
    :returns: True if lines written to ``stream`` reach the journal.
    """
    env = os.environ if environ is None else environ
    device, sep, inode = env.get("JOURNAL_STREAM", "").partition(":")
    if not sep:
        return False

    try:
        stat = os.fstat(stream.fileno())
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        # No file descriptor behind the stream (io.StringIO raises
        # io.UnsupportedOperation, a ValueError and OSError), or a garbled
        # variable: either way not the journal.
        return False


class _NotifierHandler(logging.StreamHandler[TextIO]):
    """The handler :func:`setup_logging` installs; found and replaced by type."""


def setup_logging(
    level: str,
    *,
    stream: TextIO | None = None,
    journal: bool | None = None,
    apscheduler_level: str = "warning",
) -> None:
    """Send every log record at ``level`` or above to ``stream``.

    Safe to call again (after a reload changed ``log_level``): the handler
    installed by an earlier call is replaced, handlers others added are kept.

    :param level: one of :data:`LEVELS` (``"info"``...), any case.
    :param stream: where lines go; ``sys.stderr`` (as it is at call time)
        when None.
    :param journal: force the journald format on or off; None detects it
        with :func:`stream_is_journal`.
    :param apscheduler_level: level of the ``apscheduler`` logger, which
        otherwise logs every job run at INFO.
    :raises ValueError: when a level is not one of :data:`LEVELS`.
    """
    root_level = _level_number(level)
    scheduler_level = _level_number(apscheduler_level)
    target = sys.stderr if stream is None else stream
    use_journal = stream_is_journal(target) if journal is None else journal

    # One handler of ours at a time: drop the one a previous call installed.
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _NotifierHandler)]:
        root.removeHandler(old)
        old.close()

    handler = _NotifierHandler(target)
    handler.setFormatter(JournalFormatter() if use_journal else PlainFormatter())
    root.addHandler(handler)
    root.setLevel(root_level)
    logging.getLogger("apscheduler").setLevel(scheduler_level)


def _level_number(name: str) -> int:
    try:
        return LEVELS[name.lower()]
    except KeyError:
        choices = ", ".join(repr(known) for known in LEVELS)
        msg = f"log level {name!r} is not one of {choices}"
        raise ValueError(msg) from None


@dataclass
class _Window:
    """What a :class:`RateLimitedLogger` remembers about one key."""

    opened_at: float
    suppressed: int = 0


class RateLimitedLogger:
    """Lets a repeating message through once per interval per key.

    Calls within ``interval`` seconds of the last message let through for the
    same key are logged at DEBUG instead; the next one let through gets
    ``(N more like this in the last 5m)`` appended. Thread-safe.
    """

    #: Past this many keys, keys whose interval is over are forgotten.
    PRUNE_ABOVE: Final = 1024

    def __init__(
        self,
        logger: logging.Logger,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap ``logger``.

        :param logger: where messages go.
        :param interval: seconds during which a key speaks at most once.
        :param clock: returns seconds, only ever compared; tests pass a fake.
        """
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._windows: dict[Hashable, _Window] = {}
        self._lock = threading.Lock()

    def log(
        self, level: int, key: Hashable, msg: str, *args: object, **kwargs: Any
    ) -> bool:
        """Log ``msg % args`` at ``level`` unless ``key`` spoke recently.

        :param level: a ``logging`` level for a message let through.
        :param key: what counts as "the same message", for example
            ``("smtp-down", host)``; must be hashable.
        :param msg: a %-style format, as for :meth:`logging.Logger.log`.
        :param kwargs: passed on (``exc_info``, ``extra``...).
        :returns: True if let through at ``level``, False if held back.
        """
        return self._emit(level, key, msg, args, kwargs)

    def debug(self, key: Hashable, msg: str, *args: object, **kwargs: Any) -> bool:
        """Like :meth:`log` at DEBUG."""
        return self._emit(logging.DEBUG, key, msg, args, kwargs)

    def info(self, key: Hashable, msg: str, *args: object, **kwargs: Any) -> bool:
        """Like :meth:`log` at INFO."""
        return self._emit(logging.INFO, key, msg, args, kwargs)

    def warning(self, key: Hashable, msg: str, *args: object, **kwargs: Any) -> bool:
        """Like :meth:`log` at WARNING."""
        return self._emit(logging.WARNING, key, msg, args, kwargs)

    def error(self, key: Hashable, msg: str, *args: object, **kwargs: Any) -> bool:
        """Like :meth:`log` at ERROR."""
        return self._emit(logging.ERROR, key, msg, args, kwargs)

    def forget(self, key: Hashable) -> None:
        """Let the next message for ``key`` through at once.

        Call it when the condition clears (the mail server answers again), so
        that the next failure is not held back by the old one's interval.
        """
        with self._lock:
            self._windows.pop(key, None)

    def _emit(
        self,
        level: int,
        key: Hashable,
        msg: str,
        args: tuple[object, ...],
        kwargs: dict[str, Any],
    ) -> bool:
        """Decide for ``key`` and log; called straight from the public methods."""
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is not None and now - window.opened_at < self.interval:
                window.suppressed += 1
                allowed, held_back, since = False, 0, 0.0
            else:
                allowed = True
                held_back = window.suppressed if window is not None else 0
                since = now - window.opened_at if window is not None else 0.0
                self._windows[key] = _Window(opened_at=now)
                self._prune(now)

        # stacklevel 3: the record names the caller of log()/warning()...,
        # not this module.
        kwargs.setdefault("stacklevel", 3)
        if not allowed:
            self.logger.log(logging.DEBUG, msg, *args, **kwargs)
            return False

        if held_back:
            # Without args logging leaves msg alone; with ours added it will
            # %-format it, so a literal % in msg must be doubled first.
            if not args:
                msg = msg.replace("%", "%%")
            msg += " (%d more like this in the last %s)"
            args = (*args, held_back, format_duration(max(1, round(since))))
        self.logger.log(level, msg, *args, **kwargs)
        return True

    def _prune(self, now: float) -> None:
        """Forget keys whose interval is over once there are too many."""
        if len(self._windows) <= self.PRUNE_ABOVE:
            return
        expired = [
            key
            for key, window in self._windows.items()
            if now - window.opened_at >= self.interval
        ]
        for key in expired:
            del self._windows[key]
