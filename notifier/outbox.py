"""The outbox: a durable on-disk queue of composed messages.

Layout under ``<state_dir>/outbox``::

    <id>.eml          the message, exactly as composed (never rewritten)
    <id>.json         its metadata: recipients still to reach, attempts,
                      next try, last error, when it was queued
    failed/<id>.eml   dead letters: refused for good, or too old,
    failed/<id>.json  with the reason for each recipient
    sent.log          Message-IDs delivered lately, one per line (bounded)
    .lock             held by whoever changes entries, never across network I/O

Every file is written to a temporary name, fsynced, renamed, and the folder
fsynced. A message is written before its metadata and deleted before it, so
a crash at any point leaves either the whole message (an ``.eml`` without
metadata is picked up as new) or nothing of it (metadata without a message
is a leftover of a delivery and removed). A crash between sending and
deleting may send a message twice; nothing loses one.

IDs are unique across the queue and ``failed/``: when some recipients of a
message are refused for good while others are still waiting, the dead
letter gets an ID of its own, the queued one's with ``-r1`` (``-r2``...)
added, so ``notifier queue retry`` and ``drop`` can name either.

A sender holds :meth:`Outbox.claim` on each message while it sends it: a
lock on that message alone, so a second sender (``queue flush`` beside the
daemon) skips it instead of sending it twice, while ``queue retry`` and
``drop`` wait only for the short :meth:`Outbox.lock`.

This module keeps the queue; :mod:`notifier.delivery` decides what to send
and when. It imports the ``email`` package only to read or write a message:
an idle daemon with an empty outbox never loads it (about 1.5 MiB).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from notifier.atomicfile import fsync_folder, make_folder, open_owned, write_atomic
from notifier.errors import DataError, UsageError

if TYPE_CHECKING:
    from email.message import EmailMessage

log = logging.getLogger(__name__)

SENT_LOG_KEEP: Final = 1000
"""Lines ``sent.log`` keeps; it is trimmed to this when it grows past twice."""
PART_MARK: Final = "-r"
"""Joins a queued message's ID and the number of a dead-lettered part of it."""


def _write_private(path: Path, data: bytes) -> None:
    """Write an outbox file readable by the daemon's user only: mail is private."""
    write_atomic(path, data, mode=0o600)


def recipients_of(message: EmailMessage) -> tuple[str, ...]:
    """Return the addresses in ``To``, ``Cc`` and ``Bcc``, each once."""
    import email.utils

    fields = [
        str(value) for key in ("To", "Cc", "Bcc") for value in message.get_all(key, [])
    ]
    seen: dict[str, None] = {}
    for _, address in email.utils.getaddresses(fields):
        if address:
            seen.setdefault(address, None)
    return tuple(seen)


@dataclass(frozen=True)
class Entry:
    """One queued message's metadata.

    :param id: the file name stem, sortable by creation time.
    :param created: when it was queued (seconds since the epoch).
    :param recipients: who still has to get it.
    :param attempts: how many delivery attempts it was part of; one the
        transport failed as a whole counts for every message it held back.
    :param next_try: not before this time (seconds since the epoch).
    :param last_error: the last failure, for people.
    :param subject: the Subject header, for ``notifier queue list``.
    :param message_id: the Message-ID header.
    :param retried_at: when ``queue retry`` last made it due again; its age
        for ``[mail] max_age`` counts from then.
    :param reasons: for a failed entry, recipient -> why it failed.
    :param refusals: how often the server refused this message for now
        (4xx); the step of its own backoff.
    :param delivered_to: the recipients who already have it.
    """

    id: str
    created: float
    recipients: tuple[str, ...]
    attempts: int = 0
    next_try: float = 0.0
    last_error: str = ""
    subject: str = ""
    message_id: str = ""
    retried_at: float | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    refusals: int = 0
    delivered_to: tuple[str, ...] = ()

    def age(self, now: float) -> float:
        """Return the seconds this entry has been waiting (since a retry)."""
        return now - (self.retried_at if self.retried_at is not None else self.created)

    def to_json(self) -> bytes:
        """Return the metadata as JSON bytes."""
        return json.dumps(dataclasses.asdict(self), indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Entry:
        """Parse metadata written by :meth:`to_json`.

        :raises ValueError: when it is not such metadata.
        """
        raw: object = json.loads(data)
        if not isinstance(raw, dict):
            msg = "metadata is not a JSON object"
            raise ValueError(msg)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in raw.items() if key in known}
        values["recipients"] = tuple(values.get("recipients", ()))
        values["delivered_to"] = tuple(values.get("delivered_to", ()))
        values["reasons"] = dict(values.get("reasons", {}))
        return cls(**values)


