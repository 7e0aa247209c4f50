"""Building the emails: alerts and the test message, with their headers.

This module owns what a recipient sees first: the subject, the headers mail
filters use, and the assembly of the plain-text body
(:mod:`notifier.alertbody` writes its paragraphs) with the files that go
with it (:mod:`notifier.attachments` prepares them, :mod:`notifier.redact`
masks secrets in them). It knows nothing of SMTP and nothing of any check:
its input is alert events and the ``[mail]`` settings.

A message describes at most :data:`FULL_SECTIONS` alerts in full, the worst
first, and carries at most :data:`ATTACH_TOTAL_FACTOR` times ``[mail]
attach_max_bytes`` of files, so a storm of alerts still makes one readable
email of a size mail servers take.

Changes made to a message later (a notice at the top, the mark of a late
message, shrinking under the server's size limit) live in
:mod:`notifier.notices` and are re-exported here, as are the text helpers of
:mod:`notifier.mailtext`. Every header value built from check output goes
through :func:`clean_header_value`, so no log line can add a header."""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Sequence
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Final

from notifier.alertbody import (
    BRIEF_LIMIT,
    FULL_SECTIONS,
    SILENCE_FOR,
    MaskedTally,
    attachment_block,
    brief_block,
    count_labels,
    event_section,
    group_overview,
    notes_block,
    signature,
    worst_first,
)
from notifier.attachments import (
    Attachment,
    Prepared,
    prepare_attachments,
    printable,
)
from notifier.checks.base import worst
from notifier.config import MailSettings
from notifier.events import AlertEvent, EventKind
from notifier.mailtext import (
    POLICY,
    clean_header_value,
    format_time,
    set_body,
    shorten,
)
from notifier.notices import (
    add_notice,
    mark_queued_since,
    message_size,
    shrink_to_fit,
)
from notifier.redact import Redactor, redactor_for

__all__ = [
    "ATTACH_TOTAL_FACTOR",
    "BRIEF_LIMIT",
    "FULL_SECTIONS",
    "POLICY",
    "SILENCE_FOR",
    "SUBJECT_LIMIT",
    "add_notice",
    "ascii_domain",
    "clean_header_value",
    "compose_alert",
    "compose_test_message",
    "mark_queued_since",
    "message_size",
    "new_message",
    "shorten",
    "shrink_to_fit",
]

SUBJECT_LIMIT: Final = 150
ATTACH_TOTAL_FACTOR: Final = 2
"""One message carries at most this many times ``attach_max_bytes`` of files."""


def compose_alert(
    events: Sequence[AlertEvent],
    mail: MailSettings,
    *,
    hostname: str,
    recipients: Sequence[str],
    now: datetime,
    extra_notes: Sequence[str] = (),
) -> EmailMessage:
    """Return the email for one alert event or a group of them.

    Alerts are listed worst first. The first :data:`FULL_SECTIONS` get a
    full section (evidence, how to silence it), the others one line each.
    Reads the tail of every file in the events' ``attachments`` (each file
    once per message, the worst alert's first) until the message carries
    :data:`ATTACH_TOTAL_FACTOR` times ``attach_max_bytes``; a file that
    cannot be read or is left out gets a line in the body saying why.
    Secrets in the summaries, the evidence and the attached text are masked
    (:mod:`notifier.redact`), and the body says how many different ones.

    :param events: one event, or several going out together (at least one).
    :param mail: ``[mail]``: prefix, sender, attachment limits, patterns.
    :param hostname: this host's name, for the Message-ID and default sender.
    :param recipients: the addresses for ``To``.
    :param now: when the message is composed (timezone-aware).
    :param extra_notes: lines the delivery side puts first in the body
        (held-back alerts, a recovered delivery).
    :returns: a message with headers set, ready for the outbox.
    :raises ValueError: when ``events`` or ``recipients`` is empty.
    """
    if not events or not recipients:
        msg = "compose_alert needs at least one event and one recipient"
        raise ValueError(msg)

    ordered = worst_first(events)
    redactor = redactor_for(mail.redact)
    tally = MaskedTally()
    place = "the summary" if len(ordered) == 1 else "the summaries"
    summaries = [
        clean_header_value(tally.redact(redactor, event.summary, place))
        for event in ordered
    ]

    # Attachments are read before the body is written: the body reports
    # what they hold and what was masked in them.
    files = _prepare(
        [path for event in ordered for path in event.attachments], mail, redactor
    )
    hosts = _unique(clean_header_value(event.host) for event in ordered)
    body = _alert_body(ordered, summaries, ", ".join(hosts), redactor, tally, now)
    for filename, found in files.secrets:
        tally.add(filename, found)
    body += attachment_block(files.notes)
    body += tally.lines()
    body += signature(hostname, now)

    message = new_message(mail, hostname, recipients, now)
    message["Subject"] = _alert_subject(mail, ordered, summaries, hosts)
    message["X-Notifier-Check"] = shorten(
        ", ".join(_unique(clean_header_value(event.check) for event in ordered)), 900
    )
    message["X-Notifier-Status"] = worst([event.status for event in ordered]).name
    message["X-Notifier-Kind"] = ", ".join(
        _unique(event.kind.value for event in ordered)
    )
    message["X-Notifier-Host"] = shorten(", ".join(hosts), 900)
    set_body(message, "\n".join(notes_block(extra_notes) + body) + "\n")
    for attachment in files.attachments:
        _add_attachment(message, attachment)
    return message


