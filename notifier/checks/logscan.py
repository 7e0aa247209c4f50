"""The ``logscan`` check: alerts on lines appended to log files.

Each run reads only what was written since the previous run (see
:mod:`notifier.tail` for rotation, truncation and restarts) and counts the
lines that match ``pattern`` and no ``ignore`` pattern (see
:mod:`notifier.logmatch` for the matching rules and how it stays fast). The
count is compared with ``warning`` and ``critical``; the matched lines, with
``context`` lines around them, are the evidence, and the log that matched is
offered as the attachment.

Offsets live in ``offsets.json`` in the check's state folder.

The option that offers the log as an attachment is called ``attach_log``,
because ``attach`` is already the common option (a list of files) that every
check has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from notifier import hookimpl
from notifier.checks.base import (
    CheckContext,
    CheckType,
    OptionProblem,
    Result,
    Status,
    threshold_status,
    worst,
)
from notifier.errors import ConfigError
from notifier.logmatch import LineScanner, Scanned, format_evidence
from notifier.logrules import Rules, RulesError, printable, rules_problems
from notifier.options import Option
from notifier.tail import PollReport, Segment, Tailer
from notifier.units import format_size

log = logging.getLogger(__name__)

OFFSETS_FILE: Final = "offsets.json"
ATTACH_HINT: Final = (
    "for logscan, attach_log = true turns attaching the matched log on or off"
)
"""Added to a problem with ``attach`` (the common list of files) in a logscan
entry: the issue that asked for this check called its switch ``attach``."""
MAX_SUMMARY: Final = 300
_QUOTE_CHARS: Final = 120

OPTIONS: Final = (
    Option(
        "path",
        "path",
        required=True,
        help="The log file, or a glob such as '/var/log/nginx/*.log' ('**' "
        "matches any depth of folders, none included); the glob is expanded "
        "again at every run, so new files are picked up.",
    ),
    Option(
        "pattern",
        "regex_list",
        required=True,
        minimum=1,
        help="Python regular expression, or a list of them, applied to each "
        "line; a line matching any of them counts once.",
    ),
    Option(
        "ignore",
        "regex_list",
        default=(),
        help="Regular expressions that veto a matching line.",
    ),
    Option(
        "warning",
        "int",
        default=1,
        minimum=1,
        help="WARNING when a run finds at least this many matching lines.",
    ),
    Option(
        "critical",
        "int",
        default=None,
        minimum=1,
        help="CRITICAL when a run finds at least this many; unset means never.",
    ),
    Option(
        "encoding",
        "str",
        default="utf-8",
        help="Encoding of the log; bytes invalid in it become U+FFFD.",
    ),
    Option(
        "context",
        "int",
        default=0,
        minimum=0,
        maximum=20,
        help="Lines before and after each matching line kept as evidence.",
    ),
    Option(
        "max_evidence_lines",
        "int",
        default=20,
        minimum=0,
        maximum=1000,
        help="Matching lines kept as evidence per run (each with its context).",
    ),
    Option(
        "from",
        "choice",
        default="end",
        choices=("end", "start"),
        help="Where to start a file found on the check's first run; files that "
        "appear later are always read from their start.",
    ),
    Option(
        "missing",
        "choice",
        default="unknown",
        choices=("ok", "unknown", "critical"),
        help="Status when no file is at the path.",
    ),
    Option(
        "attach_log",
        "bool",
        default=True,
        help="Offer the log file that matched as the alert's attachment.",
    ),
    Option(
        "max_bytes_per_run",
        "size",
        default=256 * 1024 * 1024,
        minimum=4096,
        help="Most bytes read in one run; a log that grew more is caught up "
        "over the next runs, and the result says how far behind it is.",
    ),
    Option(
        "partial_after",
        "duration",
        default=30.0,
        minimum=0,
        help="A last line without a line feed counts once its file has not "
        "changed for this long; '0' waits for the line feed forever.",
    ),
)


@dataclass(frozen=True)
class Thresholds:
    """When a count of matching lines is a problem."""

    warning: int | None
    critical: int | None

    def status(self, matches: int) -> Status:
        """Return the status of ``matches`` matching lines."""
        return threshold_status(float(matches), self.warning, self.critical)


def rules_from_options(options: Mapping[str, Any], location: str) -> Rules:
    """Return the compiled rules of a logscan check's options.

    :param location: how errors name the check (``[[check]] "app-log"``).
    :raises ConfigError: when the encoding cannot be used, or a pattern or an
        ignore pattern is empty.
    """
    try:
        return Rules(
            tuple(options["pattern"]),
            tuple(options.get("ignore") or ()),
            str(options.get("encoding") or "utf-8"),
        )
    except RulesError as exc:
        raise ConfigError.single(None, location, exc.key, str(exc), exc.hint) from exc


def thresholds_from_options(options: Mapping[str, Any]) -> Thresholds:
    """Return the ``warning`` and ``critical`` counts of a logscan check."""
    return Thresholds(options.get("warning"), options.get("critical"))


def new_scanner(rules: Rules, options: Mapping[str, Any]) -> LineScanner:
    """Return a scanner for one run, with the check's evidence limits."""
    return LineScanner(
        rules,
        context=int(options.get("context") or 0),
        max_evidence=int(options.get("max_evidence_lines", 20)),
    )


