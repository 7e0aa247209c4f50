"""Building the emails: alerts, the test message, and later changes to them.

This module owns what a recipient sees: the subject, the plain-text body, and
the headers mail filters use; :mod:`notifier.attachments` prepares the files
that go with a message and :mod:`notifier.redact` masks secrets in them. It
also owns the two changes made to a message after it was composed: shrinking
it under the mail server's size limit, and marking it as late. It knows
nothing of SMTP and nothing of any check: its input is alert events and the
``[mail]`` settings.

Every header value built from check output goes through
:func:`clean_header_value`, so no log line can add a header."""

from __future__ import annotations

import email.policy
import email.utils
import shlex
import textwrap
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Final

from notifier.attachments import (
    Attachment,
    Prepared,
    prepare_attachments,
    printable,
    shrink_largest_attachment,
)
from notifier.checks.base import worst
from notifier.config import MailSettings
from notifier.events import AlertEvent, EventKind
from notifier.redact import Redactor, redactor_for
from notifier.units import format_size

POLICY: Final = email.policy.SMTP
"""Policy of every composed message: CRLF line ends, headers folded at 78."""

SUBJECT_LIMIT: Final = 150
SILENCE_FOR: Final = "2h"
_EVIDENCE_LINES: Final = 40
_EVIDENCE_CHARS: Final = 300
_WRAP: Final = 72
_LINE_LIMIT: Final = 78
_QUEUED_PREFIX: Final = "Late: queued since "
_SIZE_NOTE_PREFIX: Final = "Too large for the mail server"


def clean_header_value(text: str) -> str:
    """Return ``text`` fit to be one header value.

    Control characters (CR and LF among them), Unicode line and paragraph
    separators and every other kind of whitespace become one space; format
    characters (zero-width, bidirectional overrides) and lone surrogates are
    dropped. ``=?`` is split so that the text cannot pose as an RFC 2047
    encoded word: Python before 3.11.10 decodes one while folding and writes
    its CR LF raw (https://github.com/python/cpython/issues/121650).

    :param text: any text, typically from check output.
    :returns: one line with single spaces, possibly empty.
    """
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp", "Zs"):
            kept.append(" ")
        elif category not in ("Cf", "Cs"):
            kept.append(char)
    return " ".join("".join(kept).replace("=?", "= ?").split())


def shorten(text: str, limit: int) -> str:
    """Return ``text`` cut at a word boundary to at most ``limit`` characters.

    A cut text ends with ``...``; a single word longer than the limit is cut
    inside the word.
    """
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 3, 1)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "..."


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

    Reads the tail of every file in the events' ``attachments`` (each file
    once per message); a file that cannot be read gets a line in the body
    saying why instead. Secrets in the summary, the evidence and the attached
    text are masked (:mod:`notifier.redact`).

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

    redactor = redactor_for(mail.redact)
    summaries = []
    masked = 0
    for event in events:
        summary, found = redactor.redact(event.summary)
        summaries.append(clean_header_value(summary))
        masked += found

    # Attachments are read before the body is written: the body reports
    # what they hold and how many secrets were masked in them.
    files = _prepare(
        [path for event in events for path in event.attachments], mail, redactor
    )
    masked += files.masked
    sections = []
    for event, summary in zip(events, summaries, strict=True):
        lines, found = _event_section(event, summary, redactor, now)
        sections.append(lines)
        masked += found

    hosts = _unique(clean_header_value(event.host) for event in events)
    body = _notes_block(extra_notes)
    if len(events) > 1:
        body += _group_overview(events, summaries, ", ".join(hosts))
    for index, lines in enumerate(sections):
        if index:
            body += ["", "-" * 40, ""]
        body += lines
    body += _attachment_block(files.notes)
    body += _masked_block(masked)
    body += _signature(hostname, now)

    message = new_message(mail, hostname, recipients, now)
    message["Subject"] = _alert_subject(mail, events, summaries, hosts)
    message["X-Notifier-Check"] = shorten(
        ", ".join(_unique(clean_header_value(event.check) for event in events)), 900
    )
    message["X-Notifier-Status"] = worst([event.status for event in events]).name
    message["X-Notifier-Kind"] = ", ".join(
        _unique(event.kind.value for event in events)
    )
    message["X-Notifier-Host"] = shorten(", ".join(hosts), 900)
    _set_body(message, "\n".join(body) + "\n")
    for attachment in files.attachments:
        _add_attachment(message, attachment)
    return message


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

    body = [
        f"This is a test message from notifier on {host}.",
        "If you can read it, alerts from this host reach you.",
        "",
        f"Host:     {host}",
        f"Version:  notifier {printable(version)}",
        f"Config:   {printable(str(config_path)) if config_path else '(defaults)'}",
        f"Sent:     {_format_time(now)}",
    ]
    body += _attachment_block(files.notes)
    body += _masked_block(files.masked)
    body += _signature(hostname, now)

    message = new_message(mail, hostname, recipients, now)
    prefix = clean_header_value(mail.subject_prefix)
    message["Subject"] = shorten(f"{prefix} test message from {host}", SUBJECT_LIMIT)
    message["X-Notifier-Kind"] = "TEST"
    message["X-Notifier-Host"] = host
    _set_body(message, "\n".join(body) + "\n")
    for attachment in files.attachments:
        _add_attachment(message, attachment)
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

    line = f"{_QUEUED_PREFIX}{_format_time(since)}"
    if now is not None:
        line += f", sent {human_duration((now - since).total_seconds())} late"
    _set_notice(message, _QUEUED_PREFIX, f"{line}.")
    return message