def _alert_body(
    events: Sequence[AlertEvent],
    summaries: Sequence[str],
    host: str,
    redactor: Redactor,
    tally: MaskedTally,
    now: datetime,
) -> list[str]:
    """Return the overview, the full sections and the brief list of a message.

    The evidence of an alert listed only briefly is not shown, so it is
    neither masked nor counted.
    """
    body = group_overview(events, summaries, host) if len(events) > 1 else []
    for index, event in enumerate(events[:FULL_SECTIONS]):
        if index:
            body += ["", "-" * 40, ""]
        body += event_section(event, summaries[index], redactor, tally, now)
    body += brief_block(events[FULL_SECTIONS:], summaries[FULL_SECTIONS:])
    return body


def compose_test_message(
    mail: MailSettings,
    *,
    hostname: str,
    recipients: Sequence[str],
    version: str,
    config_path: Path | None,
    now: datetime,
    attach: Path | None = None,
) -> EmailMessage:
    """Return the message ``notifier test-send`` sends.

    :param mail: ``[mail]``: prefix, sender, attachment limits, patterns.
    :param hostname: this host's name.
    :param recipients: the addresses for ``To``.
    :param version: the running notifier's version.
    :param config_path: the configuration file in use (``None``: defaults).
    :param now: when the message is composed (timezone-aware).
    :param attach: a file whose tail goes with the message, like an alert's
        log; a file that cannot be read gets a line in the body instead.
    :returns: a message with headers set.
    :raises ValueError: when ``recipients`` is empty.
    """
    if not recipients:
        msg = "compose_test_message needs at least one recipient"
        raise ValueError(msg)

    host = clean_header_value(hostname)
    redactor = redactor_for(mail.redact)
    files = _prepare([attach] if attach is not None else [], mail, redactor)
    tally = MaskedTally()
    for filename, found in files.secrets:
        tally.add(filename, found)

    body = [
        f"This is a test message from notifier on {host}.",
        "If you can read it, alerts from this host reach you.",
        "",
        f"Host:     {host}",
        f"Version:  notifier {printable(version)}",
        f"Config:   {printable(str(config_path)) if config_path else '(defaults)'}",
        f"Sent:     {format_time(now)}",
    ]
    body += attachment_block(files.notes)
    body += tally.lines()
    body += signature(hostname, now)

    message = new_message(mail, hostname, recipients, now)
    prefix = clean_header_value(mail.subject_prefix)
    message["Subject"] = shorten(f"{prefix} test message from {host}", SUBJECT_LIMIT)
    message["X-Notifier-Kind"] = "TEST"
    message["X-Notifier-Host"] = host
    set_body(message, "\n".join(body) + "\n")
    for attachment in files.attachments:
        _add_attachment(message, attachment)
    return message


