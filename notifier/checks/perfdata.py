"""Nagios plugin output: the status text, the long output and performance data.

A Nagios / Monitoring-Plugins executable prints one line of status text,
optionally followed by ``|`` and performance data, then optional long output;
any line of the long output may end in ``|`` plus more performance data, and
every line after that one is performance data too::

    DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968
    / 15272 MB (77%);
    /boot 68 MB (69%); | /boot=68MB;88;93;0;98
    /home=69357MB;253404;253409;0;253414

One datum is ``'label'=value[UOM];[warn];[crit];[min];[max]``. Labels with
spaces are quoted with ``'``, and a quote inside a quoted label is written
twice (``''``).

Turning a datum into a metric name follows one rule, so that a metric means
the same whatever plugin printed it: the label is kept as written and the
unit of measure becomes a suffix, with the value converted to the base unit:

=============================  =====================  ======================
UOM                            name                   value
=============================  =====================  ======================
(none)                         ``label``              as printed
``s`` ``ms`` ``us`` ``ns``     ``label_seconds``      in seconds
``%``                          ``label_percent``      as printed
``B`` ``KB`` ``MB`` ``GB``     ``label_bytes``        in bytes; ``KB`` is
``TB`` (and ``KiB`` ...)                              1024 bytes, as the
                                                      Monitoring Plugins mean
``c``                          ``label_total``        as printed (a counter)
anything else                  ``label_<uom>``        as printed
=============================  =====================  ======================

The value ``U`` ("could not be determined") and values that are not numbers
are skipped. A decimal comma (printed by some plugins under a non-English
locale) is read as a decimal point. Nothing here ever raises on any input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

_NUMBER_TEXT: Final = r"[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?"
_NUMBER: Final = re.compile(rf"\s*({_NUMBER_TEXT})(.*)", re.DOTALL)
_PLAIN_NUMBER: Final = re.compile(_NUMBER_TEXT)
_SECONDS: Final[dict[str, float]] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_BYTES: Final[dict[str, int]] = {
    "b": 1,
    "kb": 1024,
    "mb": 1024**2,
    "gb": 1024**3,
    "tb": 1024**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


@dataclass(frozen=True)
class PerfDatum:
    """One performance datum as the plugin printed it.

    :param label: the label, unquoted.
    :param value: the number, in the plugin's unit.
    :param uom: the unit of measure as printed (``""`` for none).
    :param warn: the warning range as printed (``""`` for none).
    :param crit: the critical range as printed (``""`` for none).
    :param minimum: the smallest possible value, when printed.
    :param maximum: the largest possible value, when printed.
    """

    label: str
    value: float
    uom: str = ""
    warn: str = ""
    crit: str = ""
    minimum: float | None = None
    maximum: float | None = None

    def metric(self) -> tuple[str, float]:
        """Return the metric name and the value in the base unit (module rule)."""
        unit = self.uom.strip()
        lowered = unit.lower()
        if not unit:
            return self.label, self.value
        if lowered in _SECONDS:
            return f"{self.label}_seconds", self.value * _SECONDS[lowered]
        if unit == "%":
            return f"{self.label}_percent", self.value
        if lowered in _BYTES:
            return f"{self.label}_bytes", self.value * _BYTES[lowered]
        if unit == "c":
            return f"{self.label}_total", self.value
        return f"{self.label}_{unit}", self.value


@dataclass(frozen=True)
class PluginOutput:
    """A plugin's standard output taken apart.

    :param summary: the status text of the first line, without perf data.
    :param long_output: the lines of long output, without perf data.
    :param perfdata: every datum, in the order printed.
    """

    summary: str
    long_output: tuple[str, ...]
    perfdata: tuple[PerfDatum, ...]


def split_output(text: str) -> PluginOutput:
    """Return the summary, long output and performance data of ``text``.

    Follows the Nagios rule: perf data is what follows ``|`` on the first
    line, plus what follows the first ``|`` in the long output and every line
    after it. Never raises.
    """
    lines = text.splitlines()
    if not lines:
        return PluginOutput("", (), ())

    summary, _, first_perf = lines[0].partition("|")
    perf_texts = [first_perf]
    long_output: list[str] = []
    in_perf = False
    for line in lines[1:]:
        if in_perf:
            perf_texts.append(line)
            continue
        before, bar, after = line.partition("|")
        if bar:
            in_perf = True
            perf_texts.append(after)
            line = before
        if line.strip() or not bar:
            long_output.append(line.rstrip())

    # Trailing blank lines of long output say nothing.
    while long_output and not long_output[-1].strip():
        long_output.pop()
    perfdata = tuple(datum for part in perf_texts for datum in parse_perfdata(part))
    return PluginOutput(summary.strip(), tuple(long_output), perfdata)


def parse_perfdata(text: str) -> list[PerfDatum]:
    """Return every well-formed datum in ``text``; malformed ones are skipped.

    Never raises: a datum whose label is unterminated or whose value is not a
    number is left out, and parsing resumes at the next one.
    """
    data: list[PerfDatum] = []
    position = 0
    length = len(text)
    while position < length:
        if text[position].isspace():
            position += 1
            continue
        label, position = _read_label(text, position)
        if label is None or position >= length or text[position] != "=":
            position = _skip_token(text, position)
            continue
        field_end = _skip_token(text, position + 1)
        datum = _parse_fields(label, text[position + 1 : field_end])
        if datum is not None:
            data.append(datum)
        position = field_end
    return data


def metrics_of(perfdata: tuple[PerfDatum, ...] | list[PerfDatum]) -> dict[str, float]:
    """Return the metrics of ``perfdata`` by name (see the module's rule).

    A name printed twice keeps both values: the second becomes ``name_2``.
    """
    metrics: dict[str, float] = {}
    for datum in perfdata:
        name, value = datum.metric()
        unique = name
        count = 1
        while unique in metrics:
            count += 1
            unique = f"{name}_{count}"
        metrics[unique] = value
    return metrics


def _read_label(text: str, position: int) -> tuple[str | None, int]:
    """Return the label starting at ``position`` and the index after it."""
    if text[position] != "'":
        end = position
        while end < len(text) and text[end] != "=" and not text[end].isspace():
            end += 1
        label = text[position:end]
        return (label or None), end

    # A quoted label: '' is a quote inside it, a lone ' ends it.
    characters: list[str] = []
    index = position + 1
    while index < len(text):
        if text[index] == "'":
            if text[index + 1 : index + 2] == "'":
                characters.append("'")
                index += 2
                continue
            label = "".join(characters)
            return (label or None), index + 1
        characters.append(text[index])
        index += 1
    return None, len(text)


def _skip_token(text: str, position: int) -> int:
    while position < len(text) and not text[position].isspace():
        position += 1
    return position


def _parse_fields(label: str, fields_text: str) -> PerfDatum | None:
    fields = fields_text.split(";")
    match = _NUMBER.fullmatch(fields[0])
    if match is None:
        return None
    value = _to_float(match.group(1))
    if value is None:
        return None
    extra = [*fields[1:5], "", "", "", ""]
    return PerfDatum(
        label=label,
        value=value,
        uom=match.group(2).strip(),
        warn=extra[0].strip(),
        crit=extra[1].strip(),
        minimum=_to_float(extra[2]),
        maximum=_to_float(extra[3]),
    )


def _to_float(text: str) -> float | None:
    cleaned = text.strip()
    if not _PLAIN_NUMBER.fullmatch(cleaned):
        return None
    number = float(cleaned.replace(",", ".", 1))
    return number if math.isfinite(number) else None
