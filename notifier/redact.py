"""Masking secrets in log text before it leaves the host.

This module owns the secret shapes the tool recognises by itself (passwords,
``Authorization`` and ``Cookie`` headers, bearer tokens, API keys and other
``key=value`` secrets, passwords in URLs) and the user's own ``[mail] redact``
patterns. They are joined into one regular expression, so text is scanned
once; large data is first searched for the few words every built-in shape
contains, and only the lines holding one get the full scan.

Command lines (the top processes a cpu or memory check reports) carry
secrets as options: ``--password hunter2``, ``--api-key K`` and
``keytool -storepass x`` mask the word after the option, unless the option
names where a secret is (``--password-file``, ``--password-stdin``).
``-pSECRET`` is masked only after a word naming a MySQL or MariaDB program
(``mysql``, ``mysqldump``, ``mariadb-dump``, ``mariabackup``): those take a
password glued to ``-p``, where other programs mean a port, a path or a
profile. A passphrase is several words: after ``passphrase:`` the rest of
the line, or up to a quote, is masked. Masking text twice changes nothing.

A user pattern masks its whole match, or only its first group when it has
groups: ``secret_id=(\\w+)`` keeps ``secret_id=`` and masks the word after it.
A pattern with named groups, numbered back-references or global inline flags
(``(?i)...``) cannot join the combined expression and is scanned on its own.
Masking works within one line: large data is masked in line-aligned chunks,
so a pattern that spans lines may miss across a seam.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from notifier.hashing import short_hash

MASK: Final = "[masked]"
"""What replaces a secret."""

_CHUNK_BYTES: Final = 1024 * 1024

# Words that name a secret when they end a key (``DB_PASSWORD``, ``apiKey``,
# ``client_secret``, ``secret_key``); ``passed`` or ``tokenizer`` are not keys
# of secrets.
_KEYWORDS: Final = (
    r"passwd|password|passphrase|pass|pwd|api[_-]?key|token|secret"
    r"|access[_-]?key|private[_-]?key|credentials?"
)
_KEY: Final = (
    r"(?<![A-Za-z0-9_.\-])(?ai:[A-Za-z0-9_.\-]*?"
    rf"(?:(?P<phrase>pass[ _\-]?phrase)|{_KEYWORDS})(?:[_\-][A-Za-z0-9]+)*)"
    r"(?![A-Za-z0-9])"
)

# A value in double quotes, single quotes, or double quotes escaped inside a
# JSON string; the groups named v... hold the secret itself.
_QUOTED: Final = (
    r"\"(?P<v0>(?:[^\"\\\r\n]|\\.)*)\""
    r"|'(?P<v1>[^'\r\n]*)'"
    r"|\\\"(?P<v2>(?:[^\"\\\r\n]|\\[^\"\r\n])*)\\\""
)
_SEPARATOR: Final = r"\\?[\"']?[ \t]*[:=][ \t]*"
# Not a secret: a value already masked (masking twice changes nothing).
_NOT_MASKED: Final = r"(?!\[masked\])"
# An option such as --password-file names where a secret is, not the secret.
_WHERE_NOT_WHAT: Final = "".join(
    rf"(?<![_\-]{word})"
    for word in ("file", "fd", "stdin", "env", "path", "prompt", "cmd", "command")
)
_OPTION: Final = (
    r"(?<![A-Za-z0-9_.\-])--?"
    rf"(?ai:[A-Za-z0-9_\-]*?(?:{_KEYWORDS})(?:[_\-][A-Za-z0-9]+)*)"
    rf"{_WHERE_NOT_WHAT}"
)

# Each shape keeps everything but its v... groups, so a line stays readable.
_BUILTIN_SHAPES: Final = (
    # Authorization: Basic dXNlcjpwYXNz   /   'Cookie': 'session=x'
    r"(?ai:\b(?:proxy-)?authorization|\b(?:set-)?cookie)"
    rf"{_SEPARATOR}(?:{_QUOTED}|(?P<v3>[^\s\"'\\][^\r\n]*))",
    # Bearer eyJhbGciOi...
    r"(?ai:\bbearer)[ \t]+(?P<v0>[A-Za-z0-9\-._~+/]+=*)",
    # scheme://user:secret@host
    r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@\"']*:(?P<v0>[^\s/@\"']+)@",
    # --password hunter2   --api-key 'k'   keytool -storepass changeit
    rf"{_OPTION}[ \t]+(?:{_QUOTED}|{_NOT_MASKED}(?P<v3>[^\s\"'\\\-][^\s\"'\\]*))",
    # password=x   "api_key": "x"   DB_PASSWORD: x   token = 'x'; a
    # passphrase is several words: up to the end of the line or a quote
    rf"{_KEY}{_SEPARATOR}(?:{_QUOTED}|{_NOT_MASKED}(?(phrase)"
    r"(?P<v4>[^\s\"'\\](?:[^\r\n\"'\\]*[^\s\"'\\])?)"
    r"|(?P<v3>[^\s\"'\\,;&}\]]+)))",
)

# Every built-in shape contains one of these (in ASCII lower case); a line
# without any of them needs only the user's patterns.
_TRIGGERS: Final = re.compile(
    rb"authorization|cookie|bearer|://|pass|pwd|key|token|secret|credential"
    rb"|mysql|maria"
)
# mysql -uroot -pS3cret db   mariadb-dump -p'x y': a -p word masks what is
# glued to it when a MySQL or MariaDB name came before it on the line. One
# pass over these tokens keeps that linear on any line.
_GLUED_P: Final = re.compile(
    r"(?P<program>(?ai:mysql|maria))|(?P<eol>\n)"
    rf"|(?<!\S)-p(?:{_QUOTED}|{_NOT_MASKED}(?P<v3>[^\s\"']+))"
)
_GLUED_P_GROUPS: Final = ("v0", "v1", "v2", "v3")
_GROUP_NAME: Final = re.compile(r"\(\?P<(\w+)>|\(\?\((\w+)\)")
_VALUE_GROUP: Final = re.compile(r"v\d+")
_UNCOMBINABLE: Final = re.compile(r"\(\?P|\\[1-9]|^\(\?[aiLmsux]+\)")


@dataclass(frozen=True)
class _Shape:
    """One alternative of a combined pattern: the groups holding the secret.

    No groups means the whole match is the secret.
    """

    value_groups: tuple[str | int, ...]


@dataclass(frozen=True)
class _Combined:
    """A compiled alternation and, per alternative, what it masks."""

    pattern: re.Pattern[str]
    shapes: dict[str, _Shape]

    def redact(self, text: str) -> tuple[str, list[str]]:
        """Mask every match in ``text``; return the text and the values masked."""
        found: list[str] = []

        def replace(match: re.Match[str]) -> str:
            shape = self.shapes.get(match.lastgroup or "")
            return _mask_groups(match, shape.value_groups if shape else (), found)

        return self.pattern.sub(replace, text), found


class Redactor:
    """Masks secrets in text: the built-in shapes and the user's patterns.

    An instance holds no state between calls; threads may share one. The
    ``redact`` methods count every place a secret was masked; the
    ``..._distinct`` ones return a fingerprint per different value instead,
    so a caller masking several texts can say how many secrets there were
    without keeping them.

    :param extra_patterns: the user's regexes (``[mail] redact``); each masks
        its whole match, or its group 1 when it has groups.
    :raises re.error: when a pattern is not a regular expression (the
        configuration validates them first, so this is a programming error).
    """

    def __init__(self, extra_patterns: Sequence[str] = ()) -> None:
        builtins: list[tuple[str, str, tuple[str | int, ...]]] = []
        users: list[tuple[str, str, tuple[str | int, ...]]] = []
        self._separate: list[re.Pattern[str]] = []

        for index, shape in enumerate(_BUILTIN_SHAPES):
            prefix = f"b{index}_"
            renamed = _GROUP_NAME.sub(functools.partial(_rename_group, prefix), shape)
            names = tuple(
                f"{prefix}{name}"
                for name, _ in _GROUP_NAME.findall(shape)
                if _VALUE_GROUP.fullmatch(name)
            )
            builtins.append((f"b{index}", renamed, names))

        for index, pattern in enumerate(extra_patterns):
            compiled = re.compile(pattern)
            if _UNCOMBINABLE.search(pattern):
                self._separate.append(compiled)
                continue
            users.append((f"u{index}", pattern, (1,) if compiled.groups else ()))

        self._everything = _combine(builtins + users)
        self._users_only = _combine(users) if users else None

    def redact(self, text: str) -> tuple[str, int]:
        """Return ``text`` with every secret masked, and how many were masked.

        :param text: any text.
        :returns: the masked text and the number of places masked (one value
            found twice counts twice).
        """
        masked, found = self._redact(text)
        return masked, len(found)

    def redact_distinct(self, text: str) -> tuple[str, frozenset[str]]:
        """Return ``text`` with every secret masked, and what was masked.

        :param text: any text.
        :returns: the masked text and a fingerprint (a short hash, not the
            secret) of each different value masked.
        """
        masked, found = self._redact(text)
        return masked, _fingerprints(found)

    def redact_bytes(self, data: bytes) -> tuple[bytes, int]:
        """Return ``data`` with every secret masked, and how many were masked.

        The bytes are read as UTF-8; bytes that are not UTF-8 pass through
        unchanged. Data is masked in line-aligned chunks of about 1MiB, so an
        attachment of many megabytes needs no more than a few times its size
        in memory.

        :param data: the content of a log file (or its tail).
        :returns: the masked bytes and the number of places masked.
        """
        masked, found = self._redact_bytes(data)
        return masked, len(found)

    def redact_bytes_distinct(self, data: bytes) -> tuple[bytes, frozenset[str]]:
        """Like :meth:`redact_bytes`, with a fingerprint per different value.

        :param data: the content of a log file (or its tail).
        :returns: the masked bytes and the fingerprints of the values masked.
        """
        masked, found = self._redact_bytes(data)
        return masked, _fingerprints(found)

    def _redact(self, text: str) -> tuple[str, list[str]]:
        """Mask ``text`` with every shape; return it and the values masked."""
        # Limitation: a secret split over two lines (a folded header, a
        # wrapped JSON document) is not recognised; every shape is one line.
        found: list[str] = []

        # Glued passwords go first: ``-pSECRET db`` must not read as an
        # option named like a secret (``-p...secret``) followed by its value.
        text = _mask_glued_passwords(text, found)
        text, by_shapes = self._everything.redact(text)
        found += by_shapes
        for pattern in self._separate:
            text = _redact_alone(pattern, text, found)
        return text, found

    def _redact_bytes(self, data: bytes) -> tuple[bytes, list[str]]:
        """Mask ``data`` chunk by chunk; return it and the values masked."""
        pieces: list[bytes] = []
        found: list[str] = []
        start = 0
        while start < len(data):
            end = _chunk_end(data, start)
            pieces.append(self._redact_chunk(data[start:end], found))
            start = end
        return b"".join(pieces), found

    def _redact_chunk(self, data: bytes, found: list[str]) -> bytes:
        """Mask one chunk: full scan on lines with a trigger word, else users'."""
        lowered = data.lower()
        pieces: list[str] = []
        position = 0
        while position < len(data):
            hit = _TRIGGERS.search(lowered, position)
            line_start = (
                len(data) if hit is None else data.rfind(b"\n", 0, hit.start()) + 1
            )
            if line_start > position:
                plain = data[position:line_start].decode("utf-8", "surrogateescape")
                pieces.append(self._redact_users(plain, found))
            if hit is None:
                break

            line_end = data.find(b"\n", hit.end())
            line_end = len(data) if line_end < 0 else line_end + 1
            line = data[line_start:line_end].decode("utf-8", "surrogateescape")
            masked, on_line = self._redact(line)
            pieces.append(masked)
            found += on_line
            position = line_end
        return "".join(pieces).encode("utf-8", "surrogateescape")

    def _redact_users(self, text: str, found: list[str]) -> str:
        """Mask only the user's patterns (text known to hold no built-in shape)."""
        if self._users_only is not None:
            text, by_users = self._users_only.redact(text)
            found += by_users
        for pattern in self._separate:
            text = _redact_alone(pattern, text, found)
        return text


