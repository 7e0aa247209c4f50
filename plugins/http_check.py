"""Drop-in check ``http``: does a URL answer, with the right status, quickly?

Copy this file into a folder named in ``[notifier] plugin_dirs`` (owned by
root, not writable by group or others), then::

    [[check]]
    name = "website"
    type = "http"
    url = "https://example.org/health"
    warning = "500ms"
    critical = "3s"

The verdict: CRITICAL when the server cannot be reached, does not answer in
time, or answers with a status other than ``expect_status``; otherwise the
time until the whole body arrived is compared with ``warning`` and
``critical``. Metrics: ``latency_seconds`` and ``status_code``; the latency
is also ``Result.value``, so ``clear_below`` works on it.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.error
import urllib.request
from typing import Final

from notifier import (
    CheckContext,
    CheckType,
    Option,
    Result,
    Status,
    hookimpl,
    threshold_status,
)
from notifier.units import format_duration

BODY_LIMIT: Final = 1024 * 1024
"""Bytes of the body read (and timed); the rest is not downloaded."""

OPTIONS: Final = (
    Option("url", "str", required=True, help="The http:// or https:// URL to fetch."),
    Option(
        "expect_status",
        "int",
        200,
        "The HTTP status a healthy endpoint answers with.",
        minimum=100,
        maximum=599,
    ),
    Option("warning", "duration", 1.0, "Latency at or above this is WARNING."),
    Option("critical", "duration", 5.0, "Latency at or above this is CRITICAL."),
    Option("verify", "bool", True, "Verify the server's TLS certificate."),
)


class HttpCheck:
    """One configured ``http`` check."""

    def __init__(self, context: CheckContext) -> None:
        self.url: str = context.options["url"]
        self.expect_status: int = context.options["expect_status"]
        self.warning: float = context.options["warning"]
        self.critical: float = context.options["critical"]
        self.verify: bool = context.options["verify"]
        if not self.url.startswith(("http://", "https://")):
            msg = f"url {self.url!r} must start with http:// or https://"
            raise ValueError(msg)

        # Give up a little before the daemon does, so the reason is ours.
        self.request_timeout = max(0.1, context.timeout * 0.9)

    def run(self) -> Result:
        """Fetch the URL once and judge the status code and the latency."""
        tls = ssl.create_default_context()
        if not self.verify:
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        # S310 wants the scheme audited: __init__ allows only http and https.
        request = urllib.request.Request(  # noqa: S310
            self.url, headers={"User-Agent": "notifier"}
        )

        started = time.monotonic()
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self.request_timeout, context=tls
            ) as response:
                response.read(BODY_LIMIT)
                code = response.status
        except urllib.error.HTTPError as error:
            error.close()  # it holds the connection open
            code = error.code
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            return Result(Status.CRITICAL, f"{self.url}: {_reason(error)}")
        latency = time.monotonic() - started
        metrics = {"latency_seconds": latency, "status_code": float(code)}

        took = format_duration(latency)
        if code != self.expect_status:
            summary = f"{self.url} answered {code}, expected {self.expect_status}"
            return Result(Status.CRITICAL, f"{summary} (in {took})", metrics, latency)
        status = threshold_status(latency, self.warning, self.critical)
        summary = f"{self.url} answered {code} in {took}"
        if status is not Status.OK:
            limit = self.critical if status is Status.CRITICAL else self.warning
            summary += f" (limit {format_duration(limit)})"
        return Result(status, summary, metrics, latency)


def _reason(error: Exception) -> str:
    """Return why the request failed, in words."""
    cause = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(cause, socket.timeout | TimeoutError):
        return "no answer in time"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate not trusted ({cause.verify_message})"
    return str(cause) or type(cause).__name__


@hookimpl
def notifier_check_types() -> list[CheckType]:
    """Provide the ``http`` check type."""
    return [
        CheckType(
            name="http",
            create=HttpCheck,
            options=OPTIONS,
            summary="Fetch a URL; judge its status code and latency.",
        )
    ]
