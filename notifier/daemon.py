"""The daemon: wires checks, alert state, grouping and delivery into a service.

Wiring only; every decision lives in the part that owns it. Threads:

- APScheduler's ``BackgroundScheduler`` has one job per check, with
  ``max_instances=1`` and ``coalesce=True``, so a stalled machine catches up
  with one run, not a burst. We chose the background scheduler because it
  leaves the main thread free for signals, and its ``ThreadPoolExecutor``
  (``[notifier] workers`` threads) because a job only starts a run: the
  run itself goes to :class:`notifier.runner.CheckRunner`, which gives each
  run a thread of its own and reports it at its timeout at the latest. A
  pool that ran the checks themselves would let a few hung checks (an NFS
  mount that stopped answering) hold every worker and delay all the others;
  here a hung check costs one thread and delays the others by the runner's
  turn wait (50 ms) at most. Checks are I/O and system calls (psutil,
  reading logs, waiting on a subprocess) that release the GIL, so threads
  suit them; processes would cost memory per worker and pickling for every
  result.
- Housekeeping jobs (group flush, status, watchdog, silences, digest) run on
  a separate small executor, so busy checks never delay them.
- Delivery has a thread of its own (:class:`DeliveryThread`): a mail server
  that accepts the connection and then never answers stalls that thread
  only, up to ``[smtp] timeout``; no check run waits for it.
- The main thread sleeps until a signal comes: SIGHUP reloads, SIGTERM and
  SIGINT stop.

A check's result goes through :func:`notifier.state.advance`; its events
into the :class:`notifier.grouping.Grouper`; due batches are composed and
written to the durable outbox, and the delivery thread sends them.

The idle daemon's budget is 25 MB resident, and a daemon runs quiet most of
its life: the modules that write mail (:mod:`notifier.compose`,
:mod:`notifier.digest`, and through them the ``email`` package, about 1.5
MiB) are imported when the first message is composed, not at start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import select
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Final

from notifier import __version__
from notifier.atomicfile import write_atomic
from notifier.checks.base import Check, Result, Status
from notifier.config import CheckSpec, Config
from notifier.delivery import Sender
from notifier.digestlog import DigestLog
from notifier.errors import ConfigError, NotifierError
from notifier.grouping import Batch, Grouper
from notifier.instance import InstanceLock
from notifier.loader import Loaded, load
from notifier.logsetup import RateLimitedLogger, setup_logging
from notifier.outbox import Outbox
from notifier.redact import Redactor, redactor_for
from notifier.runner import CheckRunner, create_check, warmup_of
from notifier.scheduling import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MISSED,
    BackgroundScheduler,
    CronTrigger,
    DateTrigger,
    IntervalTrigger,
    JobExecutionEvent,
    ThreadPoolExecutor,
)
from notifier.sdnotify import SystemdNotifier
from notifier.silences import SilenceStore
from notifier.state import AlertStore, advance
from notifier.transport import Transport, create_transport

log = logging.getLogger(__name__)

STATUS_FILE: Final = "status.json"
"""What the daemon last saw, for ``notifier status``; in the state folder."""
GROUP_JOURNAL: Final = "pending-alerts.jsonl"
HOUSEKEEPING_SECONDS: Final = 20.0
"""How often silences are re-read, held-back alerts retried and a changed
status written. Each round wakes two threads; a quiet daemon's CPU time is
mostly such wake-ups, so the rounds are few, and they fall on the checks'
grid: every round with 10s or 20s checks, every third with 1m ones, so the
scheduler wakes once for both (checks see a new silence at their next run
whatever this is)."""
STATUS_HEARTBEAT_SECONDS: Final = 30.0
"""Longest time between two writes of the status file. A check whose status
changed is written at the next housekeeping round; one whose summary only
changed (a cpu check's percentage, each run) waits for this."""
CHECKS_PER_MOMENT: Final = 25
"""Checks started together at one moment of the grid (see Daemon._schedule)."""
MOMENTS_PER_SECOND: Final = 20
"""Moments of the grid, 50 ms apart, that larger configurations spread over."""
MAX_SHARED_WARMUP_SECONDS: Final = 5.0
"""Longest warm-up the first runs all wait for; a longer one waits alone."""
STOP_GRACE_SECONDS: Final = 5.0
"""How long a stop waits for the delivery thread to finish what it sends."""


@dataclass
class CheckRecord:
    """The last result of one check, as ``notifier status`` shows it."""

    status: str = "PENDING"
    summary: str = "not run yet"
    last_run: str | None = None
    duration: float = 0.0
    value: float | None = None


@dataclass
class Runtime:
    """Everything built from one configuration; replaced whole on reload."""

    loaded: Loaded
    checks: dict[str, tuple[CheckSpec, Check]]
    transport: Transport
    sender: Sender

    @property
    def config(self) -> Config:
        """Return the configuration this runtime was built from."""
        return self.loaded.config


@dataclass
class _Flags:
    """What the signal handlers ask of the main thread."""

    reload: bool = False
    stop: bool = False
    signal_name: str = ""


class DeliveryThread:
    """Delivers the outbox whenever something is due, apart from the checks."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="delivery", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def poke(self) -> None:
        """Ask for a delivery round now (a message was queued)."""
        self._wake.set()

    def stop(self, grace: float) -> bool:
        """Ask the thread to stop and wait up to ``grace`` seconds.

        :returns: whether it stopped in time; if not, it is a daemon thread
            mid-send, and the outbox keeps the message for the next start.
        """
        self._stop.set()
        self._wake.set()
        self._thread.join(grace)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            sender = self.sender
            try:
                sender.deliver_due()
                wakeup = sender.next_wakeup()
            except Exception:
                log.exception("delivery: unexpected failure; trying again in 1m")
                wakeup = time.time() + 60
            delay = 3600.0 if wakeup is None else max(0.2, wakeup - time.time())
            self._wake.wait(min(delay, 3600.0))
            self._wake.clear()


class Daemon:
    """The long-running service behind ``notifier run``.

    :param config_path: the configuration file; read again on SIGHUP.
    :param systemd: the sd_notify channel (does nothing outside systemd).
    """

    def __init__(self, config_path: Path, systemd: SystemdNotifier) -> None:
        self.config_path = config_path
        self.systemd = systemd
        self._flags = _Flags()
        self._lock = threading.Lock()
        self._records: dict[str, CheckRecord] = {}
        self._status_changed = True
        self._status_written = 0.0
        self._started = datetime.now(UTC)
        self._grid_start: datetime | None = None

        # What cannot change without a restart is built once, here; the
        # state folder is ours before any check is created in it.
        loaded = load(config_path)
        self.state_dir = loaded.config.notifier.state_dir
        self.instance = InstanceLock(self.state_dir)
        self.instance.acquire()
        try:
            self.runtime = self._build(loaded)
        except BaseException:
            self.instance.release()
            raise
        config = self.runtime.config
        self.workers = config.notifier.workers
        self.store = AlertStore(self.state_dir)
        self.silences = SilenceStore(self.state_dir)
        self.outbox = Outbox.in_state_dir(self.state_dir)
        self.digest_log = DigestLog(
            self.state_dir, redactor=redactor_for(config.mail.redact)
        )
        self.grouper = Grouper(
            config.notifier.group_wait,
            config.mail.max_per_hour,
            journal=self.state_dir / GROUP_JOURNAL,
        )
        self.delivery = DeliveryThread(self.runtime.sender)
        self.runner = CheckRunner()
        self._outbox_trouble = RateLimitedLogger(log, 300.0)
        self.scheduler = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(self.workers),
                "housekeeping": ThreadPoolExecutor(2),
            },
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self.scheduler.add_listener(
            self._job_trouble, EVENT_JOB_ERROR | EVENT_JOB_MISSED
        )

    # Building ---------------------------------------------------------------

    def _build(self, loaded: Loaded, previous: Runtime | None = None) -> Runtime:
        """Return a runtime for ``loaded``; raises on anything that cannot work.

        A check whose entry and plugin code are unchanged since ``previous``
        keeps its object, so a reload neither loses what it measures "since
        the last run" nor has two objects reading one log.

        :raises ConfigError: when the configuration cannot run (a transport
            that cannot be built, nobody to send alerts to).
        """
        config = loaded.config
        if config.checks and not _anyone_to_tell(config):
            raise ConfigError.single(
                config.path,
                "mail",
                "to",
                "is empty and no check has its own 'to': nobody would get alerts",
                'set to = ["you@example.com"]',
            )
        transport = create_transport(config, loaded.registry.transport_map())
        outbox = Outbox.in_state_dir(config.notifier.state_dir)
        sender = Sender(config, transport, outbox)
        checks: dict[str, tuple[CheckSpec, Check]] = {}
        for spec in config.checks:
            if not spec.common.enabled:
                continue
            kept = _unchanged_check(spec, loaded, previous)
            if kept is not None:
                checks[spec.name] = (spec, kept)
            else:
                checks[spec.name] = (spec, create_check(spec, loaded.registry, config))
        return Runtime(loaded, checks, transport, sender)

    def _schedule(self, runtime: Runtime) -> None:
        """Replace every check job by the jobs of ``runtime``.

        Interval checks run on one grid that starts when the daemon does:
        checks with the same ``every`` start at the same moments, so the
        scheduler wakes once for all of them. Waking a thread is what an
        idle daemon mostly spends its CPU time on; five checks started at
        five different moments cost about five times what they cost
        together. Beyond :data:`CHECKS_PER_MOMENT` checks the grid has a few
        moments a little apart, so a thousand checks are not one spike.
        """
        for job in self.scheduler.get_jobs():
            if job.id.startswith("check:"):
                job.remove()
        now = datetime.now(UTC)
        if self._grid_start is None:
            # The first runs wait for the longest warm-up (a second for the
            # cpu and load checks), so that every check is on the grid.
            warmups = [warmup_of(check) for _, check in runtime.checks.values()]
            shared = min(max(warmups, default=0.0), MAX_SHARED_WARMUP_SECONDS)
            self._grid_start = now + timedelta(seconds=shared)
        for index, (name, (spec, check)) in enumerate(sorted(runtime.checks.items())):
            moment = (index // CHECKS_PER_MOMENT) % MOMENTS_PER_SECOND
            start = self._grid_start + timedelta(seconds=moment / MOMENTS_PER_SECOND)
            trigger = _trigger(spec, start)
            # The first run comes once the check has warmed up; a cron check
            # runs once at start too, so its first result does not wait for
            # the next matching minute.
            earliest = now + timedelta(seconds=warmup_of(check))
            if spec.common.cron:
                first = max(earliest, start)
            else:
                first = trigger.get_next_fire_time(None, earliest)
            self.scheduler.add_job(
                self._run_check,
                trigger=trigger,
                args=(name,),
                id=f"check:{name}",
                name=f"check {name}",
                next_run_time=first,
                misfire_grace_time=max(1, int(min(spec.common.every, 300))),
            )
            self._records.setdefault(name, CheckRecord())
        for gone in set(self._records) - set(runtime.checks):
            del self._records[gone]

    def _schedule_housekeeping(self) -> None:
        # On the checks' grid: most housekeeping rounds share their wake-up.
        every = IntervalTrigger(
            seconds=HOUSEKEEPING_SECONDS, start_date=self._grid_start, timezone=UTC
        )
        self.scheduler.add_job(
            self._housekeeping,
            trigger=every,
            id="housekeeping",
            executor="housekeeping",
            misfire_grace_time=5,
        )
        interval = self.systemd.watchdog_interval()
        if interval:
            self.scheduler.add_job(
                self.systemd.watchdog,
                trigger=IntervalTrigger(
                    seconds=interval / 2, start_date=self._grid_start, timezone=UTC
                ),
                id="watchdog",
                executor="housekeeping",
                next_run_time=datetime.now(UTC),
                misfire_grace_time=max(1, int(interval / 2)),
            )
        self._schedule_digest(self.runtime.config)

    def _schedule_digest(self, config: Config) -> None:
        if self.scheduler.get_job("digest"):
            self.scheduler.remove_job("digest")
        if not config.mail.digest:
            return
        hour, minute = (int(part) for part in config.mail.digest.split(":"))
        self.scheduler.add_job(
            self._send_digest,
            trigger=CronTrigger(hour=hour, minute=minute),
            id="digest",
            executor="housekeeping",
            misfire_grace_time=3600,
        )

    # Running ----------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; return the exit status (0)."""
        self._install_signal_handlers()
        self.store.prune(self.runtime.checks)
        self._schedule(self.runtime)
        self._schedule_housekeeping()
        self.scheduler.start()
        self.delivery.start()
        self._write_status()
        count = len(self.runtime.checks)
        log.info(
            "notifier %s started with %d checks, mail by %s",
            __version__,
            count,
            self.runtime.transport.describe(),
        )
        self.systemd.ready(self._status_line())

        while True:
            self._wait_for_signal()
            if self._flags.stop:
                break
            if self._flags.reload:
                self._flags.reload = False
                self.reload()
        self._shutdown()
        self._remove_signal_wakeup()
        return 0

    def _install_signal_handlers(self) -> None:
        """Handle SIGHUP, SIGTERM and SIGINT, waking the main thread for each.

        The kernel may deliver a signal to any thread, and Python runs the
        handler in the main thread only when that thread runs Python code.
        So every signal also writes a byte to a pipe the main thread sleeps
        on (:func:`signal.set_wakeup_fd`): it wakes for signals only, never
        on a timer, which is part of what keeps an idle daemon at rest.
        """

        def ask_reload(signum: int, frame: FrameType | None) -> None:
            self._flags.reload = True

        def ask_stop(signum: int, frame: FrameType | None) -> None:
            self._flags.stop = True
            self._flags.signal_name = signal.Signals(signum).name

        self._wakeup_pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wakeup_pipe[1], warn_on_full_buffer=False)
        signal.signal(signal.SIGHUP, ask_reload)
        signal.signal(signal.SIGTERM, ask_stop)
        signal.signal(signal.SIGINT, ask_stop)

    def _wait_for_signal(self) -> None:
        """Sleep until a signal arrives, and let its Python handler run."""
        reader = self._wakeup_pipe[0]
        select.select([reader], [], [])
        # Python runs pending handlers as a call returns in this thread, so
        # by the time the pipe is drained the flags are set.
        with contextlib.suppress(BlockingIOError):
            os.read(reader, 512)

    def _remove_signal_wakeup(self) -> None:
        """Stop signals writing to the pipe, and close it."""
        signal.set_wakeup_fd(-1)
        for descriptor in self._wakeup_pipe:
            os.close(descriptor)

    def reload(self) -> bool:
        """Read the configuration again; keep the old one if the new one is bad.

        :returns: whether the new configuration is now in force.
        """
        self.systemd.reloading("reloading configuration")
        log.info("reloading %s", self.config_path)
        try:
            runtime = self._build(load(self.config_path), self.runtime)
        except NotifierError as exc:
            for line in str(exc).splitlines():
                log.error("reload refused: %s", line)
            log.error("reload refused; the previous configuration keeps running")
            self.systemd.ready(self._status_line())
            return False

        new = runtime.config.notifier
        if new.log_level != self.runtime.config.notifier.log_level:
            setup_logging(new.log_level)
            log.info("log level is now %s", new.log_level)
        if new.state_dir != self.state_dir or new.workers != self.workers:
            log.warning(
                "[notifier] state_dir and workers take effect at the next restart"
            )
        with self._lock:
            self.runtime = runtime
        self.grouper.group_wait = timedelta(seconds=new.group_wait)
        self.grouper.max_per_hour = runtime.config.mail.max_per_hour
        self.delivery.sender = runtime.sender
        self.store.prune(runtime.checks)
        self._schedule(runtime)
        self._schedule_digest(runtime.config)
        log.info("reloaded: %d checks", len(runtime.checks))
        self.systemd.ready(self._status_line())
        self.delivery.poke()
        return True

    def _shutdown(self) -> None:
        log.info(
            "stopping on %s; waiting for running checks",
            self._flags.signal_name or "request",
        )
        self.systemd.stopping("stopping")

        # Not shutdown(wait=True): APScheduler 3 holds its job store lock
        # while waiting, and a housekeeping job asking for the jobs (the
        # status file) would then wait for it forever. Jobs only start runs
        # or flush groups; the runs themselves are waited for just below.
        self.scheduler.shutdown(wait=False)
        self.runner.stop(STOP_GRACE_SECONDS)

        # Nothing waiting in a group window may be lost: into the outbox now.
        self._queue_batches(self.grouper.drain())
        if not self.delivery.stop(STOP_GRACE_SECONDS):
            log.warning(
                "delivery still busy after %ss; queued mail goes out at the next start",
                STOP_GRACE_SECONDS,
            )
        self._write_status()
        self.instance.release()
        log.info("stopped")

    # Jobs -------------------------------------------------------------------

    def _run_check(self, name: str) -> None:
        """Start one run of check ``name``; returns at once (see CheckRunner)."""
        with self._lock:
            entry = self.runtime.checks.get(name)
            config = self.runtime.config
        if entry is None:
            return
        spec, check = entry

        def report(result: Result, duration: float) -> None:
            with self._lock:
                current = self.runtime.checks.get(name)
            if current is None or current[1] is not check:
                # Started before a reload replaced or removed this check: its
                # result belongs to a configuration no longer in force.
                log.debug("check %r: result from before the reload dropped", name)
                return
            self._take_result(spec, config, result, duration)

        self.runner.start(name, check, spec.common.timeout, report)

    def _take_result(
        self, spec: CheckSpec, config: Config, result: Result, duration: float
    ) -> None:
        """Turn one result into alert state and events (from the run's thread)."""
        name = spec.name
        now = datetime.now(UTC)

        # Runs of one check never overlap (CheckRunner), so its state needs
        # no daemon-wide lock. Events reach the grouper's journal before the
        # state that produced them is saved: a crash in between sends a
        # duplicate at worst, never loses an alert.
        silenced = self.silences.is_silenced(name, now)
        state, events = advance(
            self.store.get(name),
            result,
            now,
            spec,
            host=config.notifier.hostname,
            mail=config.mail,
            silenced=silenced,
        )
        for event in events:
            self.grouper.add(event)
        self.store.put(name, state)

        # What the log and the status file show is masked like mail is:
        # a summary may quote a log line holding a password.
        redactor = redactor_for(config.mail.redact)
        record = _record_of(result, now, duration, redactor)
        with self._lock:
            previous = self._records.get(name)
            self._records[name] = record
            if previous is None or previous.status != record.status:
                self._status_changed = True
        self.digest_log.note_value(name, result.status, result.value, now)
        for event in events:
            log.info(
                "check %r: %s %s: %s",
                name,
                event.kind.value,
                event.status.name,
                redactor.redact(event.summary)[0],
            )
            self.digest_log.note_event(event)
        if events:
            self._flush_after(config.notifier.group_wait)

    def _flush_after(self, seconds: float) -> None:
        """Run a group flush once the group window of a new event has closed."""
        self.scheduler.add_job(
            self._flush_groups,
            trigger=DateTrigger(
                datetime.now(UTC) + timedelta(seconds=seconds + 0.05), timezone=UTC
            ),
            executor="housekeeping",
            misfire_grace_time=3600,
        )

    def _flush_groups(self) -> None:
        self._queue_batches(self.grouper.due(datetime.now(UTC)))

    def _housekeeping(self) -> None:
        if self.silences.refresh():
            self._status_changed = True
        if self.grouper.pending():
            # Held back by max_per_hour, or handed back by a failing outbox.
            self._flush_groups()
        stale = time.monotonic() - self._status_written >= STATUS_HEARTBEAT_SECONDS
        if self._status_changed or stale:
            self._write_status()

    def _queue_batches(self, batches: list[Batch]) -> None:
        if not batches:
            return
        from notifier.compose import compose_alert  # see the module docstring

        config = self.runtime.config
        now = datetime.now(UTC)
        queued = 0
        for batch in batches:
            recipients = batch.recipients or config.mail.to
            try:
                message = compose_alert(
                    batch.events,
                    config.mail,
                    hostname=config.notifier.hostname,
                    recipients=recipients,
                    now=now,
                    extra_notes=batch.notes,
                )
                entry = self.outbox.put(message, recipients)
            except (OSError, NotifierError, ValueError) as exc:
                # Back to the grouper, which keeps it (and its journal line)
                # until a later round stores it: an alert is never dropped.
                self.grouper.requeue(batch)
                self._outbox_trouble.error(
                    "outbox",
                    "%d alert(s) for %s cannot be queued (%s); trying again "
                    "every few seconds",
                    len(batch.events),
                    ", ".join(recipients),
                    getattr(exc, "strerror", None) or exc,
                )
                continue
            # Out of the journal as soon as it is in the outbox: a crash in
            # between is the one moment an alert can go out twice.
            self.grouper.commit()
            self._outbox_trouble.forget("outbox")
            queued += 1
            log.info(
                "alert queued as %s for %s: %s",
                entry.id,
                ", ".join(recipients),
                entry.subject,
            )
        self.grouper.commit()
        if queued:
            self.delivery.poke()

    def _send_digest(self) -> None:
        # Imported here: see the module docstring.
        from notifier.digest import compose_digest, digest_recipients

        config = self.runtime.config
        recipients = digest_recipients(config)
        if not recipients:
            log.warning("daily digest skipped: [mail] to is empty")
            return

        # One moment for composing and rotating, so an alert noted in
        # between is in exactly one digest.
        now = datetime.now(UTC)
        with self._lock:
            records = {name: dataclasses.asdict(r) for name, r in self._records.items()}
        message = compose_digest(
            config,
            records=records,
            alerts=self.store.all(),
            digest_log=self.digest_log,
            outbox=self.outbox,
            now=now,
        )
        entry = self.outbox.put(message, recipients)
        log.info("daily digest queued as %s", entry.id)
        self.digest_log.rotate(now)
        self.delivery.poke()

    def _job_trouble(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "job %r missed its run at %s; the machine or the pool is too busy",
                event.job_id,
                event.scheduled_run_time,
            )
        else:
            log.error(
                "job %r failed: %s: %s",
                event.job_id,
                type(event.exception).__name__,
                event.exception,
            )

    # Status -----------------------------------------------------------------

    def _status_line(self) -> str:
        firing = sum(1 for state in self.store.all().values() if state.firing)
        queued = len(self.outbox.entries())
        checks = len(self.runtime.checks)
        return f"{checks} checks, {firing} firing, {queued} queued"

    def _write_status(self) -> None:
        with self._lock:
            records = {name: dataclasses.asdict(r) for name, r in self._records.items()}
            config_path = str(self.config_path)
            self._status_changed = False
            self._status_written = time.monotonic()
        next_runs = {
            job.id.removeprefix("check:"): _stamp(job.next_run_time)
            for job in self.scheduler.get_jobs()
            if job.id.startswith("check:") and job.next_run_time is not None
        }
        for name, record in records.items():
            record["next_run"] = next_runs.get(name)
        document: dict[str, Any] = {
            "pid": os.getpid(),
            "version": __version__,
            "config": config_path,
            "started": _stamp(self._started),
            "written": _stamp(datetime.now(UTC)),
            "checks": records,
        }
        data = json.dumps(document, indent=1).encode("utf-8")
        try:
            # Rewritten often and rebuilt at every start: no fsync needed.
            write_atomic(self.state_dir / STATUS_FILE, data, mode=0o644, durable=False)
        except OSError as exc:
            log.warning("status file cannot be written: %s", exc)
        self.systemd.status(self._status_line())


