"""Creating a configured check and running it once, safely.

Whatever a check does, the caller gets a :class:`Result` back within the
check's timeout: an exception, a hang, or a wrong return value each become an
UNKNOWN result with the reason in one line. The daemon and ``notifier check``
both run checks through here, so they behave the same.

Output: the runner does not touch ``sys.stdout``. Swapping it around a run
would be process-wide and racy (checks run in several threads at once, and an
abandoned run keeps going after the swap is undone). Keeping stdout clean for
machine-readable output is the job of whoever owns the whole process; see
``notifier check --json``, which moves file descriptor 1 to stderr once,
before any check starts.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from notifier.atomicfile import make_folder
from notifier.checks.base import Check, CheckContext, Result, Status
from notifier.errors import ConfigError, PermissionRefusedError
from notifier.units import format_duration

if TYPE_CHECKING:
    from pathlib import Path

    from notifier.config import CheckSpec, Config
    from notifier.plugins import Registry

log = logging.getLogger(__name__)

STATE_DIR_MODE: Final = 0o700
SUMMARY_WIDTH: Final = 300
"""Longest reason kept from an exception message."""


@dataclass
class _Stuck:
    """A run abandoned after its timeout, still going as ``call``."""

    call: _Call
    since: float
    skips: int = 0


# Threads of runs that timed out and were abandoned, by id() of their check.
# While one is alive its check is not started again: one stuck run per check
# at most, and no two runs of a check ever overlap. An entry holds the check
# (through the thread's target) so its id() cannot be reused meanwhile.
_abandoned: dict[int, _Stuck] = {}
_abandoned_lock = threading.Lock()


@dataclass
class _Outcome:
    """What the worker thread hands back: a value or the exception raised."""

    value: object = None
    error: BaseException | None = None


def run_check(check: Check, timeout: float, name: str) -> Result:
    """Run ``check.run()`` once and return its result, whatever happens.

    The run happens in a daemon thread named after the check. An exception
    becomes UNKNOWN ``check raised ValueError: ...``; a run past ``timeout``
    seconds becomes UNKNOWN ``check timed out after 30s`` and its thread is
    abandoned; a return value that is not a :class:`Result` becomes UNKNOWN
    naming its type. While an abandoned run of ``check`` is still going, the
    check is not started again and the result says so.

    :param timeout: seconds to wait for the run.
    :param name: the check's name, for the thread and the log.
    """
    refusal = _refusal_while_stuck(check, name)
    if refusal is not None:
        return refusal

    # Limitation: Python cannot kill a thread. A run past its timeout keeps
    # running in the background until it returns by itself; the check is
    # not started again meanwhile (see _abandoned), so a hung check costs
    # one thread, not one per tick.
    outcome, call = _start(check.run, f"check-{name}", check)
    call.join(timeout)
    if call.is_alive():
        with _abandoned_lock:
            _abandoned[id(check)] = _Stuck(call, time.monotonic())
        log.warning(
            "check %r timed out after %s; its run is abandoned",
            name,
            format_duration(timeout),
        )
        return Result.unknown(f"check timed out after {format_duration(timeout)}")

    result = _judge(outcome, name)
    log.debug("check %r: %s %s", name, result.status.name, result.summary)
    return result


def _refusal_while_stuck(check: Check, name: str) -> Result | None:
    """Return UNKNOWN "not started" while an abandoned run of ``check`` goes on."""
    with _abandoned_lock:
        stuck = _abandoned.get(id(check))
        if stuck is not None and not stuck.call.is_alive():
            del _abandoned[id(check)]
            stuck = None
    if stuck is None:
        return None
    elapsed = time.monotonic() - stuck.since
    since = f"{format_duration(round(elapsed))} ago" if elapsed >= 1 else "just now"
    stuck.skips += 1
    # Said once per stuck run; every tick after that would only repeat it.
    log.log(
        logging.WARNING if stuck.skips == 1 else logging.DEBUG,
        "check %r not started: its run abandoned %s is still going",
        name,
        since,
    )
    return Result.unknown(
        f"check not started: its previous run timed out {since} and has "
        "not returned yet"
    )


def _start(
    function: Callable[[], object],
    thread_name: str,
    key: object,
    on_done: Callable[[], None] | None = None,
    turn: threading.Lock | None = None,
) -> tuple[_Outcome, _Call]:
    """Call ``function`` in a worker thread; ``key`` is the object whose
    abandoned-run entry the call clears when it finally ends, ``on_done``
    is called in that thread once the outcome is set, and ``turn`` is a lock
    the call waits for (see :data:`TURN_WAIT_SECONDS`) and holds until then."""
    call = _Call(function, key, on_done, turn)
    _workers.submit(call, thread_name)
    return call.outcome, call


class _Call:
    """One call of a function in a worker thread: what it produced, and
    whether it has ended (the thread itself lives on for the next call)."""

    def __init__(
        self,
        function: Callable[[], object],
        key: object,
        on_done: Callable[[], None] | None,
        turn: threading.Lock | None = None,
    ) -> None:
        self.function = function
        self.key = key
        self.on_done = on_done
        self.turn = turn
        self.outcome = _Outcome()
        self._ended = threading.Event()

    def is_alive(self) -> bool:
        """Return whether the call is still going."""
        return not self._ended.is_set()

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds for the call to end."""
        self._ended.wait(timeout)

    def run(self) -> None:
        """Call the function, keep what it did, then report the end; all of
        it in turn, if the call takes turns."""
        has_turn = self.turn is not None and self.turn.acquire(
            timeout=TURN_WAIT_SECONDS
        )
        try:
            self._run()
        finally:
            if has_turn and self.turn is not None:
                self.turn.release()

    def _run(self) -> None:
        try:
            self.outcome.value = self.function()
        except BaseException as exc:  # a check calling sys.exit() is reported too
            self.outcome.error = exc
        finally:
            with _abandoned_lock:
                entry = _abandoned.get(id(self.key))
                if entry is not None and entry.call is self:
                    del _abandoned[id(self.key)]
            self._ended.set()
        if self.on_done is not None:
            self.on_done()


