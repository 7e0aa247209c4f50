"""Composed emails, read back the way a recipient's mail program reads them.

Every test serialises the message to bytes with the SMTP policy, parses the
bytes again and asserts what a person would see: the subject, the headers a
mail filter uses, the body lines, the decoded attachments.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import email.utils
import gzip
import hashlib
import os
import random
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.checks.base import Status
from notifier.compose import (
    BRIEF_LIMIT,
    FULL_SECTIONS,
    add_notice,
    ascii_domain,
    clean_header_value,
    compose_alert,
    compose_test_message,
    mark_queued_since,
    message_size,
    shrink_to_fit,
)
from notifier.config import MailSettings
from notifier.events import AlertEvent, EventKind

NOW = datetime(2024, 5, 1, 12, 7, tzinfo=UTC)
BASE_HEADERS = {
    "from",
    "to",
    "date",
    "message-id",
    "auto-submitted",
    "x-auto-response-suppress",
    "subject",
    "x-notifier-check",
    "x-notifier-status",
    "x-notifier-kind",
    "x-notifier-host",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}


def make_event(**changes):
    values = {
        "kind": EventKind.PROBLEM,
        "check": "root-disk",
        "check_type": "disk",
        "host": "web-1",
        "status": Status.CRITICAL,
        "previous_status": Status.WARNING,
        "summary": "/ is 91% full",
        "since": NOW - timedelta(hours=2, minutes=5),
        "at": NOW,
        "value": 91.0,
        "thresholds": {"warning": 80.0, "critical": 90.0},
    }
    values.update(changes)
    return AlertEvent(**values)


def compose(events, mail=None, **keywords):
    keywords.setdefault("hostname", "web-1.example.org")
    keywords.setdefault("recipients", ["ops@example.org"])
    keywords.setdefault("now", NOW)
    return compose_alert(events, mail or MailSettings(), **keywords)


def received(message: EmailMessage) -> EmailMessage:
    """Return the message as a recipient's program parses it."""
    data = message.as_bytes()
    return BytesParser(policy=email.policy.default).parsebytes(data)


