"""Durations and sizes written the way people write them: ``90s``, ``512KiB``.

Parsing and printing live together so that whatever the tool prints can be
pasted back into the configuration.
"""

from __future__ import annotations

import math
import re
from typing import Final

_DURATION_UNITS: Final[dict[str, float]] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_SIZE_UNITS: Final[dict[str, int]] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
MAX_DURATION: Final = 36500 * 86400.0
"""The longest duration accepted, 36500 days (about a century): anything longer
is a typo, and would not fit the scheduler's clock."""
MAX_SIZE: Final = 1024**6
"""The largest size accepted, one exbibyte (written ``1048576TiB``)."""

_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_SIZE_TEXT: Final = re.compile(
    r"\s*(\d+)(?:\.(\d+))?\s*([kmgt]i?b|b)?\s*", re.IGNORECASE
)
_SIZE_FRACTION_DIGITS: Final = 45
"""Fraction digits of a size that can matter: a size is a whole number of
bytes, and the largest unit, 1TiB, is 2**40 bytes, so 1/1TiB has 40 decimals.
Digits past these never change the whole bytes, and are dropped before the
arithmetic (so that ``0.`` followed by a million digits costs nothing)."""


def parse_duration(text: str) -> float:
    """Return the number of seconds in ``text``.

    Accepts one or more number-unit pairs (``500ms``, ``30s``, ``1h30m``) and
    the bare ``"0"``, which means "never" or "off" wherever a duration can be
    turned off.

    :raises ValueError: when the text is not a duration (the message says how
        one is written), or is longer than :data:`MAX_DURATION`.
    """
    stripped = text.strip()
    if stripped == "0":
        return 0.0

    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(stripped):
        if match.start() != position and stripped[position : match.start()].strip():
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        position = match.end()
    if position == 0 or stripped[position:].strip():
        msg = f"{text!r} is not a duration; write it like '500ms', '30s', '5m', '4h'"
        raise ValueError(msg)

    # float() reads any number of digits, and a long enough one is infinity.
    if not math.isfinite(total) or total > MAX_DURATION:
        msg = (
            f"{_shorten(text)} is longer than {format_duration(MAX_DURATION)}, "
            "the longest duration allowed"
        )
        raise ValueError(msg)
    return total


def format_duration(seconds: float) -> str:
    """Return ``seconds`` the way a person writes it (``90s`` -> ``1m30s``).

    Milliseconds are rounded; :func:`format_duration_exact` is for text that
    must read back as the same number.
    """
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"

    parts: list[str] = []
    remaining = round(seconds, 3)
    for unit in ("d", "h", "m"):
        size = _DURATION_UNITS[unit]
        count = int(remaining // size)
        if count:
            parts.append(f"{count}{unit}")
            remaining -= count * size
    remaining = round(remaining, 3)
    if remaining:
        text = f"{remaining:g}" if remaining != int(remaining) else str(int(remaining))
        parts.append(f"{text}s")
    return "".join(parts)


def format_duration_exact(seconds: float) -> str:
    """Return ``seconds`` as text that :func:`parse_duration` reads back as
    exactly ``seconds``: the human form when it is exact, else seconds with
    every decimal needed (``1.0005s``)."""
    human = format_duration(seconds)
    try:
        if parse_duration(human) == seconds:
            return human
    except ValueError:
        pass
    from decimal import Decimal  # rare: a duration no unit writes exactly

    return f"{format(Decimal(repr(float(seconds))), 'f')}s"


def human_duration(seconds: float) -> str:
    """Return a duration as its two largest units: ``2h 5m``, ``45s``."""
    remaining = max(int(seconds), 0)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2]) or "0s"


def parse_size(text: str | int) -> int:
    """Return the number of bytes in ``text`` (``512KiB``, ``10MB``, ``4096``).

    The arithmetic is exact (``1.5KiB`` is 1536); a fraction of a byte is
    dropped.

    :raises ValueError: when the text is not a size (the message says how one
        is written), or is larger than :data:`MAX_SIZE`.
    """
    if isinstance(text, int):
        if text < 0:
            msg = f"{text} is not a size; sizes are not negative"
            raise ValueError(msg)
        size = text
    else:
        match = _SIZE_TEXT.fullmatch(text)
        if match is None:
            msg = f"{text!r} is not a size; write it like '512KiB', '10MB', '1GiB'"
            raise ValueError(msg)
        whole, fraction, unit_name = match.groups()
        size = _whole_bytes(
            whole, fraction or "", _SIZE_UNITS[(unit_name or "").lower()]
        )
    if size > MAX_SIZE:
        msg = (
            f"{_shorten(str(text))} is larger than {format_size(MAX_SIZE)}, "
            "the largest size allowed"
        )
        raise ValueError(msg)
    return size


def _whole_bytes(whole: str, fraction: str, unit: int) -> int:
    """Return the bytes in the decimal ``whole.fraction`` of ``unit``, the
    fraction of a byte dropped, exactly; or ``MAX_SIZE + 1`` when larger."""
    significant = whole.lstrip("0")
    # Compared before converting: int() refuses numbers of 4300+ digits.
    if len(significant) > len(str(MAX_SIZE)):
        return MAX_SIZE + 1

    fraction = fraction[:_SIZE_FRACTION_DIGITS]
    scaled = int(significant + fraction or "0") * unit
    fraction_scale: int = 10 ** len(fraction)
    return min(scaled // fraction_scale, MAX_SIZE + 1)


def format_size(size: int) -> str:
    """Return ``size`` bytes the way a person writes it.

    Exact multiples print without a fraction (``524288`` -> ``512KiB``,
    ``10000000`` -> ``10MB``) so they parse back to the same number; others get
    one decimal in binary units (``8.2GiB``), which is for reading only.
    """
    units = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
    for unit, factor in units:
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    for unit, factor in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    for unit, factor in units:
        if size >= factor:
            return f"{size / factor:.1f}{unit}"
    return f"{size}B"


def _shorten(text: str, limit: int = 40) -> str:
    """Return ``text`` quoted for a message, cut in the middle when long."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[: limit // 2] + "..." + text[-limit // 2 :])
