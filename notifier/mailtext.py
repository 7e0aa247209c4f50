"""Text for emails: header values, body lines a phone shows well, times.

This module owns the small rules every message notifier writes follows:
header values made safe from check output (:func:`clean_header_value`),
text shortened at a word (:func:`shorten`), body paragraphs wrapped at
:data:`BODY_WIDTH` columns (:func:`wrap`), times as people write them
(durations are :func:`notifier.units.human_duration`), and the plain-text
body set in the cheapest transfer encoding that carries it
(:func:`set_body`). :mod:`notifier.compose`,
:mod:`notifier.notices` and :mod:`notifier.digest` build on it.
"""

from __future__ import annotations

import email.policy
import textwrap
import unicodedata
from datetime import datetime
from email.message import EmailMessage
from typing import Final

POLICY: Final = email.policy.SMTP
"""Policy of every composed message: CRLF line ends, headers folded at 78."""
BODY_WIDTH: Final = 72
"""Body paragraphs are wrapped at this many columns."""
LINE_LIMIT: Final = 78
"""Longest body line that still goes out as 7bit rather than quoted-printable."""


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


def format_time(moment: datetime) -> str:
    """Return a time as ``2024-05-01 10:02 UTC`` in its own time zone."""
    return moment.strftime("%Y-%m-%d %H:%M %Z").rstrip()


def wrap(text: str, indent: str = "") -> list[str]:
    """Return ``text`` wrapped at :data:`BODY_WIDTH`, words never broken.

    :param text: one paragraph; an empty one gives no lines.
    :param indent: put before every line but the first.
    """
    if not text:
        return []
    return textwrap.wrap(
        text,
        width=BODY_WIDTH,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [text]


def set_body(part: EmailMessage, text: str) -> None:
    """Set plain-text content: 7bit when it can be, else quoted-printable."""
    lines = text.split("\n")
    plain = text.isascii() and max(len(line) for line in lines) <= LINE_LIMIT
    part.set_content(text, charset="utf-8", cte="7bit" if plain else "quoted-printable")


def body_part(message: EmailMessage) -> EmailMessage:
    """Return the plain-text body part of ``message``.

    :raises ValueError: when the message has none.
    """
    part = message.get_body(preferencelist=("plain",))
    if not isinstance(part, EmailMessage):
        msg = "the message has no plain-text body to add a note to"
        raise ValueError(msg)
    return part


def body_text(message: EmailMessage) -> str:
    """Return the plain-text body of ``message`` with bare newlines.

    :raises ValueError: when the message has none.
    """
    return str(body_part(message).get_content()).replace("\r\n", "\n")