def _rename_group(prefix: str, match: re.Match[str]) -> str:
    """Return a group definition or reference with ``prefix`` on its name."""
    if match[1] is not None:
        return f"(?P<{prefix}{match[1]}>"
    return f"(?({prefix}{match[2]})"


def _combine(
    alternatives: Sequence[tuple[str, str, tuple[str | int, ...]]],
) -> _Combined:
    """Join ``(name, pattern, secret groups)`` into one alternation.

    A secret group given as a number counts inside that alternative: group 1
    of a user's pattern opens right after the group wrapping it.
    """
    pattern = re.compile(
        "|".join(f"(?P<{name}>{text})" for name, text, _ in alternatives)
    )
    shapes: dict[str, _Shape] = {}
    for name, _, groups in alternatives:
        base = pattern.groupindex[name]
        shapes[name] = _Shape(
            tuple(base + group if isinstance(group, int) else group for group in groups)
        )
    return _Combined(pattern, shapes)


def _mask_groups(
    match: re.Match[str], groups: tuple[str | int, ...], found: list[str]
) -> str:
    """Return the match with its secret masked, adding the secret to ``found``.

    An empty match, an empty secret or one already masked is not a secret:
    the match comes back unchanged and nothing is added.
    """
    whole = match[0]
    if not groups:
        if not whole or whole == MASK:
            return whole
        found.append(whole)
        return MASK
    for group in groups:
        secret = match[group]
        if secret and secret != MASK:
            start, end = match.span(group)
            offset = match.start()
            found.append(secret)
            return whole[: start - offset] + MASK + whole[end - offset :]
    return whole