def _unchanged_check(
    spec: CheckSpec, loaded: Loaded, previous: Runtime | None
) -> Check | None:
    """Return the previous runtime's check for ``spec`` if nothing about it
    changed: the same entry, and the same plugin code creating it."""
    if previous is None or spec.name not in previous.checks:
        return None
    old_spec, old_check = previous.checks[spec.name]
    same_entry = (old_spec.type, old_spec.common, old_spec.options) == (
        spec.type,
        spec.common,
        spec.options,
    )
    old_type = previous.loaded.registry.check_types.get(spec.type)
    new_type = loaded.registry.check_types.get(spec.type)
    same_code = (
        old_type is not None
        and new_type is not None
        and old_type.check_type.create is new_type.check_type.create
    )
    return old_check if same_entry and same_code else None


def _anyone_to_tell(config: Config) -> bool:
    mail = config.mail
    if mail.to or mail.to_warning or mail.to_critical:
        return True
    return all(spec.common.to for spec in config.checks)


def _trigger(spec: CheckSpec, start: datetime) -> CronTrigger | IntervalTrigger:
    """Return when ``spec`` runs; an interval counts from ``start``."""
    if spec.common.cron:
        return CronTrigger.from_crontab(spec.common.cron)
    return IntervalTrigger(seconds=spec.common.every, start_date=start, timezone=UTC)


def _record_of(
    result: Result, now: datetime, duration: float, redactor: Redactor
) -> CheckRecord:
    return CheckRecord(
        status=Status(result.status).name,
        summary=redactor.redact(result.summary)[0],
        last_run=_stamp(now),
        duration=round(duration, 3),
        value=result.value,
    )


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def read_daemon_status(state_dir: Path) -> dict[str, Any] | None:
    """Return what the daemon last wrote to its status file, or ``None``."""
    try:
        data = json.loads((state_dir / STATUS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
