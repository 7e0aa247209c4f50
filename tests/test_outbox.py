"""The outbox on a real disk: what is written, what a crash leaves, dead letters."""

from __future__ import annotations

import email.policy
import json
from email.message import EmailMessage

import pytest

from notifier.errors import DataError, UsageError
from notifier.outbox import SENT_LOG_KEEP, Entry, Outbox, recipients_of

T0 = 1_800_000_000.0


def make_message(
    subject: str = "disk full", to: str = "ops@example.test"
) -> EmailMessage:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "notifier@web-1.example.test"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@web-1.example.test>"
    message.set_content(f"{subject}\n")
    return message


@pytest.fixture
def outbox(tmp_path):
    return Outbox.in_state_dir(tmp_path)


def test_put_writes_message_and_metadata_before_returning(outbox):
    entry = outbox.put(make_message(), now=T0)

    files = sorted(path.name for path in outbox.folder.iterdir() if path.is_file())
    assert files == [f"{entry.id}.eml", f"{entry.id}.json"]
    meta = json.loads((outbox.folder / f"{entry.id}.json").read_text())
    assert meta["recipients"] == ["ops@example.test"]
    assert meta["attempts"] == 0
    assert meta["next_try"] == T0
    assert outbox.message(entry.id)["Subject"] == "disk full"
    assert (outbox.folder / f"{entry.id}.eml").stat().st_mode & 0o077 == 0


def test_recipients_come_from_to_cc_and_bcc_once_each():
    message = make_message(to="A <a@example.test>, b@example.test")
    message["Cc"] = "b@example.test"
    message["Bcc"] = "c@example.test"

    assert recipients_of(message) == (
        "a@example.test",
        "b@example.test",
        "c@example.test",
    )


def test_a_message_without_recipients_is_refused(outbox):
    message = make_message()
    del message["To"]

    with pytest.raises(DataError):
        outbox.put(message, now=T0)


def test_message_without_metadata_after_a_crash_is_still_delivered(outbox):
    entry = outbox.put(make_message(to="x@example.test"), now=T0)
    (outbox.folder / f"{entry.id}.json").unlink()  # the crash came between the two

    [found] = outbox.entries()

    assert found.id == entry.id
    assert found.recipients == ("x@example.test",)
    assert (outbox.folder / f"{entry.id}.json").exists()


def test_metadata_without_message_is_a_leftover_and_goes(outbox):
    entry = outbox.put(make_message(), now=T0)
    (outbox.folder / f"{entry.id}.eml").unlink()  # deleted first on delivery

    assert outbox.entries() == []
    assert not (outbox.folder / f"{entry.id}.json").exists()


def test_half_written_temporary_files_are_ignored(outbox):
    outbox.put(make_message(), now=T0)
    (outbox.folder / ".x.eml.1234.tmp").write_bytes(b"Subject: half")

    assert [entry.subject for entry in outbox.entries()] == ["disk full"]


def test_entries_come_oldest_first(outbox):
    outbox.put(make_message("second"), now=T0 + 5)
    outbox.put(make_message("first"), now=T0)

    assert [entry.subject for entry in outbox.entries()] == ["first", "second"]


def test_dead_letter_of_one_recipient_keeps_the_others_queued(outbox):
    entry = outbox.put(make_message(to="a@example.test, b@example.test"), now=T0)

    still = outbox.dead_letter(entry, ["b@example.test"], "550 no such user", T0)

    assert still is not None
    assert still.recipients == ("a@example.test",)
    [queued] = outbox.entries()
    assert queued.recipients == ("a@example.test",)
    [dead] = outbox.failed()
    assert dead.recipients == ("b@example.test",)
    assert dead.reasons == {"b@example.test": "550 no such user"}
    assert outbox.message(dead.id, failed=True)["Subject"] == "disk full"
    # An ID of its own: `queue retry ID` and `drop ID` name one message.
    assert dead.id == f"{entry.id}-r1"
    assert outbox.find(entry.id) == (queued, False)
    assert outbox.find(dead.id) == (dead, True)


