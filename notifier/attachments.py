"""The files that go with an email: their tails, types, masking, compression.

This module owns turning a path into an attachment (the tail of the file,
at most ``[mail] attach_max_bytes``, cut at a line boundary, secrets masked,
gzip-compressed above ``[mail] compress_above``), keeping the files of one
message under a total, and making an attachment smaller when the mail
server's size limit demands it. It reads files and never
raises for one: what cannot be attached becomes a sentence for the body.
:mod:`notifier.compose` places the results in a message.
"""

from __future__ import annotations

import gzip
import io
import mimetypes
import os
import re
import stat
import unicodedata
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Final

from notifier.redact import Redactor
from notifier.units import format_size

_TEXT_SAMPLE: Final = 8192
_MIN_KEPT_BYTES: Final = 2048
_LEFT_OUT_NAMED: Final = 10
_ANSI_ESCAPE: Final = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
_GZIP_LIMIT: Final = 256 * 1024 * 1024
_COMPRESSED_TYPES: Final = {
    "gzip": ("application", "gzip"),
    "bzip2": ("application", "x-bzip2"),
    "xz": ("application", "x-xz"),
    "br": ("application", "x-brotli"),
    "compress": ("application", "x-compress"),
}
_TEXT_SUBTYPES: Final = ("json", "xml", "x-sh", "javascript", "yaml", "x-yaml", "toml")


@dataclass(frozen=True)
class Attachment:
    """A file prepared for a message.

    :param filename: the name the recipient sees (``.gz`` added if
        compressed).
    :param content: the bytes to attach.
    :param maintype: MIME main type.
    :param subtype: MIME subtype.
    :param charset: ``utf-8`` for text that is valid UTF-8, else ``None``.
    """

    filename: str
    content: bytes
    maintype: str
    subtype: str
    charset: str | None


@dataclass(frozen=True)
class Prepared:
    """What became of the files meant for one message.

    :param attachments: the files that go with it, in the order given.
    :param notes: one sentence per file for the body: what was attached
        (``syslog.gz: last 511.9KiB of 3.2GiB, gzip-compressed``) or why not;
        the files left out for the message's total share one sentence.
    :param secrets: per attachment that had secrets masked, its file name
        and the fingerprints of the different values masked in it.
    """

    attachments: tuple[Attachment, ...]
    notes: tuple[str, ...]
    secrets: tuple[tuple[str, frozenset[str]], ...]


class _NotAttachable(Exception):
    """A file that cannot go with the message; the text says why."""


class _OverTotal(_NotAttachable):
    """A file that would take the message past its total for attachments."""


def prepare_attachments(
    paths: Iterable[Path],
    *,
    max_bytes: int,
    compress_above: int,
    redactor: Redactor,
    total_max_bytes: int | None = None,
) -> Prepared:
    """Read the tail of each file and prepare it to be attached.

    Each path is read once even when given twice. A text file larger than
    ``max_bytes`` gives its last lines that fit; a binary file that large is
    not attached (part of one is of no use). Text is masked with ``redactor``
    before anything else happens to it; binary content is attached as it is.
    A file that is missing, unreadable or not a regular file gives a note and
    no attachment; no exception leaves this function.

    With ``total_max_bytes``, files are taken in the order given until their
    content reaches that total: a text file that would pass it keeps a
    shorter tail, and the files after the total is reached are not read at
    all; one note names them.

    :param paths: files to attach, the most important first.
    :param max_bytes: ``[mail] attach_max_bytes``; 0 attaches nothing.
    :param compress_above: ``[mail] compress_above``.
    :param redactor: masks secrets in the text.
    :param total_max_bytes: the most attachment bytes for the whole message
        (``None``: no total).
    :returns: the attachments, the notes for the body, the secrets masked.
    """
    attachments: list[Attachment] = []
    notes: list[str] = []
    secrets: list[tuple[str, frozenset[str]]] = []
    left_out: list[str] = []
    remaining = total_max_bytes
    for path in unique_paths(paths):
        shown = printable(str(path))
        limit = max_bytes if remaining is None else min(max_bytes, remaining)
        try:
            if attachments and limit < _MIN_KEPT_BYTES < max_bytes:
                raise _OverTotal(shown)
            attachment, note, found = _prepare_one(
                path, limit, compress_above, redactor, for_total=limit < max_bytes
            )
        except _OverTotal:
            left_out.append(shown)
            continue
        except _NotAttachable as exc:
            notes.append(f"{shown}: not attached, {exc}")
            continue
        attachments.append(attachment)
        notes.append(f"{attachment.filename}: {note} ({shown})")
        if found:
            secrets.append((attachment.filename, found))
        if remaining is not None:
            remaining -= len(attachment.content)

    if left_out and total_max_bytes is not None:
        notes.append(_left_out_note(left_out, attachments, total_max_bytes))
    return Prepared(tuple(attachments), tuple(notes), tuple(secrets))