def human_duration(seconds: float) -> str:
    """Return a duration as its two largest units: ``2h 5m``, ``45s``."""
    remaining = max(int(seconds), 0)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2]) or "0s"


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

    tally = Counter(_tally_label(event) for event in events)
    counts = ", ".join(f"{tally[label]} {label}" for label in _tally_order(tally))
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


def _tally_label(event: AlertEvent) -> str:
    """Return the word a group's subject counts this event under."""
    if event.kind is EventKind.RECOVERY:
        return "RECOVERED"
    if event.kind is EventKind.FLAPPING:
        return "FLAPPING"
    return event.status.name


def _tally_order(tally: Counter[str]) -> list[str]:
    """Return the counted labels, worst first."""
    order = ["CRITICAL", "WARNING", "UNKNOWN", "FLAPPING", "RECOVERED", "OK"]
    return sorted(tally, key=lambda label: order.index(label))


def _event_section(
    event: AlertEvent, summary: str, redactor: Redactor, now: datetime
) -> tuple[list[str], int]:
    """Return the body lines about one event and the secrets masked in them."""
    check = clean_header_value(event.check)
    host = clean_header_value(event.host)
    lines = _wrap(_headline(event, check, host))
    lines += _wrap(summary)
    lines.append("")

    for_how_long = human_duration((now - event.since).total_seconds())
    lines.append(f"Since:  {_format_time(event.since)} (for {for_how_long})")
    if event.value is not None:
        lines.append(f"Value:  {_value_text(event)}")
    if event.previous_status is not None and event.previous_status != event.status:
        lines.append(f"Before: {event.previous_status.name}")
    lines.append(f"Check:  {check} (type {clean_header_value(event.check_type)})")

    masked = 0
    if event.evidence:
        lines += ["", "Evidence:"]
        for raw in event.evidence[:_EVIDENCE_LINES]:
            text, found = redactor.redact(raw)
            masked += found
            lines.append("  " + shorten(printable(text), _EVIDENCE_CHARS))
        hidden = len(event.evidence) - _EVIDENCE_LINES
        if hidden > 0:
            lines.append(f"  ... and {hidden} more lines")

    if event.kind is not EventKind.RECOVERY:
        command = f"notifier silence {shlex.quote(check)} --for {SILENCE_FOR}"
        lines += ["", f"To silence it for {SILENCE_FOR}:", f"  {command}"]
    return lines, masked


def _headline(event: AlertEvent, check: str, host: str) -> str:
    """Return the first line of an event's section: what and where."""
    status = event.status.name
    if event.kind is EventKind.RECOVERY:
        return f"RECOVERED: {check} on {host} is {status} again."
    if event.kind is EventKind.REMINDER:
        return f"Still {status}: {check} on {host} (reminder)."
    if event.kind is EventKind.FLAPPING:
        return (
            f"FLAPPING: {check} on {host} keeps changing state; "
            "no more alerts for it until it settles."
        )
    if event.kind is EventKind.SILENCE_ENDED:
        return f"Still {status}: {check} on {host}; its silence has ended."
    return f"{status}: {check} on {host}."