def test_a_second_dead_lettered_part_gets_the_next_number(outbox):
    entry = outbox.put(
        make_message(to="a@example.test, b@example.test, c@example.test"), now=T0
    )

    still = outbox.dead_letter(entry, ["b@example.test"], "550 no", T0)
    assert still is not None
    outbox.dead_letter(still, ["c@example.test"], "550 no", T0 + 1)
    outbox.dead_letter(outbox.entries()[0], ["a@example.test"], "too old", T0 + 2)

    assert outbox.entries() == []
    assert sorted((dead.id, dead.recipients) for dead in outbox.failed()) == [
        (entry.id, ("a@example.test",)),
        (f"{entry.id}-r1", ("b@example.test",)),
        (f"{entry.id}-r2", ("c@example.test",)),
    ]


def test_dead_letter_of_everyone_empties_the_queue(outbox):
    entry = outbox.put(make_message(), now=T0)

    assert outbox.dead_letter(entry, entry.recipients, "552 too big", T0) is None

    assert outbox.entries() == []
    assert [dead.last_error for dead in outbox.failed()] == ["552 too big"]


def test_retry_brings_a_dead_letter_back_due_now(outbox):
    entry = outbox.put(make_message(), now=T0)
    outbox.dead_letter(entry, entry.recipients, "552 too big", T0)

    again = outbox.retry(entry.id[:12], now=T0 + 100)

    assert outbox.failed() == []
    [queued] = outbox.entries()
    assert queued.id == entry.id
    assert queued.next_try == T0 + 100
    assert again.age(T0 + 100) == 0


def test_find_unknown_id_names_the_known_ones(outbox):
    entry = outbox.put(make_message(), now=T0)

    with pytest.raises(UsageError) as caught:
        outbox.find("nope")

    assert entry.id in str(caught.value)
    assert caught.value.exit_code == 64


def test_drop_removes_one_message(outbox):
    keep = outbox.put(make_message("keep"), now=T0)
    gone = outbox.put(make_message("gone"), now=T0 + 1)

    dropped, failed = outbox.drop(gone.id)

    assert (dropped.subject, failed) == ("gone", False)
    assert [entry.id for entry in outbox.entries()] == [keep.id]


def test_sent_log_stays_bounded(outbox):
    entry = Entry(
        id="x", created=T0, recipients=("a@example.test",), message_id="<m@x>"
    )
    outbox.put(make_message(), now=T0)

    for _ in range(2 * SENT_LOG_KEEP + 1):
        outbox.record_sent(entry, T0)

    assert len(outbox.sent()) == SENT_LOG_KEEP
    assert outbox.sent()[-1].endswith(" <m@x>")


def test_lock_excludes_another_process(outbox, tmp_path):
    import subprocess
    import sys

    script = (
        "import fcntl, sys\n"
        "handle = open(sys.argv[1], 'a')\n"
        "try:\n"
        "    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    print('locked')\n"
        "else:\n"
        "    print('free')\n"
    )
    with outbox.lock():
        held = subprocess.run(
            [sys.executable, "-c", script, str(outbox.folder / ".lock")],
            capture_output=True,
            text=True,
            check=True,
        )
    released = subprocess.run(
        [sys.executable, "-c", script, str(outbox.folder / ".lock")],
        capture_output=True,
        text=True,
        check=True,
    )

    assert (held.stdout.strip(), released.stdout.strip()) == ("locked", "free")


def test_a_claimed_message_is_skipped_by_a_second_sender(outbox):
    entry = outbox.put(make_message(), now=T0)

    with outbox.claim(entry.id) as first, outbox.claim(entry.id) as second:
        assert first == entry
        assert second is None
    with outbox.claim(entry.id) as again:
        assert again == entry


def test_a_claim_sees_what_changed_and_what_went(outbox):
    entry = outbox.put(make_message(), now=T0)
    outbox.retry(entry.id, now=T0 + 60)

    with outbox.claim(entry.id) as current:
        assert current is not None
        assert current.retried_at == T0 + 60
    outbox.drop(entry.id)
    with outbox.claim(entry.id) as gone:
        assert gone is None


def test_outbox_folders_are_private(outbox):
    outbox.put(make_message(), now=T0)

    assert outbox.folder.stat().st_mode & 0o777 == 0o700
    assert outbox.failed_folder.stat().st_mode & 0o777 == 0o700