def _left_out_note(
    left_out: list[str], attachments: list[Attachment], total: int
) -> str:
    """Return the sentence naming the files left out for the message's total."""
    carried = sum(len(attachment.content) for attachment in attachments)
    names = ", ".join(left_out[:_LEFT_OUT_NAMED])
    if len(left_out) > _LEFT_OUT_NAMED:
        names += f" and {len(left_out) - _LEFT_OUT_NAMED} more"
    files = "file" if len(left_out) == 1 else "files"
    return (
        f"{len(left_out)} {files} not attached, as the message already carries "
        f"{format_size(carried)} of files and takes at most {format_size(total)}: "
        f"{names}"
    )


def unique_paths(paths: Iterable[Path]) -> list[Path]:
    """Return ``paths`` without repeats (compared as absolute, normalised)."""
    seen: set[str] = set()
    unique: list[Path] = []
    for path in paths:
        key = os.path.normpath(Path(path).absolute())
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def printable(text: str) -> str:
    """Return ``text`` fit for a body line: no control or format characters.

    ANSI colour sequences are removed, tabs kept, other control characters
    and line separators become spaces, bytes that were not UTF-8 become
    U+FFFD.
    """
    kept: list[str] = []
    for char in _ANSI_ESCAPE.sub("", text):
        if char == "\t" or char.isprintable():
            kept.append(char)
        elif "\ud800" <= char <= "\udfff":
            kept.append("\ufffd")
        elif char.isspace() or unicodedata.category(char) == "Cc":
            kept.append(" ")
    return "".join(kept).rstrip()


def tail_lines(data: bytes, limit: int) -> bytes:
    """Return the end of ``data``, at most ``limit`` bytes, from a line start.

    When the last ``limit`` bytes hold no line start (one very long line), the
    last ``limit`` bytes are returned as they are.
    """
    if len(data) <= limit:
        return data
    chunk = data[len(data) - limit :]
    if data[len(data) - limit - 1 : len(data) - limit] == b"\n":
        return chunk
    newline = chunk.find(b"\n")
    if 0 <= newline < len(chunk) - 1:
        return chunk[newline + 1 :]
    return chunk


def shrink_content(
    content: bytes, content_type: str, target: int
) -> tuple[bytes, int] | None:
    """Return a smaller version of an attachment's content, or ``None``.

    Text keeps its last lines; gzip data is decompressed, cut the same way
    and compressed again. Other content cannot be cut usefully.

    :param content: the attachment's decoded bytes.
    :param content_type: its MIME type (``text/plain``, ``application/gzip``).
    :param target: the most bytes the result may have.
    :returns: the new content and the size of the text it holds, or ``None``
        when it cannot be cut to ``target``.
    """
    if content_type.startswith("text/"):
        cut = tail_lines(content, target)
        return (cut, len(cut)) if len(cut) <= target else None
    if content_type != "application/gzip":
        return None

    try:
        plain = _gunzip(content)
    except (OSError, EOFError, zlib.error):
        return None
    keep = int(target * len(plain) / max(len(content), 1) * 0.9)
    for _ in range(6):
        cut = tail_lines(plain, max(keep, 1))
        packed = gzip.compress(cut, compresslevel=6, mtime=0)
        if len(packed) <= target:
            return packed, len(cut)
        keep = int(keep * target / len(packed) * 0.9)
    return None