def body_of(message: EmailMessage) -> str:
    """Return the plain-text body with its lines joined by a bare newline."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    return text.replace("\r\n", "\n")


def attachments_of(message: EmailMessage) -> dict[str, EmailMessage]:
    return {part.get_filename(): part for part in message.iter_attachments()}


def raw_header_names(message: EmailMessage) -> list[str]:
    """Return the field names in the serialised top-level header block."""
    head = message.as_bytes().split(b"\r\n\r\n", 1)[0]
    names = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue
        names.append(line.split(b":", 1)[0].decode("ascii").lower())
    return names


def tail_at_line_start(data: bytes, limit: int) -> bytes:
    """The expected attachment: the last lines of ``data`` within ``limit``."""
    lines = data.splitlines(keepends=True)
    kept: list[bytes] = []
    size = 0
    for line in reversed(lines):
        if size + len(line) > limit:
            break
        kept.insert(0, line)
        size += len(line)
    return b"".join(kept)


def numbered_log(path: Path, count: int) -> bytes:
    rng = random.Random(count)
    data = b"".join(
        f"2024-05-01T10:{n % 60:02d}:00 web-1 app[42]: request {n} took "
        f"{rng.random():.6f}s status={rng.choice([200, 404, 500])}\n".encode()
        for n in range(count)
    )
    path.write_bytes(data)
    return data


# -- subject and headers ------------------------------------------------------


def test_single_alert_has_the_subject_and_headers_a_filter_uses():
    message = received(compose([make_event()]))

    assert message["Subject"] == "[notifier] CRITICAL web-1: root-disk - / is 91% full"
    assert message["From"] == "notifier@web-1.example.org"
    assert message["To"] == "ops@example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Notifier-Check"] == "root-disk"
    assert message["X-Notifier-Status"] == "CRITICAL"
    assert message["X-Notifier-Kind"] == "PROBLEM"
    assert message["X-Notifier-Host"] == "web-1"
    assert message["Date"].datetime == NOW
    assert re.fullmatch(r"<[^@<>\s]+@web-1\.example\.org>", message["Message-ID"])


def test_sender_recipients_and_prefix_come_from_the_settings():
    mail = MailSettings(sender="Alerts <alerts@example.org>", subject_prefix="[prod]")

    message = received(
        compose([make_event()], mail, recipients=["a@example.org", "b@example.org"])
    )

    assert message["From"] == "Alerts <alerts@example.org>"
    assert [a.addr_spec for a in message["To"].addresses] == [
        "a@example.org",
        "b@example.org",
    ]
    assert message["Subject"].startswith("[prod] CRITICAL web-1: ")


@pytest.mark.parametrize(
    ("kind", "status", "summary", "subject"),
    [
        (
            EventKind.RECOVERY,
            Status.OK,
            "/ is 70% full",
            "[notifier] RECOVERY web-1: root-disk - / is 70% full",
        ),
        (
            EventKind.REMINDER,
            Status.CRITICAL,
            "/ is 93% full",
            "[notifier] REMINDER CRITICAL web-1: root-disk - / is 93% full",
        ),
        (
            EventKind.FLAPPING,
            Status.WARNING,
            "/ is 85% full",
            "[notifier] FLAPPING web-1: root-disk - / is 85% full",
        ),
        (
            EventKind.SILENCE_ENDED,
            Status.CRITICAL,
            "/ is 92% full",
            "[notifier] STILL CRITICAL web-1: root-disk - / is 92% full",
        ),
    ],
)
def test_subject_says_what_kind_of_message_it_is(kind, status, summary, subject):
    event = make_event(kind=kind, status=status, summary=summary)

    message = received(compose([event]))

    assert message["Subject"] == subject
    assert message["X-Notifier-Kind"] == kind.value
    assert message["X-Notifier-Status"] == status.name


def test_long_subject_is_cut_at_a_word_with_an_ellipsis():
    summary = "error: " + " ".join(f"word{n}" for n in range(60))

    subject = received(compose([make_event(summary=summary)]))["Subject"]

    assert len(subject) <= 150
    assert subject.endswith("...")
    assert re.search(r" word\d+\.\.\.$", subject)


# -- body ------------------------------------------------------------------------


def test_body_says_what_where_since_when_value_and_how_to_silence():
    event = make_event(evidence=("/var/log: 40GiB", "/home: 30GiB"))

    lines = body_of(received(compose([event]))).splitlines()

    assert "CRITICAL: root-disk on web-1." in lines
    assert "/ is 91% full" in lines
    assert "Since:  2024-05-01 10:02 UTC (for 2h 5m)" in lines
    assert "Value:  91 (warning 80, critical 90)" in lines
    assert "Before: WARNING" in lines
    assert lines[lines.index("Evidence:") + 1 :][:2] == [
        "  /var/log: 40GiB",
        "  /home: 30GiB",
    ]
    assert "  notifier silence root-disk --for 2h" in lines
    assert max(len(line) for line in lines) <= 78


def test_recovery_body_offers_no_silence_command():
    event = make_event(kind=EventKind.RECOVERY, status=Status.OK, since=NOW)

    body = body_of(received(compose([event])))

    assert "RECOVERED: root-disk on web-1 is OK again." in body
    assert "notifier silence" not in body


def test_extra_notes_open_the_body():
    notes = [
        "12 alerts were held back by max_per_hour: root-disk (7), nginx (5)",
        "delivery recovered; 3 messages were delayed",
    ]

    lines = body_of(received(compose([make_event()], extra_notes=notes))).splitlines()

    assert lines[:2] == notes


def test_evidence_is_capped_and_says_how_much_is_left_out():
    evidence = tuple(f"line {n} " + "x" * 400 for n in range(55))

    lines = body_of(received(compose([make_event(evidence=evidence)]))).splitlines()

    shown = [line for line in lines if line.startswith("  line ")]
    assert len(shown) == 40
    assert all(len(line) <= 302 for line in shown)
    assert "  ... and 15 more lines" in lines


# -- header injection ------------------------------------------------------------

INJECTIONS = [
    "x\r\nBcc: evil@example.com",
    "x\nBcc: evil@example.com",
    "x\rBcc: evil@example.com",
    "nul\x00byte",
    "line\u2028separator\u2029paragraph\x85next",
    "=?utf-8?b?eA0KQmNjOiBldmlsQGV4YW1wbGUuY29t?=",
    "=?utf-8?q?x=0D=0ABcc:_evil@example.com?=",
    "bidi \u202eevil\u202c zero\u200bwidth",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_header_injection_from_check_output_never_adds_a_header(text):
    event = make_event(
        summary=text, check=f"chk{text}", host=f"web-1{text}", evidence=(text,)
    )

    sent = compose([event])
    message = received(sent)

    assert set(raw_header_names(sent)) == BASE_HEADERS
    assert "Bcc" not in message
    for name, value in message.items():
        assert not any(
            unicodedata.category(c)[0] in "CZ" and c != " " for c in value
        ), (
            name,
            value,
        )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet=st.characters(exclude_categories=())),
            st.sampled_from(["\r\n", "\r", "\n", "Bcc: x@example.com", "=?", "?="]),
            st.sampled_from(INJECTIONS),
        ),
        max_size=6,
    ).map("".join)
)
def test_any_check_output_gives_clean_headers_and_a_message_that_serialises(text):
    event = make_event(summary=text, check=text or "c", host=text, evidence=(text,))

    sent = compose([event])
    message = received(sent)

    assert set(raw_header_names(sent)) == BASE_HEADERS
    for _, value in message.items():
        assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value)
    assert "Evidence:" in body_of(message)


@given(st.text(alphabet=st.characters(exclude_categories=())))
def test_clean_header_value_leaves_one_line_without_control_characters(text):
    cleaned = clean_header_value(text)

    assert "  " not in cleaned
    assert cleaned == cleaned.strip()
    assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in cleaned)
    assert "=?" not in cleaned


# -- non-ASCII -----------------------------------------------------------------


def test_non_ascii_host_path_and_summary_reach_the_recipient_intact(tmp_path):
    log = tmp_path / "journal-été.log"
    log.write_bytes("démarrage du serveur\nerreur: disque plein\n".encode())
    event = make_event(
        host="wéb-1",
        summary="/srv/données est plein à 91%",
        attachments=(log,),
    )

    sent = compose([event], hostname="wéb-1.exämple.org")
    message = received(sent)

    assert message["Subject"] == (
        "[notifier] CRITICAL wéb-1: root-disk - /srv/données est plein à 91%"
    )
    assert message["X-Notifier-Host"] == "wéb-1"
    assert message["Message-ID"].endswith("@xn--wb-1-bpa.xn--exmple-cua.org>")
    assert message["From"] == "notifier@xn--wb-1-bpa.xn--exmple-cua.org"
    assert sent.as_bytes().isascii()
    part = attachments_of(message)["journal-été.log"]
    assert part.get_content() == log.read_text()
    assert f"({log})" in body_of(message)


def test_non_ascii_recipient_domain_is_sent_in_idna():
    message = received(compose([make_event()], recipients=["ops@exämple.org"]))

    assert message["To"].addresses[0].domain == "xn--exmple-cua.org"


def test_ascii_domain_survives_any_host_name():
    assert ascii_domain("web-1.example.org") == "web-1.example.org"
    assert ascii_domain("") == "localhost"
    assert ascii_domain("bad host<@>..x") == "badhost.x"
    assert ascii_domain("ü" * 80).startswith("xn--")


# -- attachments ---------------------------------------------------------------


def test_attachment_is_the_file_tail_cut_at_a_line_boundary(tmp_path):
    log = tmp_path / "app.log"
    data = numbered_log(log, 20_000)
    mail = MailSettings(attach_max_bytes=64 * 1024, compress_above=10**9)

    message = received(compose([make_event(attachments=(log,))], mail))

    part = attachments_of(message)["app.log"]
    content = part.get_payload(decode=True)
    expected = tail_at_line_start(data, 64 * 1024)
    assert hashlib.sha256(content).digest() == hashlib.sha256(expected).digest()
    assert part.get_content_type() == "text/plain"
    assert data.endswith(content)
    assert data[: len(data) - len(content)].endswith(b"\n")
    kept = f"{len(content) / 1024:.1f}KiB"
    assert f"app.log: last {kept} of {len(data) / 1024**2:.1f}MiB" in body_of(message)


def test_large_attachment_is_gzip_compressed_and_decompresses_to_the_tail(tmp_path):
    log = tmp_path / "app.log"
    data = numbered_log(log, 20_000)
    mail = MailSettings(attach_max_bytes=512 * 1024, compress_above=64 * 1024)

    message = received(compose([make_event(attachments=(log,))], mail))

    part = attachments_of(message)["app.log.gz"]
    assert part.get_content_type() == "application/gzip"
    unpacked = gzip.decompress(part.get_payload(decode=True))
    assert unpacked == tail_at_line_start(data, 512 * 1024)
    assert "gzip-compressed" in body_of(message)


def test_small_attachment_is_not_compressed_and_is_whole(tmp_path):
    log = tmp_path / "short.log"
    log.write_bytes(b"one\ntwo\n")

    message = received(compose([make_event(attachments=(log,))]))

    part = attachments_of(message)["short.log"]
    assert part.get_payload(decode=True) == b"one\ntwo\n"
    assert "short.log: 8B" in body_of(message)


def test_five_megabyte_log_arrives_intact_when_the_limit_allows(tmp_path):
    log = tmp_path / "big.log"
    data = numbered_log(log, 70_000)
    assert len(data) > 5 * 1000 * 1000
    mail = MailSettings(attach_max_bytes=8 * 1024 * 1024, compress_above=10**9)

    message = received(compose([make_event(attachments=(log,))], mail))

    content = attachments_of(message)["big.log"].get_payload(decode=True)
    assert hashlib.sha256(content).hexdigest() == hashlib.sha256(data).hexdigest()


def test_mime_type_comes_from_the_file_name(tmp_path):
    report = tmp_path / "report.json"
    report.write_text('{"ok": false}\n')
    blob = tmp_path / "core.bin"
    blob.write_bytes(bytes(range(256)))

    message = received(compose([make_event(attachments=(report, blob))]))

    parts = attachments_of(message)
    assert parts["report.json"].get_content_type() == "application/json"
    assert parts["core.bin"].get_content_type() == "application/octet-stream"
    assert parts["core.bin"].get_payload(decode=True) == bytes(range(256))


def test_binary_file_over_the_limit_is_not_attached_and_body_says_why(tmp_path):
    blob = tmp_path / "dump.bin"
    blob.write_bytes(b"\x00\x01" * 100_000)
    mail = MailSettings(attach_max_bytes=1024)

    message = received(compose([make_event(attachments=(blob,))], mail))

    assert attachments_of(message) == {}
    assert f"{blob}: not attached, 195.3KiB of binary data is more than" in (
        body_of(message).replace("\n  ", " ")
    )


def test_files_that_cannot_be_read_become_body_lines_not_errors(tmp_path):
    missing = tmp_path / "gone.log"
    folder = tmp_path / "a-folder"
    folder.mkdir()
    fifo = tmp_path / "pipe.log"
    os.mkfifo(fifo)

    message = received(compose([make_event(attachments=(missing, folder, fifo))]))

    body = body_of(message).replace("\n  ", " ")
    assert attachments_of(message) == {}
    assert f"{missing}: not attached, the file does not exist" in body
    assert f"{folder}: not attached, it is not a regular file" in body
    assert f"{fifo}: not attached, it is not a regular file" in body


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever the mode")
def test_unreadable_file_says_permission_was_denied(tmp_path):
    log = tmp_path / "secret.log"
    log.write_text("x\n")
    log.chmod(0)

    message = received(compose([make_event(attachments=(log,))]))

    assert f"{log}: not attached, permission to read it was denied" in body_of(
        message
    ).replace("\n  ", " ")


def test_attach_max_bytes_zero_attaches_nothing(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("x\n")

    message = received(
        compose([make_event(attachments=(log,))], MailSettings(attach_max_bytes=0))
    )

    assert attachments_of(message) == {}
    assert "attach_max_bytes is 0" in body_of(message)


# -- masking -------------------------------------------------------------------


def test_secrets_are_masked_in_summary_evidence_and_attachment_and_counted(tmp_path):
    log = tmp_path / "auth.log"
    log.write_bytes(
        b"GET /login?user=bob&password=hunter2\n"
        b"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x\n"
        b'{"api_key": "AKIA0123", "region": "eu"}\n'
        b"connecting to postgres://app:dbpa55@db:5432/app\n"
    )
    event = make_event(
        summary="login failed token=tok-1",
        evidence=("retry with secret: s3cr3t", "DB_PASSWORD=pw-2 ok"),
        attachments=(log,),
    )

    message = received(compose([event]))

    everything = message.as_string()
    attached = attachments_of(message)["auth.log"].get_payload(decode=True)
    for secret in (
        "hunter2",
        "eyJhbGci",
        "AKIA0123",
        "dbpa55",
        "tok-1",
        "s3cr3t",
        "pw-2",
    ):
        assert secret not in everything
        assert secret.encode() not in attached
    assert attached.count(b"[masked]") == 4
    assert " ".join(body_of(message).split()).endswith(
        "7 secrets were masked: 1 in the summary, 2 in the evidence, 4 in auth.log. "
        "-- notifier on web-1.example.org, 2024-05-01 12:07 UTC"
    )
    assert message["Subject"].endswith("login failed token=[masked]")


def test_user_redact_patterns_mask_body_and_attachment(tmp_path):
    log = tmp_path / "orders.log"
    log.write_bytes(b"order 1 customer=ACME42 paid\norder 2 card 4111-1111 ok\n")
    mail = MailSettings(redact=(r"customer=(\w+)", r"\d{4}-\d{4}"))
    event = make_event(evidence=("customer=ACME42 refunded",), attachments=(log,))

    message = received(compose([event], mail))

    attached = attachments_of(message)["orders.log"].get_payload(decode=True)
    assert attached == b"order 1 customer=[masked] paid\norder 2 card [masked] ok\n"
    assert "  customer=[masked] refunded" in body_of(message).splitlines()
    # ACME42 is in the evidence and the file: one secret, not two.
    assert (
        "2 secrets were masked: 1 in the evidence, 2 in orders.log."
        in body_of(message).splitlines()
    )


def test_no_masking_line_when_nothing_was_masked():
    assert "masked" not in body_of(received(compose([make_event()])))


def test_one_secret_quoted_in_summary_evidence_and_log_is_counted_once(tmp_path):
    line = "ERROR login failed password=hunter2 token=abcd1234secret"
    log = tmp_path / "app.log"
    log.write_text(f"INFO started\n{line}\n")
    event = make_event(
        check="app-log",
        check_type="logscan",
        summary=f"1 new matching line: {line}",
        evidence=(line,),
        attachments=(log,),
    )

    message = received(compose([event]))

    body = body_of(message)
    assert "hunter2" not in message.as_string()
    assert "abcd1234secret" not in message.as_string()
    assert " ".join(body.split()).endswith(
        "2 secrets were masked: 2 in the summary, 2 in the evidence, 2 in app.log. "
        "-- notifier on web-1.example.org, 2024-05-01 12:07 UTC"
    )
    assert "6 secrets" not in body


def test_secrets_shared_by_a_group_count_once_and_each_file_is_named(tmp_path):
    logs = []
    for number in range(8):
        log = tmp_path / f"app{number}.log"
        log.write_text(f"token=shared-tok secret=own-{number}\n")
        logs.append(log)
    events = [
        make_event(check=f"app-{n}", summary="token=shared-tok", attachments=(log,))
        for n, log in enumerate(logs)
    ]

    body = " ".join(body_of(received(compose(events))).split())

    assert (
        "9 secrets were masked: 1 in the summaries, 2 in app0.log, 2 in app1.log, "
        "2 in app2.log, 2 in app3.log, and in 4 more files."
    ) in body


# -- groups --------------------------------------------------------------------


def test_group_lists_every_alert_and_attaches_each_file_once(tmp_path):
    shared = tmp_path / "syslog"
    shared.write_text("kernel: oom-killer\n")
    own = tmp_path / "nginx.log"
    own.write_text("upstream timed out\n")
    events = [
        make_event(check="root-disk", attachments=(shared,)),
        make_event(
            check="memory",
            check_type="memory",
            status=Status.WARNING,
            summary="RAM 92% used",
            attachments=(shared, tmp_path / "." / "syslog"),
        ),
        make_event(check="nginx", summary="502 errors", attachments=(own, shared)),
    ]

    message = received(compose(events))

    # Worst first: the two CRITICAL checks, then the WARNING one.
    assert message["Subject"] == (
        "[notifier] 3 alerts on web-1: 2 CRITICAL, 1 WARNING - root-disk, nginx, memory"
    )
    assert message["X-Notifier-Check"] == "root-disk, nginx, memory"
    assert message["X-Notifier-Status"] == "CRITICAL"
    assert sorted(attachments_of(message)) == ["nginx.log", "syslog"]
    body = body_of(message)
    for headline in ("CRITICAL: root-disk on web-1.", "WARNING: memory on web-1."):
        assert headline in body
    assert "- WARNING memory: RAM 92% used" in body
    assert body.count("notifier silence") == 3


def test_group_subject_names_what_fits_and_counts_the_rest():
    events = [
        make_event(check=f"check-number-{n}", status=Status.WARNING) for n in range(30)
    ]
    events.append(make_event(kind=EventKind.RECOVERY, status=Status.OK, check="db"))

    subject = received(compose(events))["Subject"]

    assert len(subject) <= 150
    assert subject.startswith(
        "[notifier] 31 alerts on web-1: 30 WARNING, 1 RECOVERED - "
    )
    assert re.search(r"check-number-\d+, \+\d+ more$", subject)


# -- storms: a cap on the body and on the files -------------------------------


def test_a_storm_of_500_alerts_describes_the_worst_in_full_and_lists_the_rest():
    assert FULL_SECTIONS == 20
    evidence = tuple(f"evidence line {n} " + "x" * 200 for n in range(40))
    events = [
        make_event(
            check=f"disk-{n:03d}",
            status=Status.WARNING,
            summary=f"/srv/{n} is 85% full",
            evidence=evidence,
        )
        for n in range(480)
    ]
    # The CRITICAL ones come last in the batch and first in the message.
    events += [
        make_event(check=f"crit-{n:02d}", summary=f"/data/{n} is 99% full")
        for n in range(20)
    ]

    message = received(compose(events))

    # 500 full sections with this evidence made a message of about 4.5MB.
    assert len(message.as_bytes()) < 100_000
    assert message["Subject"].startswith(
        "[notifier] 500 alerts on web-1: 20 CRITICAL, 480 WARNING - crit-00, crit-01"
    )
    lines = body_of(message).splitlines()
    assert lines[0] == "500 alerts on web-1: 20 CRITICAL, 480 WARNING."
    assert " ".join(lines[1:3]) == (
        "The 20 worst are described in full below; the other 480 are listed "
        "briefly after them, one line each."
    )
    headlines = [line for line in lines if line.endswith(" on web-1.")]
    assert headlines == [f"CRITICAL: crit-{n:02d} on web-1." for n in range(20)]
    assert lines.count("To silence it for 2h:") == 20
    assert "evidence line 0" not in "\n".join(lines)
    brief = lines[lines.index("The other 480 alerts, listed briefly:") + 1 :]
    assert brief[:480] == [
        f"- WARNING disk-{n:03d}: /srv/{n} is 85% full" for n in range(480)
    ]


def test_alerts_past_the_brief_list_are_counted():
    events = [
        make_event(check=f"c{n}", status=Status.WARNING)
        for n in range(FULL_SECTIONS + BRIEF_LIMIT + 7)
    ]

    body = " ".join(body_of(received(compose(events))).split())

    assert f"The other {BRIEF_LIMIT + 7} alerts, listed briefly:" in body
    assert "... and 7 more alerts, not listed here; `notifier status`" in body
    assert f"- WARNING c{FULL_SECTIONS + BRIEF_LIMIT - 1}: / is 91% full" in body
    assert f"- WARNING c{FULL_SECTIONS + BRIEF_LIMIT}:" not in body


def test_a_group_attaches_at_most_twice_attach_max_bytes_worst_alert_first(tmp_path):
    limit = 64 * 1024
    mail = MailSettings(attach_max_bytes=limit, compress_above=10**9)
    events = []
    for number in range(30):
        log = tmp_path / f"app{number:02d}.log"
        numbered_log(log, 2000 + number)
        events.append(
            make_event(
                check=f"app-{number:02d}", status=Status.WARNING, attachments=(log,)
            )
        )
    events.append(make_event(check="db", attachments=(tmp_path / "app29.log",)))

    message = received(compose(events, mail))

    parts = attachments_of(message)
    assert sorted(parts) == ["app00.log", "app29.log"]
    assert sum(len(part.get_payload(decode=True)) for part in parts.values()) <= (
        2 * limit
    )
    body = " ".join(body_of(message).split())
    assert "28 files not attached, as the message already carries 127." in body
    assert "of files and takes at most 128KiB: " in body
    assert f"{tmp_path / 'app01.log'}, {tmp_path / 'app02.log'}, " in body
    assert "and 18 more" in body


def test_the_last_file_that_fits_keeps_a_shorter_tail_and_says_why(tmp_path):
    limit = 64 * 1024
    mail = MailSettings(attach_max_bytes=limit, compress_above=10**9)
    first, small, last = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "c.log"
    numbered_log(first, 3000)
    small.write_bytes(b"short line\n" * 1000)
    data = numbered_log(last, 3000)
    events = [
        make_event(check=path.stem, attachments=(path,))
        for path in (first, small, last)
    ]

    message = received(compose(events, mail))

    parts = attachments_of(message)
    sizes = {name: len(part.get_payload(decode=True)) for name, part in parts.items()}
    assert sizes["b.log"] == 11_000
    content = parts["c.log"].get_payload(decode=True)
    assert content == tail_at_line_start(data, 2 * limit - sizes["a.log"] - 11_000)
    body = " ".join(body_of(message).split())
    assert "c.log: last 53." in body
    assert "cut to stay within the message's total" in body


# -- shrinking for the server's SIZE -------------------------------------------


def test_shrink_to_fit_cuts_the_largest_attachment_and_says_so(tmp_path):
    big = tmp_path / "big.log"
    data = numbered_log(big, 8_000)
    small = tmp_path / "small.log"
    small.write_text("just one line\n")
    mail = MailSettings(attach_max_bytes=2 * 1024 * 1024, compress_above=10**9)
    message = compose([make_event(attachments=(big, small))], mail)
    assert message_size(message) > 300_000

    shrunk = received(shrink_to_fit(message, 200_000))

    assert len(shrunk.as_bytes(policy=email.policy.SMTP)) <= 200_000
    parts = attachments_of(shrunk)
    content = parts["big.log"].get_payload(decode=True)
    assert data.endswith(content)
    assert data[: len(data) - len(content)].endswith(b"\n")
    assert parts["small.log"].get_payload(decode=True) == b"just one line\n"
    lines = body_of(shrunk).splitlines()
    assert lines[0] == (
        "Too large for the mail server (it takes at most 195.3KiB per message):"
    )
    assert lines[1].startswith("- big.log: cut to its last ")
    assert "CRITICAL: root-disk on web-1." in lines


def test_shrink_to_fit_cuts_a_gzip_attachment_inside_the_compression(tmp_path):
    big = tmp_path / "big.log"
    data = numbered_log(big, 40_000)
    mail = MailSettings(attach_max_bytes=4 * 1024 * 1024, compress_above=1024)
    message = received(compose([make_event(attachments=(big,))], mail))
    assert message_size(message) > 400_000

    shrunk = received(shrink_to_fit(message, 150_000))

    assert message_size(shrunk) <= 150_000
    content = gzip.decompress(
        attachments_of(shrunk)["big.log.gz"].get_payload(decode=True)
    )
    assert data.endswith(content)
    assert len(content) > 100_000


def test_shrink_to_fit_drops_what_cannot_be_cut(tmp_path):
    blob = tmp_path / "core.bin"
    blob.write_bytes(os.urandom(300_000))
    mail = MailSettings(attach_max_bytes=1024 * 1024)
    message = compose([make_event(attachments=(blob,))], mail)

    shrunk = received(shrink_to_fit(message, 100_000))

    assert attachments_of(shrunk) == {}
    assert message_size(shrunk) <= 100_000
    assert "- core.bin: removed (293.0KiB)" in body_of(shrunk)


def test_shrink_to_fit_leaves_a_message_that_fits_alone(tmp_path):
    message = compose([make_event()])
    before = message.as_bytes()

    assert shrink_to_fit(message, 10 * 1024 * 1024).as_bytes() == before


# -- late delivery -------------------------------------------------------------


def test_mark_queued_since_works_on_a_message_read_back_from_bytes():
    stored = compose([make_event()]).as_bytes()
    loaded = email.message_from_bytes(stored, policy=email.policy.SMTP)
    queued = NOW - timedelta(hours=3, minutes=20)

    mark_queued_since(loaded, queued, now=NOW)
    mark_queued_since(loaded, queued, now=NOW)
    message = received(loaded)

    stamp = message["X-Notifier-Queued-Since"]
    assert email.utils.parsedate_to_datetime(stamp) == queued
    assert len(message.get_all("X-Notifier-Queued-Since")) == 1
    lines = body_of(message).splitlines()
    assert lines[0] == "Late: queued since 2024-05-01 08:47 UTC, sent 3h 20m late."
    assert sum(line.startswith("Late: queued") for line in lines) == 1
    assert "CRITICAL: root-disk on web-1." in lines
    assert message["Subject"] == "[notifier] CRITICAL web-1: root-disk - / is 91% full"


def test_mark_queued_since_keeps_attachments(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"a\nb\n")
    stored = compose([make_event(attachments=(log,))]).as_bytes()
    loaded = email.message_from_bytes(stored, policy=email.policy.default)

    message = received(mark_queued_since(loaded, NOW - timedelta(minutes=5)))

    assert attachments_of(message)["app.log"].get_payload(decode=True) == b"a\nb\n"
    assert body_of(message).startswith("Late: queued since 2024-05-01 12:02 UTC.\n")


# -- a notice put on top later ------------------------------------------------

OUTAGE_NOTE = (
    "Mail delivery from this host was failing from 2024-05-01 08:00 UTC to "
    "2024-05-01 12:00 UTC (4h, 9 attempt(s)); the last error was: (421, "
    "b'4.7.0 Try again later'). 3 message(s) held back meanwhile go out now."
)


def test_add_notice_wraps_the_note_and_puts_it_first_once(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"a\nb\n")
    stored = compose([make_event(attachments=(log,))]).as_bytes()
    loaded = email.message_from_bytes(stored, policy=email.policy.SMTP)

    add_notice(loaded, OUTAGE_NOTE)
    add_notice(loaded, OUTAGE_NOTE)
    message = received(loaded)

    lines = body_of(message).splitlines()
    paragraph = lines[: lines.index("")]
    assert len(paragraph) > 2
    assert all(len(line) <= 72 for line in paragraph)
    assert " ".join(paragraph) == OUTAGE_NOTE
    assert sum(line.startswith("Mail delivery from") for line in lines) == 1
    assert lines[len(paragraph) + 1] == "CRITICAL: root-disk on web-1."
    assert message["Content-Transfer-Encoding"] is None
    assert message.get_body(("plain",))["Content-Transfer-Encoding"] == "7bit"
    assert attachments_of(message)["app.log"].get_payload(decode=True) == b"a\nb\n"


def test_add_notice_keeps_list_lines_and_makes_control_characters_spaces():
    message = compose([make_event()])

    add_notice(message, "Held back:\n- root-disk (7)\x1b[31m\r\n- nginx\x00 (5)")

    lines = body_of(received(message)).splitlines()
    assert lines[:4] == ["Held back:", "- root-disk (7)", "- nginx  (5)", ""]


def test_add_notice_and_mark_queued_since_stack_without_repeating():
    message = compose([make_event()])

    add_notice(message, OUTAGE_NOTE)
    mark_queued_since(message, NOW - timedelta(hours=4), now=NOW)
    mark_queued_since(message, NOW - timedelta(hours=4), now=NOW)

    body = body_of(received(message))
    assert body.startswith("Late: queued since 2024-05-01 08:07 UTC, sent 4h late.")
    assert body.count("Late: queued") == 1
    assert body.count("Mail delivery from this host") == 1


def test_add_notice_refuses_a_message_without_a_text_body():
    message = EmailMessage()
    message.set_content("<p>hi</p>", subtype="html")

    with pytest.raises(ValueError, match="no plain-text body"):
        add_notice(message, "note")


# -- test message --------------------------------------------------------------


def test_test_message_says_host_version_config_and_time(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"hello\npassword=x\n")

    message = received(
        compose_test_message(
            MailSettings(),
            hostname="web-1.example.org",
            recipients=["ops@example.org"],
            version="0.1.0",
            config_path=Path("/etc/notifier/notifier.toml"),
            now=NOW,
            attach=log,
        )
    )

    assert message["Subject"] == "[notifier] test message from web-1.example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    lines = body_of(message).splitlines()
    assert "Host:     web-1.example.org" in lines
    assert "Version:  notifier 0.1.0" in lines
    assert "Config:   /etc/notifier/notifier.toml" in lines
    assert "Sent:     2024-05-01 12:07 UTC" in lines
    assert "1 secret was masked in app.log." in lines
    content = attachments_of(message)["app.log"].get_payload(decode=True)
    assert content == b"hello\npassword=[masked]\n"


def test_test_message_without_attachment_or_config():
    message = received(
        compose_test_message(
            MailSettings(),
            hostname="web-1",
            recipients=["ops@example.org"],
            version="0.1.0",
            config_path=None,
            now=NOW,
        )
    )

    assert attachments_of(message) == {}
    assert "Config:   (defaults)" in body_of(message).splitlines()


def test_composing_without_recipients_is_refused():
    with pytest.raises(ValueError, match="recipient"):
        compose([make_event()], recipients=[])


def test_event_timezone_is_shown_as_given():
    event = dataclasses.replace(
        make_event(), since=datetime(2024, 5, 1, 12, 2, tzinfo=UTC)
    )

    assert "Since:  2024-05-01 12:02 UTC (for 5m)" in body_of(
        received(compose([event]))
    )
