"""Changes made to an email after it was composed, and notes about them.

This module owns what happens to a message between the outbox and the mail
server: a paragraph put at the top of the body (:func:`add_notice`, for the
delivery side's "mail was failing" note), the "queued since" mark of a late
message (:func:`mark_queued_since`), and cutting attachments to the server's
``SIZE`` limit (:func:`shrink_to_fit`). Each works on a message composed by
:mod:`notifier.compose` or read back from the outbox, and changes it in place.
"""

from __future__ import annotations

import email.utils
from datetime import datetime
from email.message import EmailMessage
from typing import Final

from notifier.attachments import printable, shrink_largest_attachment
from notifier.mailtext import (
    body_part,
    body_text,
    format_time,
    set_body,
    wrap,
)
from notifier.units import format_size, human_duration

_QUEUED_PREFIX: Final = "Late: queued since "
_SIZE_NOTE_PREFIX: Final = "Too large for the mail server"
_NOTICE_PARAGRAPHS: Final = 3


def add_notice(message: EmailMessage, text: str) -> EmailMessage:
    """Put ``text`` first in the plain-text body; change ``message`` in place.

    Each line of ``text`` is wrapped to the body's width (72 columns; a line
    starting with ``- `` continues indented), control characters become
    spaces, and a blank line separates the notice from the rest. Adding the
    same notice again leaves one copy. Works on a message parsed back from
    bytes with an ``email.policy`` other than ``compat32``.

    :param message: a composed message, or one read back from the outbox.
    :param text: the notice; a blank line in it starts a new paragraph.
    :returns: ``message``.
    :raises ValueError: when the message has no plain-text body.
    """
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        shown = printable(line)
        if not shown.strip():
            lines.append("")
            continue
        lines += wrap(shown, indent="  " if shown.startswith("- ") else "")
    notice = "\n".join(lines).strip("\n")
    if not notice:
        return message

    body = body_text(message)
    if body == notice or body.startswith(f"{notice}\n\n"):
        return message
    set_body(body_part(message), f"{notice}\n\n{body}")
    return message


def mark_queued_since(
    message: EmailMessage, since: datetime, *, now: datetime | None = None
) -> EmailMessage:
    """Mark ``message`` as delivered late; change it in place and return it.

    Sets ``X-Notifier-Queued-Since`` (an RFC 5322 date) and puts a "queued
    since" line first in the plain-text body. Marking again replaces both
    rather than adding a second line. Works on a message parsed back from
    bytes with an ``email.policy`` other than ``compat32``.

    :param message: a composed message, or one read back from the outbox.
    :param since: when the message was first queued (timezone-aware).
    :param now: when it is being delivered; adds how late it is.
    :returns: ``message``.
    :raises ValueError: when the message has no plain-text body.
    """
    del message["X-Notifier-Queued-Since"]
    message["X-Notifier-Queued-Since"] = email.utils.format_datetime(since)

    line = f"{_QUEUED_PREFIX}{format_time(since)}"
    if now is not None:
        line += f", sent {human_duration((now - since).total_seconds())} late"
    _set_notice(message, _QUEUED_PREFIX, f"{line}.")
    return message


def message_size(message: EmailMessage) -> int:
    """Return the size of ``message`` in bytes as it goes over SMTP (CRLF)."""
    return len(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))


def shrink_to_fit(message: EmailMessage, size_limit: int) -> EmailMessage:
    """Cut or drop attachments until ``message`` fits; change it in place.

    For a server that advertises ``SIZE``: the largest attachment goes first;
    a text or gzip attachment keeps the tail that fits, cut at a line
    boundary, anything else (or a tail under 2KiB) is dropped. A paragraph at
    the top of the body says what was cut or removed and why. The target is
    ``size_limit`` less 1% (at least 1KiB) for what SMTP adds on the way. A
    message that fits is returned untouched; one whose body alone is too
    large is returned with no attachments and may still be refused.

    :param message: a composed message, or one read back from the outbox.
    :param size_limit: the server's limit in bytes; 0 or less means none.
    :returns: ``message``.
    """
    budget = size_limit - max(1024, size_limit // 100)
    if size_limit <= 0 or message_size(message) <= budget:
        return message

    # Keyed by identity: two attachments may share a file name.
    outcomes: dict[int, tuple[str, str]] = {}
    touched: list[EmailMessage] = []
    for _ in range(64):
        if outcomes:
            note = [
                f"{_SIZE_NOTE_PREFIX} (it takes at most {format_size(size_limit)}"
                " per message):",
                *(f"- {name}: {outcome}" for name, outcome in outcomes.values()),
            ]
            _set_notice(message, _SIZE_NOTE_PREFIX, "\n".join(note))
        excess = message_size(message) - budget
        if excess <= 0:
            break
        shrunk = shrink_largest_attachment(message, excess)
        if shrunk is None:
            break
        part, name, outcome = shrunk
        touched.append(part)
        outcomes[id(part)] = (name, outcome)
    return message


def _set_notice(message: EmailMessage, prefix: str, notice: str) -> None:
    """Put ``notice`` first in the body, replacing an earlier one like it.

    A notice is a paragraph whose first line starts with ``prefix``; only the
    first few paragraphs are looked at, as notices are only ever put there.
    """
    paragraphs = body_text(message).split("\n\n")
    kept = [
        paragraph
        for index, paragraph in enumerate(paragraphs)
        if index >= _NOTICE_PARAGRAPHS or not paragraph.startswith(prefix)
    ]
    set_body(body_part(message), "\n\n".join([notice, *kept]))