def _value_text(event: AlertEvent) -> str:
    """Return the value against the thresholds: ``91 (warning 80, critical 90)``."""
    text = f"{event.value:g}"
    limits = ", ".join(
        f"{printable(name)} {limit:g}" for name, limit in event.thresholds.items()
    )
    return f"{text} ({limits})" if limits else text


def _group_overview(
    events: Sequence[AlertEvent], summaries: Sequence[str], host: str
) -> list[str]:
    """Return the list opening a group's body: one line per alert."""
    lines = [f"{len(events)} alerts on {host}:"]
    for event, summary in zip(events, summaries, strict=True):
        check = clean_header_value(event.check)
        item = f"- {_tally_label(event)} {check}: {summary}"
        lines += _wrap(shorten(item, 160), indent="  ")
    return [*lines, "", "-" * 40, ""]


def _notes_block(notes: Sequence[str]) -> list[str]:
    """Return the delivery side's notes as the first paragraph, if any."""
    lines: list[str] = []
    for note in notes:
        lines += _wrap(printable(note))
    return [*lines, ""] if lines else []


def _attachment_block(notes: Sequence[str]) -> list[str]:
    """Return the paragraph listing each file and what became of it."""
    if not notes:
        return []
    lines = ["", "Files:"]
    for note in notes:
        lines += _wrap(f"- {note}", indent="  ")
    return lines


def _masked_block(masked: int) -> list[str]:
    """Return the line saying how many secrets were masked, if any were."""
    if not masked:
        return []
    verb = "secret was" if masked == 1 else "secrets were"
    return ["", f"{masked} {verb} masked in the evidence and attachments."]


def _signature(hostname: str, now: datetime) -> list[str]:
    """Return the signature: who sent this and when."""
    return [
        "",
        "-- ",
        f"notifier on {clean_header_value(hostname)}, {_format_time(now)}",
    ]


def _prepare(paths: list[Path], mail: MailSettings, redactor: Redactor) -> Prepared:
    """Prepare the files for one message under the ``[mail]`` limits."""
    return prepare_attachments(
        paths,
        max_bytes=mail.attach_max_bytes,
        compress_above=mail.compress_above,
        redactor=redactor,
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


def _set_body(part: EmailMessage, text: str) -> None:
    """Set plain-text content: 7bit when it can be, else quoted-printable."""
    lines = text.split("\n")
    plain = text.isascii() and max(len(line) for line in lines) <= _LINE_LIMIT
    part.set_content(text, charset="utf-8", cte="7bit" if plain else "quoted-printable")


def _body_part(message: EmailMessage) -> EmailMessage:
    """Return the plain-text body part of ``message``."""
    part = message.get_body(preferencelist=("plain",))
    if not isinstance(part, EmailMessage):
        msg = "the message has no plain-text body to add a note to"
        raise ValueError(msg)
    return part


def _set_notice(message: EmailMessage, prefix: str, notice: str) -> None:
    """Put ``notice`` first in the body, replacing an earlier one like it.

    A notice is a paragraph whose first line starts with ``prefix``; only the
    first few paragraphs are looked at, as notices are only ever put there.
    """
    part = _body_part(message)
    text = str(part.get_content()).replace("\r\n", "\n")
    paragraphs = text.split("\n\n")
    kept = [
        paragraph
        for index, paragraph in enumerate(paragraphs)
        if index >= 3 or not paragraph.startswith(prefix)
    ]
    _set_body(part, "\n\n".join([notice, *kept]))


def _wrap(text: str, indent: str = "") -> list[str]:
    """Return ``text`` wrapped for a phone screen, words never broken."""
    if not text:
        return []
    return textwrap.wrap(
        text,
        width=_WRAP,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [text]


def _format_time(moment: datetime) -> str:
    """Return a time as ``2024-05-01 10:02 UTC`` in its own time zone."""
    return moment.strftime("%Y-%m-%d %H:%M %Z").rstrip()


def _unique(items: Iterable[str]) -> list[str]:
    """Return ``items`` without repeats, in first-seen order."""
    return list(dict.fromkeys(items))