def _prepare_one(
    path: Path,
    max_bytes: int,
    compress_above: int,
    redactor: Redactor,
    *,
    for_total: bool = False,
) -> tuple[Attachment, str, frozenset[str]]:
    """Return one attachment, the note describing it, the secrets masked.

    ``for_total`` says that ``max_bytes`` is what is left of the message's
    total rather than ``attach_max_bytes``.

    :raises _OverTotal: for a binary file larger than what is left.
    """
    if max_bytes <= 0:
        msg = "[mail] attach_max_bytes is 0"
        raise _NotAttachable(msg)
    data, size = _read_tail(path, max_bytes)
    name = printable(path.name).replace("\t", " ").strip() or "attachment"
    maintype, subtype, is_text = _content_type(name, data)
    cut = len(data) < size

    # Limitation: binary content (a core file, a compressed log) is attached
    # unmasked; secrets inside compressed or binary data cannot be found by a
    # text pattern, so such files go out only when a user names them.
    if not is_text:
        if cut and for_total:
            raise _OverTotal(str(path))
        if cut:
            msg = (
                f"{format_size(size)} of binary data is more than "
                f"attach_max_bytes ({format_size(max_bytes)})"
            )
            raise _NotAttachable(msg)
        attachment = Attachment(name, data, maintype, subtype, None)
        return attachment, format_size(len(data)), frozenset()

    # Masking may lengthen the text, so the cap is applied once more after it.
    if cut:
        data = tail_lines(data, max_bytes)
    data, masked = redactor.redact_bytes_distinct(data)
    data = tail_lines(data, max_bytes)
    charset = "utf-8" if _is_utf8(data) else None
    note = (
        f"last {format_size(len(data))} of {format_size(size)}"
        if cut
        else (format_size(len(data)))
    )
    if cut and for_total:
        note += ", cut to stay within the message's total"
    if len(data) > compress_above:
        packed = gzip.compress(data, compresslevel=6, mtime=0)
        attachment = Attachment(f"{name}.gz", packed, "application", "gzip", None)
        return attachment, f"{note}, gzip-compressed", masked
    return Attachment(name, data, maintype, subtype, charset), note, masked