def part_id(entry_id: str, number: int) -> str:
    """Return the ID of the ``number``-th dead-lettered part of a message."""
    return f"{entry_id}{PART_MARK}{number}"


def _parse(data: bytes) -> EmailMessage:
    import email
    import email.policy

    return email.message_from_bytes(data, policy=email.policy.SMTP)


class Outbox:
    """The queue in ``folder`` (normally ``<state_dir>/outbox``).

    Methods that take ``now`` never read the clock themselves, so the sender
    and tests decide what time it is. Methods are safe against a crash at
    any point; against a concurrent deliverer, hold :meth:`lock`.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.failed_folder = folder / "failed"
        self.sent_log = folder / "sent.log"

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> Outbox:
        """Return the outbox of a state folder: ``<state_dir>/outbox``."""
        return cls(state_dir / "outbox")

    def _ensure(self) -> None:
        make_folder(self.folder)
        make_folder(self.failed_folder)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the outbox lock (between processes too) while changing entries;
        waits for the holder to finish.

        Hold it for file changes only, never across network I/O: ``queue
        retry`` and ``drop`` wait for it.
        """
        self._ensure()
        descriptor = open_owned(
            self.folder / ".lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND
        )
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    @contextlib.contextmanager
    def claim(self, entry_id: str) -> Iterator[Entry | None]:
        """Hold one queued message while sending it; yield its metadata as it
        is now, or ``None`` when there is nothing to send.

        ``None`` means the message is gone (sent or dropped meanwhile), or
        another process is sending it right now (its claim is held), or it
        cannot be read. The claim is a lock on the message file itself, so
        it ends with this process, even a killed one. Does not wait.
        """
        try:
            descriptor = os.open(self._eml(entry_id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            yield None
            return
        except OSError as exc:
            log.error("outbox: %s cannot be read (%s); left in place", entry_id, exc)
            yield None
            return
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.debug("outbox: %s is being sent by another process", entry_id)
                yield None
                return
            with self.lock():
                current = self.get(entry_id)
            yield current
        finally:
            os.close(descriptor)

    def put(
        self,
        message: EmailMessage,
        recipients: Sequence[str] | None = None,
        *,
        now: float | None = None,
    ) -> Entry:
        """Queue ``message``; it is on disk when this returns.

        :param recipients: the envelope recipients; by default those of the
            To, Cc and Bcc headers.
        :raises DataError: when there is nobody to send it to.
        :raises OSError: when it cannot be written (nothing is left behind).
        """
        created = time.time() if now is None else now
        targets = (
            tuple(recipients) if recipients is not None else recipients_of(message)
        )
        if not targets:
            msg = f"message {message.get('Subject', '')!r} has no recipients"
            raise DataError(msg)
        self._ensure()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(created))
        entry = Entry(
            id=f"{stamp}-{os.urandom(3).hex()}",
            created=created,
            recipients=targets,
            next_try=created,
            subject=str(message.get("Subject", "")),
            message_id=str(message.get("Message-ID", "")),
        )

        # The message first: an .eml without metadata is still delivered.
        import email.policy

        _write_private(self._eml(entry.id), message.as_bytes(policy=email.policy.SMTP))
        _write_private(self._meta(entry.id), entry.to_json())
        log.debug(
            "outbox: queued %s %r for %s", entry.id, entry.subject, ", ".join(targets)
        )
        return entry

    def _eml(self, entry_id: str, failed: bool = False) -> Path:
        return (self.failed_folder if failed else self.folder) / f"{entry_id}.eml"

    def _meta(self, entry_id: str, failed: bool = False) -> Path:
        return (self.failed_folder if failed else self.folder) / f"{entry_id}.json"

    def entries(self) -> list[Entry]:
        """Return every queued entry, oldest first.

        Repairs what a crash left: a message without metadata gets fresh
        metadata (recipients from its headers); metadata without a message
        is removed.
        """
        return self._scan(failed=False)

    def failed(self) -> list[Entry]:
        """Return every dead letter, oldest first."""
        return self._scan(failed=True)

    def _scan(self, *, failed: bool) -> list[Entry]:
        folder = self.failed_folder if failed else self.folder
        if not folder.is_dir():
            return []
        found: list[Entry] = []
        names = {path.name for path in folder.iterdir()}
        for name in sorted(names):
            if name.startswith("."):
                continue
            stem, _, suffix = name.rpartition(".")
            if suffix == "json" and f"{stem}.eml" not in names:
                # The message was delivered and deleted; its metadata went
                # second and a crash came between.
                (folder / name).unlink(missing_ok=True)
            elif suffix == "eml":
                entry = self._load_entry(stem, failed, has_meta=f"{stem}.json" in names)
                if entry is not None:
                    found.append(entry)
        return sorted(found, key=lambda entry: (entry.created, entry.id))

    def _load_entry(
        self, entry_id: str, failed: bool, *, has_meta: bool
    ) -> Entry | None:
        if has_meta:
            try:
                return Entry.from_json(self._meta(entry_id, failed).read_bytes())
            except (OSError, ValueError, TypeError) as exc:
                log.warning(
                    "outbox: metadata of %s unreadable (%s); rebuilt from the message",
                    entry_id,
                    exc,
                )
        try:
            message = self.message(entry_id, failed=failed)
            created = self._eml(entry_id, failed).stat().st_mtime
        except (OSError, DataError) as exc:
            log.error("outbox: %s cannot be read (%s); left in place", entry_id, exc)
            return None
        entry = Entry(
            id=entry_id,
            created=created,
            recipients=recipients_of(message),
            next_try=created,
            subject=str(message.get("Subject", "")),
            message_id=str(message.get("Message-ID", "")),
        )
        try:
            # Never over metadata written meanwhile (a `put` or a `retry`
            # between its two steps): that one holds the true recipients.
            # Damaged metadata found above is replaced.
            write_atomic(
                self._meta(entry_id, failed),
                entry.to_json(),
                0o600,
                exclusive=not has_meta,
            )
        except FileExistsError:
            with contextlib.suppress(OSError, ValueError, TypeError):
                return Entry.from_json(self._meta(entry_id, failed).read_bytes())
        return entry

    def get(self, entry_id: str) -> Entry | None:
        """Return the queued entry ``entry_id`` as it is on disk now, or
        ``None`` when its message is gone (hold :meth:`lock` for a decision
        based on it)."""
        if not self._eml(entry_id).exists():
            return None
        return self._load_entry(
            entry_id, failed=False, has_meta=self._meta(entry_id).exists()
        )

    def message(self, entry_id: str, *, failed: bool = False) -> EmailMessage:
        """Return the queued message itself.

        :raises DataError: when it cannot be read or parsed.
        """
        path = self._eml(entry_id, failed)
        try:
            return _parse(path.read_bytes())
        except OSError as exc:
            msg = f"outbox: cannot read {path}: {exc}"
            raise DataError(msg) from exc

    def update(self, entry: Entry) -> None:
        """Write ``entry``'s new metadata (after an attempt)."""
        if self._eml(entry.id).exists():
            _write_private(self._meta(entry.id), entry.to_json())

    def remove(self, entry_id: str, *, failed: bool = False) -> None:
        """Delete an entry: the message first, then its metadata.

        Not flushed to disk: a deletion lost in a crash means the message is
        sent again, never lost, and skipping the flush keeps a large batch
        fast.
        """
        self._eml(entry_id, failed).unlink(missing_ok=True)
        self._meta(entry_id, failed).unlink(missing_ok=True)

    def record_sent(self, entry: Entry, now: float) -> None:
        """Append ``entry``'s Message-ID to ``sent.log``, trimming it when long.

        Hold :meth:`lock`: trimming rewrites the file.
        """
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        line = f"{stamp} {entry.message_id or entry.id}\n"
        self._ensure()
        descriptor = open_owned(self.sent_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            os.write(descriptor, line.encode("utf-8"))
        finally:
            os.close(descriptor)
        lines = self.sent_log.read_text(encoding="utf-8").splitlines(keepends=True)
        if len(lines) > 2 * SENT_LOG_KEEP:
            _write_private(self.sent_log, "".join(lines[-SENT_LOG_KEEP:]).encode())

    def sent(self) -> list[str]:
        """Return the lines of ``sent.log``, oldest first."""
        if not self.sent_log.exists():
            return []
        return self.sent_log.read_text(encoding="utf-8").splitlines()

    def dead_letter(
        self, entry: Entry, recipients: Sequence[str], reason: str, now: float
    ) -> Entry | None:
        """Move ``recipients`` of ``entry`` to ``failed/`` with ``reason``.

        When nobody is left, the whole message moves and keeps its ID. When
        others stay queued, the dead letter is a copy with an ID of its own
        (see :func:`part_id`), so no ID names two messages. The dead letter
        is written before the queued entry changes, so a crash leaves a copy
        too many, never none. Hold :meth:`lock`.

        :returns: the entry still queued, or ``None`` when nobody is left.
        :raises OSError: when the files cannot be written.
        """
        self._ensure()
        remaining = tuple(r for r in entry.recipients if r not in recipients)
        if remaining:
            dead_id = self._free_part_id(entry.id)
            dead = dataclasses.replace(
                entry,
                id=dead_id,
                recipients=tuple(dict.fromkeys(recipients)),
                last_error=reason,
                next_try=now,
                reasons=dict.fromkeys(recipients, reason),
            )
            _write_private(
                self._eml(dead_id, failed=True), self._eml(entry.id).read_bytes()
            )
            _write_private(self._meta(dead_id, failed=True), dead.to_json())
            still = dataclasses.replace(entry, recipients=remaining)
            self.update(still)
            return still

        # The whole message: metadata first, then the message renamed (no
        # copy, so even one we cannot read moves), then the queued metadata.
        # A crash after the first step leaves failed metadata without a
        # message, which is removed as a leftover: the message stays queued.
        failed_meta = self._meta(entry.id, failed=True)
        previous = None
        if failed_meta.exists():
            # A crash came after this step once already.
            with contextlib.suppress(OSError, ValueError, TypeError):
                previous = Entry.from_json(failed_meta.read_bytes())
        reasons = dict(previous.reasons) if previous else {}
        reasons.update(dict.fromkeys(recipients, reason))
        kept = previous.recipients if previous else ()
        dead = dataclasses.replace(
            entry,
            recipients=tuple(dict.fromkeys((*kept, *recipients))),
            last_error=reason,
            next_try=now,
            reasons=reasons,
        )
        _write_private(failed_meta, dead.to_json())
        self._eml(entry.id).replace(self._eml(entry.id, failed=True))
        fsync_folder(self.failed_folder)
        self._meta(entry.id).unlink(missing_ok=True)
        return None

    def _free_part_id(self, entry_id: str) -> str:
        """Return the first ``<entry_id>-rN`` no queued or failed file uses."""
        taken = {path.name.partition(".")[0] for path in self._all_files()}
        number = 1
        while part_id(entry_id, number) in taken:
            number += 1
        return part_id(entry_id, number)

    def _all_files(self) -> list[Path]:
        return [
            path
            for folder in (self.folder, self.failed_folder)
            if folder.is_dir()
            for path in folder.iterdir()
        ]

    def find(self, entry_id: str) -> tuple[Entry, bool]:
        """Return the entry called ``entry_id`` (or a unique prefix of it) and
        whether it is a dead letter.

        :raises UsageError: when no entry, or more than one, matches; the
            message lists the known ids.
        """
        candidates = [(entry, False) for entry in self.entries()]
        candidates += [(entry, True) for entry in self.failed()]
        exact = [c for c in candidates if c[0].id == entry_id]
        matches = exact or [c for c in candidates if c[0].id.startswith(entry_id)]
        if len(matches) == 1:
            return matches[0]
        known = (
            ", ".join(entry.id for entry, _ in candidates)
            or "none (the outbox is empty)"
        )
        if matches:
            several = ", ".join(entry.id for entry, _ in matches)
            msg = f"{entry_id!r} matches more than one message: {several}"
        else:
            msg = f"no message {entry_id!r} in the outbox; known: {known}"
        raise UsageError(msg)

    def retry(self, entry_id: str, now: float) -> Entry:
        """Make one message due now; a dead letter goes back in the queue,
        under its own ID, for the recipients it failed for. Hold :meth:`lock`.

        :raises UsageError: when there is no such entry.
        """
        entry, failed = self.find(entry_id)
        again = dataclasses.replace(
            entry, next_try=now, retried_at=now, reasons={}, refusals=0
        )
        if not failed:
            self.update(again)
            return again
        if self._eml(entry.id).exists():
            # Left by a crash in the middle of a dead letter: the same
            # message is queued under this ID too; add the failed recipients.
            queued = self.get(entry.id) or again
            again = dataclasses.replace(
                queued,
                recipients=tuple(
                    dict.fromkeys((*queued.recipients, *entry.recipients))
                ),
                next_try=now,
                retried_at=now,
            )
        else:
            _write_private(
                self._eml(entry.id), self._eml(entry.id, failed=True).read_bytes()
            )
        _write_private(self._meta(entry.id), again.to_json())
        self.remove(entry.id, failed=True)
        return again

    def drop(self, entry_id: str) -> tuple[Entry, bool]:
        """Delete one message (queued or dead letter) and return what it was.

        :raises UsageError: when there is no such entry.
        """
        entry, failed = self.find(entry_id)
        self.remove(entry.id, failed=failed)
        return entry, failed