def _redact_alone(pattern: re.Pattern[str], text: str, found: list[str]) -> str:
    """Mask the matches of one user pattern that cannot join the alternation."""
    groups: tuple[str | int, ...] = (1,) if pattern.groups else ()
    return pattern.sub(lambda match: _mask_groups(match, groups, found), text)


def _mask_glued_passwords(text: str, found: list[str]) -> str:
    """Mask ``-pSECRET`` after a MySQL or MariaDB program on the same line."""
    lowered = text.lower()
    if "mysql" not in lowered and "maria" not in lowered:
        return text
    program_seen = False

    def replace(match: re.Match[str]) -> str:
        nonlocal program_seen
        if match["program"] or match["eol"]:
            program_seen = bool(match["program"])
            return match[0]
        if not program_seen:
            return match[0]
        return _mask_groups(match, _GLUED_P_GROUPS, found)

    return _GLUED_P.sub(replace, text)


def _fingerprints(values: list[str]) -> frozenset[str]:
    """Return a short hash of each different value (the values stay unknown)."""
    return frozenset(
        short_hash(value.encode("utf-8", "surrogateescape"), 12)
        for value in set(values)
    )


def _chunk_end(data: bytes, start: int) -> int:
    """Return where the chunk starting at ``start`` ends: just after a newline."""
    end = start + _CHUNK_BYTES
    if end >= len(data):
        return len(data)
    newline = data.find(b"\n", end)
    return len(data) if newline < 0 else newline + 1


@functools.lru_cache(maxsize=8)
def redactor_for(extra_patterns: tuple[str, ...]) -> Redactor:
    """Return a :class:`Redactor` for the user's patterns, built once.

    :param extra_patterns: ``[mail] redact``.
    :returns: a redactor shared by every caller with the same patterns.
    """
    return Redactor(extra_patterns)