def _read_tail(path: Path, limit: int) -> tuple[bytes, int]:
    """Return up to ``limit + 1`` last bytes of a regular file and its size.

    The extra byte tells :func:`tail_lines` whether the tail starts a line.
    Opening does not block on a FIFO and refuses anything but a regular file.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        msg = "the file does not exist"
        raise _NotAttachable(msg) from None
    except PermissionError:
        msg = "permission to read it was denied"
        raise _NotAttachable(msg) from None
    except OSError as exc:
        msg = f"it cannot be opened: {exc.strerror}"
        raise _NotAttachable(msg) from None

    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            msg = "it is not a regular file"
            raise _NotAttachable(msg)
        start = max(info.st_size - limit - 1, 0)
        os.lseek(descriptor, start, os.SEEK_SET)
        data = _read_exactly(descriptor, limit + 1 if start else limit)
    except OSError as exc:
        msg = f"it cannot be read: {exc.strerror}"
        raise _NotAttachable(msg) from None
    finally:
        os.close(descriptor)
    return data, max(info.st_size, start + len(data))


def _read_exactly(descriptor: int, size: int) -> bytes:
    """Read up to ``size`` bytes, fewer only at the end of the file."""
    pieces: list[bytes] = []
    remaining = size
    while remaining > 0:
        piece = os.read(descriptor, min(remaining, 1024 * 1024))
        if not piece:
            break
        pieces.append(piece)
        remaining -= len(piece)
    return b"".join(pieces)


def _content_type(name: str, data: bytes) -> tuple[str, str, bool]:
    """Return the MIME type for ``name`` and whether the content is text."""
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        maintype, subtype = _COMPRESSED_TYPES.get(
            encoding, ("application", "octet-stream")
        )
        return maintype, subtype, False
    looks_like_text = b"\x00" not in data[:_TEXT_SAMPLE]
    if guessed is not None:
        maintype, subtype = guessed.split("/", 1)
        textual = maintype == "text" or subtype in _TEXT_SUBTYPES
        textual = textual or subtype.endswith(("+json", "+xml"))
        return maintype, subtype, textual and looks_like_text
    if looks_like_text:
        return "text", "plain", True
    return "application", "octet-stream", False


def _is_utf8(data: bytes) -> bool:
    """Return whether ``data`` is valid UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _gunzip(content: bytes) -> bytes:
    """Decompress gzip data, refusing more than 256MiB of output."""
    with gzip.GzipFile(fileobj=io.BytesIO(content)) as unpacked:
        plain = unpacked.read(_GZIP_LIMIT + 1)
    if len(plain) > _GZIP_LIMIT:
        msg = "decompresses to more than 256MiB"
        raise OSError(msg)
    return plain


def shrink_largest_attachment(
    message: EmailMessage, excess: int
) -> tuple[EmailMessage, str, str] | None:
    """Cut the largest attachment of ``message`` by about ``excess`` bytes.

    A text or gzip attachment keeps its last lines; anything else, or a
    tail that would be under 2KiB, is removed from the message.

    :param message: the message to change in place.
    :param excess: how many bytes of the serialised message must go.
    :returns: the attachment's part (changed in place, or no longer in the
        message), its file name, and what became of it (``cut to its last
        1.2MiB``, ``removed (5MiB)``); ``None`` when there is no attachment.
    """
    part = _largest_attachment(message)
    if part is None:
        return None
    name = printable(part.get_filename() or "attachment")
    return part, name, _shrink_part(message, part, excess)


def _largest_attachment(message: EmailMessage) -> EmailMessage | None:
    """Return the attachment taking the most bytes, or ``None``."""
    parts = [
        part for part in message.iter_attachments() if isinstance(part, EmailMessage)
    ]
    return max(parts, key=lambda part: len(str(part.get_payload())), default=None)


def _shrink_part(message: EmailMessage, part: EmailMessage, excess: int) -> str:
    """Cut ``part`` by about ``excess`` encoded bytes, or remove it.

    :returns: what became of it, for the body's note.
    """
    content = part.get_payload(decode=True)
    raw = content if isinstance(content, bytes) else b""

    # Base64 turns 3 bytes into 4 and adds a line break every 76 characters.
    target = len(raw) - (excess * 3 // 4) - 512
    if target >= _MIN_KEPT_BYTES:
        shrunk = shrink_content(raw, part.get_content_type(), target)
        if shrunk is not None:
            content, kept = shrunk
            part.set_content(
                content,
                maintype=part.get_content_maintype(),
                subtype=part.get_content_subtype(),
                disposition="attachment",
                filename=part.get_filename(),
                params=_charset_params(part),
            )
            return f"cut to its last {format_size(kept)}"

    payload = message.get_payload()
    if isinstance(payload, list):
        payload[:] = [item for item in payload if item is not part]
    return f"removed ({format_size(len(raw))})"


def _charset_params(part: EmailMessage) -> dict[str, str] | None:
    """Return the ``charset`` parameter of ``part`` to carry over, if any."""
    charset = part.get_content_charset()
    return {"charset": charset} if charset else None