def ascii_domain(hostname: str) -> str:
    """Return ``hostname`` as an ASCII domain for a Message-ID or an address.

    Non-ASCII labels are IDNA-encoded (``xn--``); characters no domain may
    hold are dropped; an empty result becomes ``localhost``.
    """
    labels = []
    for label in clean_header_value(hostname).replace(" ", "").split("."):
        if not label.isascii():
            try:
                label = label.encode("idna").decode("ascii")
            except UnicodeError:
                label = "xn--" + label.encode("punycode").decode("ascii")
        label = "".join(c for c in label if c.isascii() and (c.isalnum() or c == "-"))
        if label:
            labels.append(label)
    return ".".join(labels) or "localhost"


def new_message(
    mail: MailSettings, hostname: str, recipients: Sequence[str], now: datetime
) -> EmailMessage:
    """Return an empty message with the headers every notifier email carries.

    From (``[mail] from``), To, Date, a Message-ID on the host's domain,
    ``Auto-Submitted: auto-generated`` (RFC 3834) and
    ``X-Auto-Response-Suppress``; domains are made ASCII (IDNA).
    """
    message = EmailMessage(policy=POLICY)
    domain = ascii_domain(hostname)
    message["From"] = _address(mail.sender or f"notifier@{domain}")
    message["To"] = ", ".join(_address(recipient) for recipient in recipients)
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = email.utils.make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    return message


def _address(text: str) -> str:
    """Return an address header item with a domain in ASCII."""
    cleaned = clean_header_value(text)
    name, address = email.utils.parseaddr(cleaned)
    local, at, domain = address.rpartition("@")
    if not at:
        return cleaned
    if not domain.isascii():
        address = f"{local}@{ascii_domain(domain)}"
    return email.utils.formataddr((name, address), charset="utf-8")


def _alert_subject(
    mail: MailSettings,
    events: Sequence[AlertEvent],
    summaries: Sequence[str],
    hosts: Sequence[str],
) -> str:
    """Return the subject: one alert in full, a group as counts and names."""
    prefix = clean_header_value(mail.subject_prefix)
    host = ", ".join(hosts)
    if len(events) == 1:
        event = events[0]
        check = clean_header_value(event.check)
        subject = f"{prefix} {_label(event)} {host}: {check} - {summaries[0]}"
        return shorten(subject.strip(), SUBJECT_LIMIT)

    counts = ", ".join(f"{count} {label}" for label, count in count_labels(events))
    head = shorten(f"{prefix} {len(events)} alerts on {host}: {counts}", 100).strip()
    names = _unique(clean_header_value(event.check) for event in events)
    shown: list[str] = []
    for index, name in enumerate(names):
        rest = len(names) - index - 1
        candidate = f"{head} - {', '.join([*shown, name])}"
        if rest:
            candidate += f", +{rest} more"
        if len(candidate) > SUBJECT_LIMIT:
            break
        shown.append(name)
    if not shown:
        return shorten(head, SUBJECT_LIMIT)
    hidden = len(names) - len(shown)
    return f"{head} - {', '.join(shown)}" + (f", +{hidden} more" if hidden else "")


def _label(event: AlertEvent) -> str:
    """Return what the subject of a single alert calls it."""
    if event.kind in (EventKind.RECOVERY, EventKind.FLAPPING):
        return event.kind.value
    if event.kind is EventKind.REMINDER:
        return f"REMINDER {event.status.name}"
    if event.kind is EventKind.SILENCE_ENDED:
        return f"STILL {event.status.name}"
    return event.status.name


def _prepare(paths: list[Path], mail: MailSettings, redactor: Redactor) -> Prepared:
    """Prepare the files for one message under the ``[mail]`` limits."""
    return prepare_attachments(
        paths,
        max_bytes=mail.attach_max_bytes,
        compress_above=mail.compress_above,
        redactor=redactor,
        total_max_bytes=ATTACH_TOTAL_FACTOR * mail.attach_max_bytes,
    )


def _add_attachment(message: EmailMessage, attachment: Attachment) -> None:
    """Attach prepared content; the policy encodes a non-ASCII file name."""
    params = {"charset": attachment.charset} if attachment.charset else None
    message.add_attachment(
        attachment.content,
        maintype=attachment.maintype,
        subtype=attachment.subtype,
        filename=attachment.filename,
        params=params,
    )


def _unique(items: Iterable[str]) -> list[str]:
    """Return ``items`` without repeats, in first-seen order."""
    return list(dict.fromkeys(items))