class _Workers:
    """Threads that run one call at a time and then wait for the next.

    A call never waits for a free thread: when none is idle a new one
    starts, so a hung check holds one thread and delays nothing, exactly as
    with a thread per call. Keeping the threads matters for the idle cost:
    on a small virtual machine starting a thread costs more CPU time than a
    disk or load check itself, and the daemon runs thousands of checks an
    hour. The most recently idle thread is used first, so threads beyond
    what the checks need at once go unused and end after ``idle_seconds``.
    """

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[tuple[_Call, str]]] = []

    def submit(self, call: _Call, thread_name: str) -> None:
        """Run ``call`` in an idle thread, or in a new one if none is idle."""
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is not None:
            inbox.put((call, thread_name))
            return
        inbox = queue.SimpleQueue()
        thread = threading.Thread(
            target=self._serve, args=(inbox,), name=thread_name, daemon=True
        )
        inbox.put((call, thread_name))
        thread.start()

    def _serve(self, inbox: queue.SimpleQueue[tuple[_Call, str]]) -> None:
        thread = threading.current_thread()
        work: tuple[_Call, str] | None = inbox.get()
        while work is not None:
            call, thread.name = work
            try:
                call.run()
            except Exception:
                log.exception("reporting the result of %s failed", thread.name)
            work = self._next(inbox)

    def _next(
        self, inbox: queue.SimpleQueue[tuple[_Call, str]]
    ) -> tuple[_Call, str] | None:
        """Wait idle for the next call; ``None`` when the thread should end."""
        with self._lock:
            threading.current_thread().name = IDLE_WORKER_NAME
            self._idle.append(inbox)
        try:
            return inbox.get(timeout=self.idle_seconds)
        except queue.Empty:
            with self._lock:
                if inbox in self._idle:
                    self._idle.remove(inbox)
                    return None
            # Taken off the idle list just as the wait ended: a call is coming.
            return inbox.get()


TURN_WAIT_SECONDS: Final = 0.05
"""Longest a check run waits for the run before it to end before it starts
anyway (:class:`CheckRunner` runs take turns)."""
IDLE_WORKER_SECONDS: Final = 600.0
"""How long a worker thread with nothing to run waits before it ends."""
IDLE_WORKER_NAME: Final = "check-worker (idle)"
_workers = _Workers(IDLE_WORKER_SECONDS)


def _judge(outcome: _Outcome, name: str) -> Result:
    """Turn what a run produced into a well-formed result."""
    if outcome.error is not None:
        reason = describe_exception(outcome.error)
        log.warning(
            "check %r raised %s",
            name,
            reason,
            exc_info=outcome.error if log.isEnabledFor(logging.DEBUG) else None,
        )
        return Result.unknown(f"check raised {reason}")

    value = outcome.value
    if not isinstance(value, Result):
        log.warning("check %r returned %s instead of a Result", name, _kind(value))
        return Result.unknown(f"check returned {_kind(value)}, not a Result")
    status: object = value.status  # a plugin may have passed a bare int
    if not isinstance(status, Status):
        log.warning("check %r returned a status of %r", name, status)
        return Result.unknown(
            f"check returned status {status!r}, not OK, WARNING, CRITICAL or UNKNOWN"
        )

    # The summary is promised to be one line: tables and mail subjects rely
    # on it, so a multi-line one is folded rather than passed on.
    summary = " ".join(str(value.summary).split())
    if summary != value.summary:
        value = dataclasses.replace(value, summary=summary)
    return value


