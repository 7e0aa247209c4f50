"""``notifier check [NAME...] [--json]``: run checks once and print what they say.

The exit status follows the Nagios plugin convention: 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN, the most severe result wins (a CRITICAL is never
hidden behind an UNKNOWN).

State: a one-shot run never writes the daemon's state. Each check gets a
private temporary state folder, seeded with a copy of what the daemon saved
for it under ``<state_dir>/checks/<name>`` when that is readable, and removed
afterwards. So a log check shows what is new since the daemon last looked,
without taking those lines away from the daemon; and a user who cannot read
``/var/lib/notifier`` still gets every check run (a note on stderr says that
saved state was not available).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from notifier.checks.base import Check, Result, Status, worst
from notifier.cli import add_config_argument
from notifier.cli.output import load_reserved, reserved_stdout
from notifier.config import CheckSpec, Config
from notifier.errors import UsageError
from notifier.loader import config_path
from notifier.options import suggest
from notifier.plugins import Registry
from notifier.runner import create_check, run_check, warmup_of

EVIDENCE_SHOWN: Final = 5
"""Evidence lines printed under a row that is not OK; --json has them all."""

LINE_WIDTH: Final = 200
"""Longest evidence line printed in the table."""


def register(subparsers: Any) -> None:
    """Add the ``check`` command."""
    parser = subparsers.add_parser(
        "check",
        help="run checks once and print their results",
        description="Run the configured checks once and print a table. The exit "
        "status is the worst result's: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. "
        "The daemon's saved state is read but never changed.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="checks to run, by name (default: every enabled check)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON array instead of a table"
    )
    add_config_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the selected checks once; return the worst status as the exit status.

    :raises ConfigError: when the configuration is invalid (exit 78).
    :raises UsageError: when a NAME is not a configured check (exit 64).
    """
    path = config_path(args.config)
    loaded = load_reserved(path)
    specs = select_checks(loaded.config, args.names)
    if not specs:
        print(f"notifier: no enabled checks in {path}", file=sys.stderr)

    # Checks run in this process and may print; the table or JSON must be
    # the only thing on stdout, so their output is sent to stderr.
    with (
        reserved_stdout() as output,
        tempfile.TemporaryDirectory(
            prefix="notifier-check-", ignore_cleanup_errors=True
        ) as scratch,
    ):
        config = scratch_config(loaded.config, Path(scratch), specs)
        results = run_checks(specs, loaded.registry, config)
        rows = list(zip(specs, results, strict=True))
        output.write(render_json(rows) if args.json else render_table(rows))
    return int(worst([result.status for result in results]))


def select_checks(config: Config, names: Sequence[str]) -> list[CheckSpec]:
    """Return the checks named, in the order given, or every enabled one.

    A check named explicitly runs even when ``enabled = false``.

    :raises UsageError: naming every unknown NAME, with a suggestion.
    """
    if not names:
        return [spec for spec in config.checks if spec.common.enabled]

    known = [spec.name for spec in config.checks]
    unknown = [name for name in dict.fromkeys(names) if name not in known]
    if unknown:
        problems = []
        for name in unknown:
            hint = suggest(name, known)
            problems.append(f"{name!r}" + (f" ({hint})" if hint else ""))
        listing = ", ".join(known) if known else "none"
        msg = (
            f"no check named {', '.join(problems)} in {config.path}; "
            f"the configured checks are: {listing}"
        )
        raise UsageError(msg)
    return [config.check(name) for name in dict.fromkeys(names)]


def scratch_config(config: Config, scratch: Path, specs: Sequence[CheckSpec]) -> Config:
    """Return ``config`` with its state folder moved to ``scratch``, seeded
    with a copy of each selected check's saved state that can be read."""
    saved = config.notifier.state_dir / "checks"
    unreadable: OSError | None = None
    for spec in specs:
        try:
            if (saved / spec.name).is_dir():
                shutil.copytree(
                    saved / spec.name, scratch / "checks" / spec.name, symlinks=True
                )
        except OSError as exc:
            unreadable = exc
    if unreadable is not None:
        reason = getattr(unreadable, "strerror", None) or str(unreadable)
        print(
            f"notifier: note: cannot read the saved state in {saved} ({reason}); "
            "checks run as if for the first time",
            file=sys.stderr,
        )
    notifier = dataclasses.replace(config.notifier, state_dir=scratch)
    return dataclasses.replace(config, notifier=notifier)


def run_checks(
    specs: Sequence[CheckSpec], registry: Registry, config: Config
) -> list[Result]:
    """Create and run ``specs`` concurrently; return their results in order.

    Checks that measure since their creation (cpu, load) are given their
    ``warmup`` before they run, in one wait shared by all.
    """
    if not specs:
        return []
    workers = max(1, min(len(specs), config.notifier.workers))
    with ThreadPoolExecutor(workers, thread_name_prefix="notifier-check") as pool:
        created_at = time.monotonic()
        checks: list[Check] = list(
            pool.map(lambda spec: create_check(spec, registry, config), specs)
        )
        waited = time.monotonic() - created_at
        remaining = max(warmup_of(check) for check in checks) - waited
        if remaining > 0:
            time.sleep(remaining)
        return list(
            pool.map(
                lambda pair: run_check(pair[1], pair[0].common.timeout, pair[0].name),
                zip(specs, checks, strict=True),
            )
        )


def render_table(rows: Sequence[tuple[CheckSpec, Result]]) -> str:
    """Return one line per check (name, status, summary), with the first
    evidence lines indented under each row that is not OK."""
    width = max([len("CHECK"), *(len(spec.name) for spec, _ in rows)])
    lines = [f"{'CHECK':<{width}}  {'STATUS':<8}  SUMMARY"]
    for spec, result in rows:
        status = result.status.name
        lines.append(f"{spec.name:<{width}}  {status:<8}  {_clean(result.summary)}")
        if result.status is Status.OK:
            continue
        for line in result.evidence[:EVIDENCE_SHOWN]:
            lines.append(f"    {_clean(line)}")
        hidden = len(result.evidence) - EVIDENCE_SHOWN
        if hidden > 0:
            lines.append(f"    ... {hidden} more (--json shows them all)")
    return "\n".join(lines) + "\n"


def render_json(rows: Sequence[tuple[CheckSpec, Result]]) -> str:
    """Return the results as a JSON array, one object per check.

    Numbers that JSON cannot hold (NaN, infinity) become ``null``.
    """
    document = [
        {
            "name": spec.name,
            "type": spec.type,
            "status": result.status.name,
            "summary": result.summary,
            "value": _number(result.value),
            "metrics": {key: _number(value) for key, value in result.metrics.items()},
            "evidence": [str(line) for line in result.evidence],
            "attachments": [str(path) for path in result.attachments],
        }
        for spec, result in rows
    ]
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def _number(value: object) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _clean(text: str) -> str:
    """Return ``text`` safe for a terminal: one line, no control characters,
    at most :data:`LINE_WIDTH` long (evidence can be a log line anyone wrote)."""
    cleaned = "".join(char if char.isprintable() else "?" for char in str(text))
    if len(cleaned) > LINE_WIDTH:
        return cleaned[: LINE_WIDTH - 3] + "..."
    return cleaned
