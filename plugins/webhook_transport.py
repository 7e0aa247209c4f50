"""Drop-in transport ``webhook``: posts each alert as JSON to a URL.

Use it to route alerts to a chat or paging system instead of (or, with a
second notifier instance, beside) email. Copy this file into a folder named
in ``[notifier] plugin_dirs``, then::

    [mail]
    transport = "webhook"

and give the daemon the URL in its environment (a systemd drop-in with
``Environment=`` or ``EnvironmentFile=``), never in the TOML file, since
webhook URLs usually carry a secret::

    NOTIFIER_WEBHOOK_URL=https://chat.example.org/hooks/abc123
    NOTIFIER_WEBHOOK_TOKEN=...        # optional: sent as "Authorization: Bearer"

The body is one JSON object: ``text`` (the plain-text email body, which
Slack- and Mattermost-style webhooks show as is), ``subject``, ``check``,
``status``, ``kind``, ``host``, ``to``, ``date``, ``message_id`` and the
names of the ``attachments``. The outbox, retries, backoff and grouping are
the same as for email: a 5xx, 408 or 429 answer or a network failure makes
the transport back off and retry; another 4xx answer is a permanent refusal
of that message.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any, Final

from notifier import (
    MessageRefused,
    SendOutcome,
    ServerUnavailable,
    TransportType,
    hookimpl,
)
from notifier.errors import ConfigProblem

log = logging.getLogger(__name__)

URL_ENV: Final = "NOTIFIER_WEBHOOK_URL"
TOKEN_ENV: Final = "NOTIFIER_WEBHOOK_TOKEN"  # noqa: S105 (a variable name, not a secret)
TIMEOUT: Final = 30.0
_RETRY_CODES: Final = frozenset({408, 425, 429})


class WebhookTransport:
    """Posts messages to one URL."""

    def __init__(self, url: str, token: str = "", timeout: float = TIMEOUT) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout

    def describe(self) -> str:
        """Return ``webhook https://host``: the path often holds a secret."""
        parts = urllib.parse.urlsplit(self.url)
        return f"webhook {parts.scheme}://{parts.hostname}"

    @contextmanager
    def session(self) -> Iterator[WebhookTransport]:
        """Yield the transport itself: every post is its own request."""
        yield self

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> SendOutcome:
        """Post ``message`` as JSON.

        :raises ServerUnavailable: on a network failure or a 5xx, 408, 425 or
            429 answer; the outbox retries later.
        :raises MessageRefused: on another 4xx answer; retrying would not help.
        """
        body = json.dumps(payload(message, recipients)).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "notifier"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # S310 wants the scheme audited: validate() allows only http and https.
        request = urllib.request.Request(  # noqa: S310
            self.url, data=body, headers=headers, method="POST"
        )
        where = self.describe()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                code = answer.status
        except urllib.error.HTTPError as error:
            error.close()  # it holds the connection open
            reason = f"{where}: answered {error.code} {error.reason}"
            if error.code >= 500 or error.code in _RETRY_CODES:
                raise ServerUnavailable(reason, code=error.code) from error
            raise MessageRefused(reason, code=error.code, permanent=True) from error
        except (urllib.error.URLError, OSError) as error:
            cause = getattr(error, "reason", error)
            msg = f"{where}: {cause}"
            raise ServerUnavailable(msg) from error
        log.debug("%s: posted %d bytes, answer %d", where, len(body), code)
        return SendOutcome(tuple(recipients), reply=f"{code}")


def payload(message: EmailMessage, recipients: Sequence[str]) -> dict[str, Any]:
    """Return the JSON object posted for ``message``."""
    text_part = message.get_body(preferencelist=("plain",))
    text = text_part.get_content() if text_part is not None else ""
    return {
        "text": text,
        "subject": str(message.get("Subject", "")),
        "check": str(message.get("X-Notifier-Check", "")),
        "status": str(message.get("X-Notifier-Status", "")),
        "kind": str(message.get("X-Notifier-Kind", "")),
        "host": str(message.get("X-Notifier-Host", "")),
        "to": list(recipients),
        "date": str(message.get("Date", "")),
        "message_id": str(message.get("Message-ID", "")),
        "attachments": [
            part.get_filename() or "" for part in message.iter_attachments()
        ],
    }


def validate(config: Any) -> list[ConfigProblem]:
    """Return what keeps the webhook from working: a missing or bad URL."""
    url = os.environ.get(URL_ENV, "")
    if urllib.parse.urlsplit(url).scheme in ("http", "https"):
        return []
    problem = "is not set" if not url else "is not an http:// or https:// URL"
    return [
        ConfigProblem(
            config.path,
            "mail",
            "transport",
            f"'webhook' needs ${URL_ENV}, which {problem}",
            "set it in the daemon's environment, with systemd's Environment= for one",
        )
    ]


def create(config: Any) -> WebhookTransport:
    """Build the transport from the environment (see the module docstring)."""
    return WebhookTransport(os.environ.get(URL_ENV, ""), os.environ.get(TOKEN_ENV, ""))


@hookimpl
def notifier_transports() -> list[TransportType]:
    """Provide the ``webhook`` transport."""
    return [
        TransportType(
            name="webhook",
            create=create,
            summary=f"posts each alert as JSON to ${URL_ENV}",
            validate=validate,
        )
    ]
