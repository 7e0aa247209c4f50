"""Telling systemd how the daemon is doing: the sd_notify protocol.

This module owns the datagrams a ``Type=notify`` service sends to
``$NOTIFY_SOCKET``: READY=1, RELOADING=1, STOPPING=1, STATUS= and the
WATCHDOG=1 keep-alive, and reading the watchdog interval from
``$WATCHDOG_USEC``. It knows nothing of checks or mail; the daemon decides when
to say what.

Outside systemd (``$NOTIFY_SOCKET`` unset) every method does nothing, so the
daemon calls them unconditionally. A failed send never raises: it is logged
once at WARNING (then at DEBUG until a send succeeds again), because a daemon
that dies for want of telling systemd it is alive helps nobody.

Typical use in the daemon::

    notifier = SystemdNotifier.from_environment(unset_environment=True)
    interval = notifier.watchdog_interval()   # seconds, or None
    if interval is not None:
        schedule(notifier.watchdog, every=interval / 2)
    notifier.ready("12 checks, 0 firing, 0 queued")
    ...
    notifier.reloading()      # on SIGHUP, before reading the new config
    notifier.ready("12 checks, 1 firing, 0 queued")
    ...
    notifier.stopping()       # on SIGTERM
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import MutableMapping
from typing import Final

log = logging.getLogger(__name__)

#: Longest STATUS= text sent; systemd shows one line, and a datagram has room.
STATUS_MAX_CHARS: Final = 512

#: Longest wait, in seconds, for room in the socket's queue before a message
#: is given up. The queue is short (net.unix.max_dgram_qlen, often 10) and a
#: busy systemd may not empty it at once; the scheduler must not hang on it.
SEND_TIMEOUT: Final = 2.0

_ENV_SOCKET: Final = "NOTIFY_SOCKET"
_ENV_WATCHDOG_USEC: Final = "WATCHDOG_USEC"
_ENV_WATCHDOG_PID: Final = "WATCHDOG_PID"


def _socket_address(raw: str) -> str | None:
    """Return the AF_UNIX address for ``$NOTIFY_SOCKET``, or None if unusable.

    A leading ``@`` names a socket in the abstract namespace, which Python
    spells with a leading NUL byte.
    """
    if raw.startswith("@") and len(raw) > 1:
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    # Limitation: the vsock form ("vsock:CID:PORT", systemd 254 and later, for
    # virtual machines) is not spoken; such a service runs without notify.
    return None


def _one_line(text: str) -> str:
    """Return ``text`` as one line fit for STATUS=: no newlines, no NULs."""
    flat = " ".join(text.replace("\0", " ").split())
    return flat[:STATUS_MAX_CHARS]


def _monotonic_usec() -> int:
    """Return CLOCK_MONOTONIC in microseconds, the clock systemd compares."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class SystemdNotifier:
    """Sends sd_notify messages to systemd; does nothing outside systemd.

    Safe to call from several threads (the scheduler's watchdog job and the
    main thread): each message goes out as one datagram on a socket opened
    for it. A call blocks at most :data:`SEND_TIMEOUT` seconds, when systemd
    is slow to read its socket.
    """

    def __init__(
        self,
        socket_path: str | None,
        *,
        watchdog_usec: str | None = None,
        watchdog_pid: str | None = None,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        """Prepare to notify the socket at ``socket_path``.

        :param socket_path: the value of ``$NOTIFY_SOCKET``: an absolute path,
            or ``@name`` for the abstract namespace; None or empty disables
            every message.
        :param watchdog_usec: the value of ``$WATCHDOG_USEC``, if any.
        :param watchdog_pid: the value of ``$WATCHDOG_PID``, if any.
        :param send_timeout: seconds to wait for room in a full socket queue
            before giving a message up (and logging it).
        """
        self._raw_socket = socket_path or ""
        self._address = _socket_address(self._raw_socket) if socket_path else None
        self._watchdog_usec = watchdog_usec
        self._watchdog_pid = watchdog_pid
        self._send_timeout = send_timeout
        self._lock = threading.Lock()
        self._failing = False
        if socket_path and self._address is None:
            log.warning(
                "systemd notify socket %r is not an absolute path or @name; "
                "readiness and watchdog messages are not sent",
                socket_path,
            )

    @classmethod
    def from_environment(
        cls,
        environ: MutableMapping[str, str] | None = None,
        *,
        unset_environment: bool = False,
    ) -> SystemdNotifier:
        """Build a notifier from the environment systemd gives the service.

        Reads ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID``.

        :param environ: where to read them; ``os.environ`` when None.
        :param unset_environment: remove the three variables from ``environ``
            once read, so that child processes (command checks) do not try to
            talk to systemd on our behalf.
        :returns: a notifier; a silent one when ``$NOTIFY_SOCKET`` is unset.
        """
        env = os.environ if environ is None else environ
        notifier = cls(
            env.get(_ENV_SOCKET),
            watchdog_usec=env.get(_ENV_WATCHDOG_USEC),
            watchdog_pid=env.get(_ENV_WATCHDOG_PID),
        )
        if unset_environment:
            for name in (_ENV_SOCKET, _ENV_WATCHDOG_USEC, _ENV_WATCHDOG_PID):
                env.pop(name, None)
        return notifier

    @property
    def enabled(self) -> bool:
        """True when messages go somewhere, that is, under systemd."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """Say the service is up (READY=1), after start-up or a reload.

        :param status: a one-line STATUS= to send in the same message.
        :returns: True if systemd was told, False if disabled or failed.
        """
        return self._send_with_status(["READY=1"], status)

    def reloading(self, status: str | None = None) -> bool:
        """Say a reload has begun (RELOADING=1 and MONOTONIC_USEC=).

        systemd 253 and later require MONOTONIC_USEC for
        ``Type=notify-reload``; older ones ignore it. Send :meth:`ready` when
        the reload is over, whether the new configuration was taken or not.

        :param status: a one-line STATUS= to send in the same message.
        :returns: True if systemd was told, False if disabled or failed.
        """
        fields = ["RELOADING=1", f"MONOTONIC_USEC={_monotonic_usec()}"]
        return self._send_with_status(fields, status)

    def stopping(self, status: str | None = None) -> bool:
        """Say the service is shutting down (STOPPING=1).

        :param status: a one-line STATUS= to send in the same message.
        :returns: True if systemd was told, False if disabled or failed.
        """
        return self._send_with_status(["STOPPING=1"], status)

    def status(self, text: str) -> bool:
        """Set the line ``systemctl status`` shows (STATUS=).

        Newlines and runs of white space become one space; the text is cut at
        :data:`STATUS_MAX_CHARS` characters.

        :param text: for example ``"12 checks, 1 firing, 0 queued"``.
        :returns: True if systemd was told, False if disabled or failed.
        """
        return self._send([f"STATUS={_one_line(text)}"])

    def watchdog(self) -> bool:
        """Tell the watchdog the service is alive (WATCHDOG=1).

        Call it every ``watchdog_interval() / 2`` seconds from the thread whose
        progress matters (the scheduler), so that a stuck one stops the pings.

        :returns: True if systemd was told, False if disabled or failed.
        """
        return self._send(["WATCHDOG=1"])

    def watchdog_interval(self) -> float | None:
        """Return the watchdog timeout in seconds, or None when there is none.

        The timeout comes from ``$WATCHDOG_USEC`` (set by ``WatchdogSec=``).
        When ``$WATCHDOG_PID`` is set and is not this process, the watchdog is
        meant for another process and None is returned. Ping at half the
        returned value.

        :returns: seconds as a float, or None if no watchdog is expected.
        """
        if not self._watchdog_usec:
            return None

        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            log.warning(
                "systemd watchdog interval %r is not a number of microseconds; "
                "no watchdog pings are sent",
                self._watchdog_usec,
            )
            return None
        if usec <= 0:
            return None

        if self._watchdog_pid:
            try:
                pid = int(self._watchdog_pid)
            except ValueError:
                return None
            if pid != os.getpid():
                return None
        return usec / 1_000_000

    def notify(self, *fields: str) -> bool:
        """Send raw ``KEY=value`` fields in one datagram.

        For messages this class has no method for (``EXTEND_TIMEOUT_USEC=``,
        for example). A field must not contain a newline.

        :returns: True if systemd was told, False if disabled or failed.
        """
        return self._send(list(fields))

    def _send_with_status(self, fields: list[str], status: str | None) -> bool:
        if status is not None:
            fields.append(f"STATUS={_one_line(status)}")
        return self._send(fields)

    def _send(self, fields: list[str]) -> bool:
        """Send ``fields`` as one datagram; log, never raise, on failure."""
        if self._address is None:
            return False

        payload = "\n".join(fields).encode("utf-8", errors="replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(self._send_timeout)
                sock.sendto(payload, self._address)
        except OSError as exc:
            self._report_failure(exc)
            return False

        with self._lock:
            self._failing = False
        return True

    def _report_failure(self, exc: OSError) -> None:
        """Warn about the first failure in a row; later ones go to DEBUG."""
        with self._lock:
            first = not self._failing
            self._failing = True
        level = logging.WARNING if first else logging.DEBUG
        log.log(
            level,
            "systemd notify socket %r: %s; systemd may think the service hung",
            self._raw_socket,
            exc.strerror or str(exc) or type(exc).__name__,
        )
