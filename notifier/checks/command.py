"""The ``command`` check: runs any Nagios / Monitoring-Plugins executable.

The program is started from an argument list (never through a shell) in a
process group of its own, with standard input closed. Its exit status is the
verdict (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, anything else UNKNOWN), the
first line of its output is the summary, the performance data become metrics
(see :mod:`notifier.checks.perfdata` for the naming rule) and the long output
becomes evidence. ``Result.value`` is the first performance datum's value, in
its base unit, so ``clear_below``/``clear_above`` work on it.

When the run reaches its time budget the whole process group gets SIGTERM,
then SIGKILL after a short grace, so a plugin's own children die with it.
Children left behind by a plugin that exited normally are killed too.

:func:`run_command` is public: a plugin that starts programs of its own can
use it to get the same time limit and clean-up.

The program gets a small environment (:func:`plugin_environment`): the
search path, locale, time zone and home of the daemon, plus the check's
``env``. Not the rest: the daemon's environment can hold the SMTP password
(``[smtp] password_env``) or point at its systemd credentials, and a plugin
that prints its environment would put them in an alert.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
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
)
from notifier.checks.perfdata import metrics_of, split_output
from notifier.options import Option
from notifier.units import format_duration, format_size

log = logging.getLogger(__name__)

STDOUT_LIMIT: Final = 64 * 1024
"""Bytes of standard output kept; the rest is read and dropped."""
STDERR_LIMIT: Final = 8 * 1024
"""Bytes of standard error kept."""
MAX_SUMMARY: Final = 300
MAX_EVIDENCE_LINES: Final = 200
"""Lines of long output and standard error kept as evidence."""
_LINGER: Final = 0.5
_POLL: Final = 0.05

OPTIONS: Final = (
    Option(
        "command",
        "str_list",
        required=True,
        minimum=1,
        help="The program and its arguments as a list, run without a shell: "
        '["/usr/lib/nagios/plugins/check_disk", "-w", "10%", "-p", "/"].',
    ),
    Option(
        "env",
        "str_map",
        default={},
        help='Extra environment variables for the program, such as { LC_ALL = "C" }.',
    ),
    Option(
        "cwd",
        "path",
        default=None,
        help="Folder the program runs in; unset means the daemon's own.",
    ),
)


class CommandError(Exception):
    """The program could not be started; the message says why, for a person."""


@dataclass(frozen=True)
class Finished:
    """How a program run by :func:`run_command` ended.

    :param returncode: the exit status; negative is the signal that killed
        it; ``None`` when it was killed because it ran out of time.
    :param stdout: standard output, at most ``STDOUT_LIMIT`` bytes.
    :param stderr: standard error, at most ``STDERR_LIMIT`` bytes.
    :param truncated: some output was dropped because of the limits.
    :param elapsed: seconds from start until it ended or was killed.
    """

    returncode: int | None
    stdout: bytes
    stderr: bytes
    truncated: bool
    elapsed: float

    @property
    def timed_out(self) -> bool:
        """Return whether the program was killed for running out of time."""
        return self.returncode is None


@dataclass(frozen=True)
class Budget:
    """How a check's timeout is shared: running, then the kill's grace."""

    run: float
    grace: float


def budget_for(timeout: float) -> Budget:
    """Return the program's share of ``timeout`` seconds.

    A margin (a fifth of the timeout, at most 2s) is kept back so that the
    program is killed and the result built before the core gives up on the
    check; half the margin is the grace between SIGTERM and SIGKILL.
    """
    margin = min(2.0, timeout * 0.2)
    return Budget(run=timeout - margin, grace=margin / 2)


def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    grace: float = 1.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Finished:
    """Run ``argv`` in a new process group and collect its output.

    Output beyond the limits is read and dropped, so a chatty program never
    blocks on a full pipe. When ``timeout`` seconds pass, the whole group
    gets SIGTERM, then SIGKILL ``grace`` seconds later (or as soon as the
    program itself has exited). Processes of the group still alive after
    the program exits are killed as well.

    :param env: the whole environment; ``None`` means the daemon's own.
    :raises CommandError: when the program cannot be started (not found,
        not executable, bad working folder or environment).
    """
    started = time.monotonic()
    process = _start(argv, env, cwd)
    deadline = started + timeout
    try:
        stdout, stderr, truncated = _collect(process, deadline)
        in_time = _await_exit(process, deadline)
        if not in_time:
            _terminate_group(process, grace)
    finally:
        _kill_leftovers(process)
        returncode = process.wait()
    elapsed = time.monotonic() - started
    return Finished(returncode if in_time else None, stdout, stderr, truncated, elapsed)


def _start(
    argv: Sequence[str], env: Mapping[str, str] | None, cwd: Path | None
) -> subprocess.Popen[bytes]:
    program = argv[0] if argv else ""
    if cwd is not None and not cwd.is_dir():
        msg = f"working folder {str(cwd)!r} does not exist"
        raise CommandError(msg)
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        msg = f"executable {program!r} not found"
        if "/" not in program:
            msg += " in PATH"
        if " " in program and len(argv) == 1:
            msg += (
                "; command is a list of arguments, not a shell line: "
                f"write {program.split()!r}"
            )
        raise CommandError(msg) from exc
    except PermissionError as exc:
        msg = f"{program!r} is not executable (permission denied)"
        raise CommandError(msg) from exc
    except OSError as exc:
        msg = f"cannot run {program!r}: {exc.strerror or exc}"
        raise CommandError(msg) from exc
    except ValueError as exc:
        msg = f"cannot run {program!r}: {exc}"
        raise CommandError(msg) from exc


def _collect(
    process: subprocess.Popen[bytes], deadline: float
) -> tuple[bytes, bytes, bool]:
    """Read both pipes until they close, the deadline passes, or the program
    has exited and children it left keep the pipes open."""
    stdout, stderr = process.stdout, process.stderr
    if stdout is None or stderr is None:
        msg = "the program's output pipes were not opened"
        raise CommandError(msg)
    stdout_fd, stderr_fd = stdout.fileno(), stderr.fileno()
    kept = {stdout_fd: bytearray(), stderr_fd: bytearray()}
    limits = {stdout_fd: STDOUT_LIMIT, stderr_fd: STDERR_LIMIT}
    truncated = False
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        for descriptor in kept:
            selector.register(descriptor, selectors.EVENT_READ)
        while selector.get_map():
            now = time.monotonic()
            if exited_at is None and _has_exited(process):
                exited_at = now
            lingering = exited_at is not None and now - exited_at > _LINGER
            if now >= deadline or lingering:
                break
            for key, _ in selector.select(timeout=min(deadline - now, 0.25)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                room = max(limits[key.fd] - len(kept[key.fd]), 0)
                kept[key.fd] += chunk[:room]
                truncated = truncated or len(chunk) > room
    stdout.close()
    stderr.close()
    return bytes(kept[stdout_fd]), bytes(kept[stderr_fd]), truncated


def _has_exited(process: subprocess.Popen[bytes]) -> bool:
    """Return whether the program exited, without reaping it.

    The unreaped program keeps its pid, and so its process group id, from
    being reused; that makes a later ``killpg`` safe.
    """
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    try:
        return os.waitid(os.P_PID, process.pid, flags) is not None
    except ChildProcessError:
        return True


def _await_exit(process: subprocess.Popen[bytes], deadline: float) -> bool:
    while not _has_exited(process):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    return True


def _terminate_group(process: subprocess.Popen[bytes], grace: float) -> None:
    _signal_group(process, signal.SIGTERM)
    give_up = time.monotonic() + grace
    while not _has_exited(process) and time.monotonic() < give_up:
        time.sleep(_POLL)
    _signal_group(process, signal.SIGKILL)


def _kill_leftovers(process: subprocess.Popen[bytes]) -> None:
    _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


class CommandCheck:
    """A configured ``command`` check."""

    def __init__(self, context: CheckContext) -> None:
        self._context = context
        self._argv = tuple(str(part) for part in context.options["command"])
        self._extra_env = dict(context.options.get("env") or {})
        self._cwd: Path | None = context.options.get("cwd")

    def run(self) -> Result:
        """Run the program once and translate what it said."""
        budget = budget_for(self._context.timeout)
        environment = {**plugin_environment(), **self._extra_env}
        try:
            finished = run_command(
                self._argv,
                timeout=budget.run,
                grace=budget.grace,
                env=environment,
                cwd=self._cwd,
            )
        except CommandError as exc:
            return Result.unknown(str(exc))

        log.debug(
            "check %r: command %r ended with %s after %.2fs",
            self._context.name,
            self._argv[0],
            finished.returncode,
            finished.elapsed,
        )
        if finished.timed_out:
            log.warning(
                "check %r: command %r timed out after %s; its process group was killed",
                self._context.name,
                self._argv[0],
                format_duration(budget.run),
            )
        return result_of(finished, self._context.timeout)


def result_of(finished: Finished, timeout: float) -> Result:
    """Return the check result for a finished program (the Nagios protocol).

    :param timeout: the check's timeout in seconds, named in the summary when
        the program ran out of time (it was killed a little before, so that
        the result is in before the core gives up).
    """
    output = split_output(finished.stdout.decode("utf-8", errors="replace"))
    errors = finished.stderr.decode("utf-8", errors="replace").splitlines()
    said = output.summary or next((line.strip() for line in errors if line.strip()), "")
    evidence = [
        *output.long_output,
        *(f"stderr: {line}" for line in errors if line.strip()),
    ]
    if len(evidence) > MAX_EVIDENCE_LINES:
        hidden = len(evidence) - MAX_EVIDENCE_LINES + 1
        evidence[MAX_EVIDENCE_LINES - 1 :] = [f"({hidden} more lines not shown)"]
    if finished.truncated:
        evidence.append(f"(output cut at {format_size(STDOUT_LIMIT)})")
    metrics = metrics_of(output.perfdata)
    value = next(iter(metrics.values()), None)

    code = finished.returncode
    if code is None:
        status = Status.UNKNOWN
        summary = f"command timed out after {format_duration(timeout)}"
        if said:
            summary += f" (it had said: {said})"
    elif code < 0:
        status = Status.UNKNOWN
        summary = f"command killed by signal {_signal_name(-code)}"
        if said:
            summary += f" (it had said: {said})"
    elif code in (0, 1, 2, 3):
        status = Status(code)
        summary = said or f"command exited with status {code} and printed nothing"
    else:
        status = Status.UNKNOWN
        summary = f"command exited with status {code}"
        if said:
            summary += f": {said}"
    return Result(
        status=status,
        summary=_shorten(summary),
        metrics=metrics,
        value=value,
        evidence=tuple(evidence),
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _shorten(text: str) -> str:
    line = " ".join(text.split())
    if len(line) <= MAX_SUMMARY:
        return line
    return line[: MAX_SUMMARY - 3].rstrip() + "..."


def validate_options(options: Mapping[str, Any]) -> list[OptionProblem]:
    """Return what would stop the program from being started, found at
    configuration time: an empty program name, NUL characters (no argument
    or environment entry can hold one), environment names with '='."""
    problems: list[OptionProblem] = []
    argv = [str(part) for part in options.get("command") or ()]
    if argv and not argv[0]:
        problems.append(
            (
                "command",
                "the program, the first element, is empty",
                'put the program first, such as ["/usr/bin/check_x", "-w", "5"]',
            )
        )
    for index, part in enumerate(argv):
        if "\0" in part:
            problems.append(
                ("command", f"element {index + 1} holds a NUL character", None)
            )
    for name, value in dict(options.get("env") or {}).items():
        if not name or "=" in name or "\0" in name:
            problems.append(
                (
                    "env",
                    f"{name!r} is not an environment variable name",
                    "a name is not empty and has no '=' or NUL in it",
                )
            )
        elif "\0" in str(value):
            problems.append(
                ("env", f"the value of {name!r} holds a NUL character", None)
            )
    return problems


PASSED_ENVIRONMENT: Final = frozenset(
    {"PATH", "LANG", "LANGUAGE", "TZ", "HOME", "USER", "LOGNAME", "TMPDIR"}
)
"""Variables of the daemon's environment a command check's program sees."""
DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def plugin_environment() -> dict[str, str]:
    """Return the environment a command check's program starts with.

    Only :data:`PASSED_ENVIRONMENT` and the ``LC_*`` locale variables of the
    daemon's own; ``PATH`` falls back to the usual system folders.
    """
    passed = {
        name: value
        for name, value in os.environ.items()
        if name in PASSED_ENVIRONMENT or name.startswith("LC_")
    }
    passed.setdefault("PATH", DEFAULT_PATH)
    return passed


@hookimpl
def notifier_check_types() -> list[CheckType]:
    """Provide the ``command`` check type."""
    return [
        CheckType(
            name="command",
            create=CommandCheck,
            options=OPTIONS,
            summary="Run a Nagios / Monitoring-Plugins compatible program.",
            validate=validate_options,
        )
    ]