def plural(count: int, noun: str) -> str:
    """Return ``count`` and ``noun``, the noun with an ``s`` unless it is 1
    (``1 matching line``, ``2,000 files``)."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _quote(text: str) -> str:
    line = printable(" ".join(text.split()))
    return line if len(line) <= _QUOTE_CHARS else line[: _QUOTE_CHARS - 3] + "..."


def describe_matches(scanner: LineScanner) -> str:
    """Return one line saying how many lines matched where, and the first."""
    if not scanner.matches:
        return "no matching lines"
    places = [info for info in scanner.segments if info.matches]
    where: dict[str, int] = {}
    for info in places:
        where[info.label] = where.get(info.label, 0) + info.matches
    if len(where) == 1:
        text = f"{plural(scanner.matches, 'matching line')} in {next(iter(where))}"
    else:
        parts = ", ".join(f"{count} in {label}" for label, count in where.items())
        text = f"{plural(scanner.matches, 'matching line')} ({parts})"
    return f"{text}: {_quote(places[0].first_match) or '(a blank line)'}"


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 3] + "..."


def build_result(
    scanner: LineScanner,
    report: PollReport,
    *,
    pattern: str,
    thresholds: Thresholds,
    missing: str,
    max_bytes: int,
    attachments: tuple[Path, ...] = (),
) -> Result:
    """Return the result of one run from what was scanned and what the tailer
    saw.

    :param pattern: the watched path or glob, for the summary.
    :param missing: the ``missing`` option: status when no file is there.
    :param max_bytes: the per-run limit, named when the check is behind.
    """
    statuses = [thresholds.status(scanner.matches)]
    parts: list[str] = []
    if report.missing and not scanner.matches:
        statuses.append(Status[missing.upper()])
        parts.append(f"no file at {pattern}")
    else:
        parts.append(describe_matches(scanner))
        if not scanner.matches:
            parts[0] += (
                f" in {plural(report.files, 'file')} "
                f"({format_size(scanner.bytes)}, {plural(scanner.lines, 'line')} read)"
            )
    if report.behind_bytes:
        parts.append(
            f"behind by {format_size(report.behind_bytes)} "
            f"(reads at most {format_size(max_bytes)} per run), catching up"
        )
    # Lines that may have been missed are said, but change no status: the
    # same note comes for a compressed file whose lines were all read before.
    parts.extend(report.missed)
    if report.problems:
        statuses.append(Status.UNKNOWN)
        parts.extend(report.problems)

    metrics = {
        "matches": float(scanner.matches),
        "bytes_scanned": float(scanner.bytes),
        "lines_scanned": float(scanner.lines),
        "files": float(report.files),
        "behind_bytes": float(report.behind_bytes),
    }
    return Result(
        status=worst(statuses),
        summary=_shorten("; ".join(parts)),
        metrics=metrics,
        value=float(scanner.matches),
        evidence=format_evidence(scanner),
        attachments=attachments,
    )


class LogscanCheck:
    """A configured ``logscan`` check; keeps its log files open between runs."""

    def __init__(self, context: CheckContext) -> None:
        options = context.options
        self._name = context.name
        self._options = options
        self._rules = rules_from_options(options, f'[[check]] "{context.name}"')
        self._thresholds = thresholds_from_options(options)
        self._pattern = str(options["path"])
        self._attach = bool(options.get("attach_log", True))
        self._max_bytes = int(options.get("max_bytes_per_run") or 256 * 1024**2)
        self._tailer = Tailer(
            self._pattern,
            context.state_dir / OFFSETS_FILE,
            start_at_end=options.get("from", "end") == "end",
            partial_after=float(options.get("partial_after", 30.0)),
            max_bytes=self._max_bytes,
        )

    def run(self) -> Result:
        """Read what is new, count the matching lines, and keep the evidence."""
        scanner = new_scanner(self._rules, self._options)
        offered: list[Path | None] = []
        report = self._tailer.poll(_scan_with(scanner, offered))
        attachments: list[Path] = []
        for info, path in zip(scanner.segments, offered, strict=True):
            if info.matches and path is not None and path not in attachments:
                attachments.append(path)

        log.debug(
            "check %r: %s in %s over %s, behind by %s",
            self._name,
            plural(scanner.matches, "matching line"),
            format_size(scanner.bytes),
            plural(report.files, "file"),
            format_size(report.behind_bytes),
        )
        return build_result(
            scanner,
            report,
            pattern=self._pattern,
            thresholds=self._thresholds,
            missing=str(self._options.get("missing", "unknown")),
            max_bytes=self._max_bytes,
            attachments=tuple(attachments) if self._attach else (),
        )

    def close(self) -> None:
        """Close the log files kept open; the offsets stay saved."""
        self._tailer.close()


def _scan_with(
    scanner: LineScanner, offered: list[Path | None]
) -> Callable[[Segment, Callable[[memoryview], int], int], Scanned]:
    def scan(
        segment: Segment, readinto: Callable[[memoryview], int], budget: int
    ) -> Scanned:
        offered.append(segment.attach)
        return scanner.scan(
            readinto,
            label=segment.label,
            first_line=segment.first_line,
            budget=budget,
            flush_partial=segment.flush_partial,
        )

    return scan


def validate_options(options: Mapping[str, Any]) -> list[OptionProblem]:
    """Return the problems ``notifier config check`` reports for a logscan
    entry beyond each option's kind: an encoding the scanner cannot read
    (unknown to Python, or one such as UTF-16 that does not write a line
    feed as one byte), an empty pattern or ignore pattern."""
    found = rules_problems(
        tuple(options.get("pattern") or ()),
        tuple(options.get("ignore") or ()),
        str(options.get("encoding") or "utf-8"),
    )
    return [(problem.key, str(problem), problem.hint) for problem in found]


@hookimpl
def notifier_check_types() -> list[CheckType]:
    """Provide the ``logscan`` check type."""
    return [
        CheckType(
            name="logscan",
            create=LogscanCheck,
            options=OPTIONS,
            summary="Alert on new lines in log files that match a pattern.",
            validate=validate_options,
            hints={"attach": ATTACH_HINT},
            # "OK" only means "no new matching lines": a burst of errors is
            # one message, not a PROBLEM and then a RECOVERY a run later.
            common_defaults={"recovery": False},
        )
    ]
