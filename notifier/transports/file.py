"""The ``file`` transport: each message becomes an ``.eml`` file in a folder.

It is the embedded default for trying notifier without a mail server, and
handy for debugging what would be sent. Files are named
``<UTC timestamp>-<random id>.eml``, written to a temporary name, flushed to
disk and renamed, so a reader never sees half a message. The folder is
created private (0700): alerts may carry log lines. Run as root (``notifier
test-send``, ``queue flush``), what it creates belongs to the owner of the
folder it is created in, as everything notifier creates (see
:mod:`notifier.atomicfile`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from notifier import hookimpl
from notifier.atomicfile import make_folder, write_atomic
from notifier.config import Config
from notifier.transport import SendOutcome, ServerUnavailable, TransportType

if TYPE_CHECKING:
    from email.message import EmailMessage

log = logging.getLogger(__name__)


class FileTransport:
    """Writes every message into ``directory`` as an ``.eml`` file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def describe(self) -> str:
        """Return ``file DIRECTORY``."""
        return f"file {self.directory}"

    @contextmanager
    def session(self) -> Iterator[FileSession]:
        """Make sure the folder exists (0700) and yield a session.

        :raises ServerUnavailable: when the folder cannot be created.
        """
        try:
            make_folder(self.directory)
        except OSError as exc:
            msg = f"file {self.directory}: cannot create the folder: {exc.strerror}"
            raise ServerUnavailable(msg) from exc
        yield FileSession(self.directory)


class FileSession:
    """Writes messages; every recipient counts as delivered once written."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> SendOutcome:
        """Write ``message`` as a new ``.eml`` file.

        :raises ServerUnavailable: when it cannot be written (disk full, no
            permission); the outbox keeps the message and retries.
        """
        import email.policy  # loaded by then: the message was read with it

        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = self.directory / f"{stamp}-{os.urandom(4).hex()}.eml"
        data = message.as_bytes(policy=email.policy.SMTP)
        try:
            write_atomic(path, data, mode=0o600)
        except OSError as exc:
            msg = f"file {self.directory}: cannot write {path.name}: {exc.strerror}"
            raise ServerUnavailable(msg) from exc
        log.debug("file %s: wrote %s (%d bytes)", self.directory, path.name, len(data))
        return SendOutcome(tuple(recipients), reply=f"written to {path}")


def create(config: Config) -> FileTransport:
    """Build the ``file`` transport from ``[file] directory``."""
    directory = config.file.directory or config.notifier.state_dir / "mail"
    return FileTransport(directory)


@hookimpl
def notifier_transports() -> list[TransportType]:
    """Provide the built-in ``file`` transport."""
    return [
        TransportType(
            name="file",
            create=create,
            summary="writes each message as an .eml file into [file] directory",
        )
    ]
