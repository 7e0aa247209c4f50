"""Masking secrets in log text before it leaves the host.

This module owns the secret shapes the tool recognises by itself (passwords,
``Authorization`` and ``Cookie`` headers, bearer tokens, API keys and other
``key=value`` secrets, passwords in URLs) and the user's own ``[mail] redact``
patterns. They are joined into one regular expression, so text is scanned
once; large data is first searched for the few words every built-in shape
contains, and only the lines holding one get the full scan.

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
    r"(?<![A-Za-z0-9_.\-])"
    rf"(?ai:[A-Za-z0-9_.\-]*?(?:{_KEYWORDS})(?:[_\-][A-Za-z0-9]+)*)(?![A-Za-z0-9])"
)

# A value in double quotes, single quotes, or double quotes escaped inside a
# JSON string; the groups named v... hold the secret itself.
_QUOTED: Final = (
    r"\"(?P<v0>(?:[^\"\\\r\n]|\\.)*)\""
    r"|'(?P<v1>[^'\r\n]*)'"
    r"|\\\"(?P<v2>(?:[^\"\\\r\n]|\\[^\"\r\n])*)\\\""
)
_SEPARATOR: Final = r"\\?[\"']?[ \t]*[:=][ \t]*"

# Each shape keeps everything but its v... groups, so a line stays readable.
_BUILTIN_SHAPES: Final = (
    # Authorization: Basic dXNlcjpwYXNz   /   'Cookie': 'session=x'
    r"(?ai:\b(?:proxy-)?authorization|\b(?:set-)?cookie)"
    rf"{_SEPARATOR}(?:{_QUOTED}|(?P<v3>[^\s\"'\\][^\r\n]*))",
    # Bearer eyJhbGciOi...
    r"(?ai:\bbearer)[ \t]+(?P<v0>[A-Za-z0-9\-._~+/]+=*)",
    # scheme://user:secret@host
    r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@\"']*:(?P<v0>[^\s/@\"']+)@",
    # password=x   "api_key": "x"   DB_PASSWORD: x   token = 'x'
    rf"{_KEY}{_SEPARATOR}(?:{_QUOTED}|(?P<v3>[^\s\"'\\,;&}}\]]+))",
)

# Every built-in shape contains one of these (in ASCII lower case); a line
# without any of them needs only the user's patterns.
_TRIGGERS: Final = re.compile(
    rb"authorization|cookie|bearer|://|pass|pwd|key|token|secret|credential"
)
_GROUP_NAME: Final = re.compile(r"\(\?P<(v\d+)>")
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

    def redact(self, text: str) -> tuple[str, int]:
        """Mask every match in ``text``; return the text and the count."""
        count = 0

        def replace(match: re.Match[str]) -> str:
            nonlocal count
            shape = self.shapes.get(match.lastgroup or "")
            masked = _mask_groups(match, shape.value_groups if shape else ())
            count += masked is not None
            return match[0] if masked is None else masked

        return self.pattern.sub(replace, text), count


class Redactor:
    """Masks secrets in text: the built-in shapes and the user's patterns.

    An instance holds no state between calls; threads may share one.

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
            renamed = _GROUP_NAME.sub(rf"(?P<{prefix}\1>", shape)
            names = tuple(f"{prefix}{name}" for name in _GROUP_NAME.findall(shape))
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
        :returns: the masked text and the number of values masked.
        """
        # Limitation: a secret split over two lines (a folded header, a
        # wrapped JSON document) is not recognised; every shape is one line.
        text, count = self._everything.redact(text)
        for pattern in self._separate:
            text, found = _redact_alone(pattern, text)
            count += found
        return text, count

    def redact_bytes(self, data: bytes) -> tuple[bytes, int]:
        """Return ``data`` with every secret masked, and how many were masked.

        The bytes are read as UTF-8; bytes that are not UTF-8 pass through
        unchanged. Data is masked in line-aligned chunks of about 1MiB, so an
        attachment of many megabytes needs no more than a few times its size
        in memory.

        :param data: the content of a log file (or its tail).
        :returns: the masked bytes and the number of values masked.
        """
        pieces: list[bytes] = []
        count = 0
        start = 0
        while start < len(data):
            end = _chunk_end(data, start)
            masked, found = self._redact_chunk(data[start:end])
            pieces.append(masked)
            count += found
            start = end
        return b"".join(pieces), count

    def _redact_chunk(self, data: bytes) -> tuple[bytes, int]:
        """Mask one chunk: full scan on lines with a trigger word, else users'."""
        lowered = data.lower()
        pieces: list[str] = []
        count = 0
        position = 0
        while position < len(data):
            hit = _TRIGGERS.search(lowered, position)
            line_start = (
                len(data) if hit is None else data.rfind(b"\n", 0, hit.start()) + 1
            )
            if line_start > position:
                plain = data[position:line_start].decode("utf-8", "surrogateescape")
                masked, found = self._redact_users(plain)
                pieces.append(masked)
                count += found
            if hit is None:
                break

            line_end = data.find(b"\n", hit.end())
            line_end = len(data) if line_end < 0 else line_end + 1
            line = data[line_start:line_end].decode("utf-8", "surrogateescape")
            masked, found = self.redact(line)
            pieces.append(masked)
            count += found
            position = line_end
        return "".join(pieces).encode("utf-8", "surrogateescape"), count

    def _redact_users(self, text: str) -> tuple[str, int]:
        """Mask only the user's patterns (text known to hold no built-in shape)."""
        count = 0
        if self._users_only is not None:
            text, count = self._users_only.redact(text)
        for pattern in self._separate:
            text, found = _redact_alone(pattern, text)
            count += found
        return text, count


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


def _mask_groups(match: re.Match[str], groups: tuple[str | int, ...]) -> str | None:
    """Return the match with its secret masked, or ``None`` if it holds none.

    An empty match or an empty secret is not a secret and is not counted.
    """
    if not groups:
        return MASK if match[0] else None
    for group in groups:
        if match[group]:
            start, end = match.span(group)
            offset = match.start()
            whole = match[0]
            return whole[: start - offset] + MASK + whole[end - offset :]
    return None


def _redact_alone(pattern: re.Pattern[str], text: str) -> tuple[str, int]:
    """Mask the matches of one user pattern that cannot join the alternation."""
    count = 0
    groups: tuple[str | int, ...] = (1,) if pattern.groups else ()

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        masked = _mask_groups(match, groups)
        count += masked is not None
        return match[0] if masked is None else masked

    return pattern.sub(replace, text), count


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