Report = Callable[[Result, float], None]
"""Receives a run's result and how long it took, in seconds."""


@dataclass
class _LiveRun:
    """A run started by :class:`CheckRunner` and not yet reported."""

    name: str
    check: Check
    report: Report
    started: float
    deadline: float
    timeout: float
    outcome: _Outcome
    call: _Call | None = None
    reported: bool = False


class CheckRunner:
    """Runs checks for the daemon so that no check ever waits for another.

    :meth:`start` returns at once: each run has a thread of its own (an
    idle one kept from an earlier run, see :class:`_Workers`), and its
    result goes to the ``report`` callback from that thread when the run
    returns, or from the runner's deadline thread when the run passes its
    timeout (UNKNOWN "timed out"), whichever comes first; exactly once.

    Threads are bounded by the checks, not by a pool that hung checks could
    fill: a check has at most one live run (a tick that finds it still
    running is skipped, as a coalesced run) and at most one abandoned run
    (while it is alive, every tick reports UNKNOWN "not started").

    Runs take turns: each waits for the one before it to end, for
    :data:`TURN_WAIT_SECONDS` at most, then starts anyway. Checks that start
    at the same moment (see the daemon's schedule grid) mostly take well
    under a millisecond; run at once, on a machine of two cores, they would
    fight for the interpreter's lock and pass it back and forth at every
    file they read, and those switches cost more CPU time than the checks
    (about 15% of the idle daemon's). In turn, a slow or hung check delays
    each of the others by that wait and no more.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Condition()
        self._live: dict[int, _LiveRun] = {}
        self._stopping = False
        self._turn = threading.Lock()
        # The deadline the watcher sleeps until (infinity: no run is live).
        # It is woken only for an earlier one, so a quiet daemon's watcher
        # wakes once per run at most, never on a timer of its own.
        self._watching_until = math.inf
        self._deadlines = threading.Thread(
            target=self._watch_deadlines, name="check-deadlines", daemon=True
        )
        self._deadlines.start()

    def start(self, name: str, check: Check, timeout: float, report: Report) -> bool:
        """Start one run of ``check`` unless one is still going.

        :returns: whether a run started; ``False`` when the previous run is
            still within its timeout (this tick is skipped) or was abandoned
            (then ``report`` has already received UNKNOWN "not started").
        """
        with self._lock:
            if id(check) in self._live:
                log.debug("check %r still running; this run is skipped", name)
                return False
        refusal = _refusal_while_stuck(check, name)
        if refusal is not None:
            report(refusal, 0.0)
            return False

        now = self._clock()
        run = _LiveRun(name, check, report, now, now + timeout, timeout, _Outcome())
        # Held while starting: the run may end before _start returns, and its
        # _finished must then find the outcome and call already in place.
        with self._lock:
            self._live[id(check)] = run
            run.outcome, run.call = _start(
                check.run,
                f"check-{name}",
                check,
                on_done=lambda: self._finished(run),
                turn=self._turn,
            )
            if run.deadline < self._watching_until:
                self._lock.notify_all()
        return True

    def running(self) -> int:
        """Return how many runs are going and not yet reported."""
        with self._lock:
            return len(self._live)

    def stop(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for live runs, then stop the watcher.

        Runs still going after that are left to finish or die with the
        process; their results are not reported.
        """
        deadline = self._clock() + grace
        with self._lock:
            while self._live and self._clock() < deadline:
                self._lock.wait(min(0.1, max(0.0, deadline - self._clock())))
            self._stopping = True
            self._live.clear()
            self._lock.notify_all()

    def _finished(self, run: _LiveRun) -> None:
        with self._lock:
            if run.reported:
                log.info(
                    "check %r returned after its timeout; that late result is dropped",
                    run.name,
                )
                return
            run.reported = True
            self._live.pop(id(run.check), None)
        result = _judge(run.outcome, run.name)
        log.debug("check %r: %s %s", run.name, result.status.name, result.summary)
        run.report(result, self._clock() - run.started)

    def _watch_deadlines(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                now = self._clock()
                expired = [run for run in self._live.values() if now >= run.deadline]
                for run in expired:
                    run.reported = True
                    del self._live[id(run.check)]
                    self._abandon(run, now)
                if not expired:
                    self._watching_until = min(
                        (run.deadline for run in self._live.values()), default=math.inf
                    )
                    wait = self._watching_until - now
                    self._lock.wait(None if wait == math.inf else max(0.01, wait))
                    self._watching_until = math.inf
                    continue
            for run in expired:
                timeout = format_duration(run.timeout)
                log.warning(
                    "check %r timed out after %s; its run is abandoned",
                    run.name,
                    timeout,
                )
                run.report(
                    Result.unknown(f"check timed out after {timeout}"), run.timeout
                )

    def _abandon(self, run: _LiveRun, now: float) -> None:
        """Remember a run past its deadline so its check is not started again
        while it goes on (the same rule as :func:`run_check`)."""
        call = run.call
        if call is None or not call.is_alive():
            return
        with _abandoned_lock:
            _abandoned[id(run.check)] = _Stuck(call, now)


def describe_exception(error: BaseException) -> str:
    """Return ``ValueError: first line of the message``, at most one line."""
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__
    message = lines[0]
    if len(message) > SUMMARY_WIDTH:
        message = message[: SUMMARY_WIDTH - 3] + "..."
    return f"{type(error).__name__}: {message}"


def _kind(value: object) -> str:
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def warmup_of(check: object) -> float:
    """Return how long after creation ``check`` needs before its first run.

    A check may set a ``warmup`` attribute (seconds): the cpu check, for
    one, compares with a sample taken when it was created. The daemon's
    first run comes an interval later anyway; one-shot callers should wait
    this long. Checks without the attribute need no wait.
    """
    warmup = getattr(check, "warmup", 0.0)
    if isinstance(warmup, int | float) and not isinstance(warmup, bool):
        return max(0.0, float(warmup))
    return 0.0


class FailedCheck:
    """Stands in for a check that could not be created: every run is UNKNOWN."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def run(self) -> Result:
        """Report why the check does not exist."""
        return Result.unknown(self.reason)


def create_check(spec: CheckSpec, registry: Registry, config: Config) -> Check:
    """Build the check that ``spec`` configures, never failing for the check's
    own reasons.

    The check's ``state_dir`` is ``<[notifier] state_dir>/checks/<name>``,
    created with mode 0700 if missing. If its type is missing, its
    ``create`` raises, hangs past the check's timeout or returns something
    without ``run()``, the returned check reports UNKNOWN with that reason on
    every run, so one broken check never stops the others.

    :raises PermissionRefusedError: when the state folder cannot be created
        for lack of permission.
    :raises ConfigError: when the state folder cannot be created for another
        reason. Both messages name the folder and how to fix it.
    """
    state_dir = config.notifier.state_dir / "checks" / spec.name
    make_state_dir(state_dir, config)
    info = registry.check_types.get(spec.type)
    if info is None:
        return FailedCheck(f"check type {spec.type!r} is not provided by any plugin")

    context = CheckContext(
        name=spec.name,
        options=spec.options,
        state_dir=state_dir,
        hostname=config.notifier.hostname,
        timeout=spec.common.timeout,
    )
    create = info.check_type.create
    outcome, call = _start(lambda: create(context), f"create-{spec.name}", create)
    call.join(spec.common.timeout)

    # A broken plugin must not take the daemon down: report it on each run.
    if call.is_alive():
        reason = (
            f"creating the check timed out after {format_duration(spec.common.timeout)}"
        )
    elif outcome.error is not None:
        reason = f"check could not be created: {describe_exception(outcome.error)}"
    elif not callable(getattr(outcome.value, "run", None)):
        reason = (
            f"check type {spec.type!r} created {_kind(outcome.value)} without run()"
        )
    else:
        return outcome.value  # type: ignore[return-value]
    log.warning(
        "check %r: %s (%s)",
        spec.name,
        reason,
        info.origin,
        exc_info=outcome.error if log.isEnabledFor(logging.DEBUG) else None,
    )
    return FailedCheck(reason)


def make_state_dir(path: Path, config: Config) -> None:
    """Create the check folder ``path`` (mode 0700) and its parents if missing.

    :raises PermissionRefusedError: when the user may not create it.
    :raises ConfigError: when it cannot be created for another reason (a
        file in the way, a read-only filesystem); it names ``state_dir``.
    """
    try:
        make_folder(path, STATE_DIR_MODE)
    except PermissionError as exc:
        msg = (
            f"cannot create check state folder {path}: permission denied; run "
            "as the daemon's user, or set [notifier] state_dir to a folder "
            "this user can write"
        )
        raise PermissionRefusedError(msg) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EEXIST:
            reason = "a file is in the way"
        raise ConfigError.single(
            config.path,
            "notifier",
            "state_dir",
            f"cannot create check state folder {path}: {reason}",
            "point state_dir to a writable folder",
        ) from exc
