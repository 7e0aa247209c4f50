"""Benchmark of ``notifier run``: idle cost, start-up, punctuality, a storm.

Run it with one command from the repository (about seven minutes;
the test dependencies aiosmtpd and trustme must be installed)::

    .venv/bin/python bench/daemon.py

Every part starts ``notifier run -c PATH`` as a subprocess of its own, the way
systemd would, with its configuration and state in a temporary folder, mail
written as files unless said otherwise, and nothing but 127.0.0.1:

1. ``idle``: the example configuration's checks (disk, cpu, memory, load and
   a logscan of a small syslog-like file that grows by a line a second from
   the first round on), all every 10s. After ``--settle-rounds`` (10) rounds,
   its start-up (a check's saved state changes at each of its first 10 runs,
   while its run history fills), it measures the daemon's resident memory
   (``VmRSS``, and the peak ``VmHWM``, from ``/proc/PID/status``) and the CPU
   time it uses over ``--seconds`` (120: a dozen rounds, as one minute's
   measure varies by a third from run to run), extrapolated to an hour.
   Beside it, in the same window, the same daemon with no checks at all (its fixed
   cost); and the resident size of ``python -c pass`` and of ``python -c
   "import notifier.daemon"`` (the floor the imports set).
   Targets: at most 25 MiB resident, at most 1.5 CPU-seconds per hour.
2. ``ready``: the time from starting the process to its ``READY=1`` on a real
   unix datagram socket given as ``$NOTIFY_SOCKET`` (the median of
   ``--starts``), beside ``python -c pass`` and ``python -c "import
   notifier.daemon"`` timed in the same run: the interpreter's own start and
   the imports, which the daemon cannot do without. Target: at most 0.5 s.
3. ``late``: ``--checks`` (1,000) trivial checks every 10s for
   ``--late-seconds`` (150). A drop-in check type writes the time APScheduler
   scheduled the run and the time the check started (one ``write`` on an
   ``O_APPEND`` file per run, cheap beside the run itself). It prints the
   share of runs that started more than 1 s late, counting a run that never
   happened (coalesced or missed) as late: over the whole run, after the
   first 100 s (by default a check's saved state changes at each of its
   first 10 runs, while its run history fills), and round by round.
   Target: under 1%.
4. ``storm``: ``--storm`` (500) checks that turn CRITICAL together (a drop-in
   type that does so while a flag file exists; the flag is made once every
   check has run) with mail going to a real aiosmtpd server over implicit TLS
   with login (the test suite's ``SmtpServer`` and a trustme CA), and the
   default grouping window. It counts the messages and the SMTP connections
   the storm took, and how many of the checks the messages name. Target: at
   most 5 of each.

CPU time is read twice: ``utime + stime`` from ``/proc/PID/stat`` (in clock
ticks of 10 ms, coarse over a minute) and the process's CPU-time clock
(``clock_gettime`` on that pid's ``CPUCLOCK_SCHED``, in nanoseconds, counting
ended threads too). The second is the one compared with the target.

``--only idle,ready`` runs some parts; ``--seconds``, ``--late-seconds``,
``--starts``, ``--checks``, ``--storm``, ``--every`` and ``--group-wait``
shorten a run (the test suite uses tiny ones). The exit status is 0 when
every part measured something, whether or not it met its target, and 1 when
a part could not measure (a daemon that did not start or stop, say).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import tomli_w
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from smtp_server import PASSWORD, USERNAME, SmtpServer

from notifier.units import parse_duration

REPOSITORY = Path(__file__).resolve().parent.parent
PARTS = ("idle", "ready", "late", "storm")
RSS_TARGET_MIB = 25.0
CPU_TARGET_PER_HOUR = 1.5
READY_TARGET_SECONDS = 0.5
LATE_LIMIT_SECONDS = 1.0
LATE_TARGET_SHARE = 0.01
LATE_SETTLED_AFTER = 100.0
STORM_TARGET = 5
EXAMPLE_TYPES = frozenset({"disk", "cpu", "memory", "load", "logscan"})
START_LIMIT_SECONDS = 120.0
STOP_LIMIT_SECONDS = 10.0
PRINT_RSS = (
    "\nfor line in open('/proc/self/status'):\n"
    "    if line.startswith('VmRSS:'): print(line.split()[1])"
)

# Two check types for the daemon under test, loaded from a drop-in folder.
# "stamp" returns OK at once and writes "NAME SCHEDULED STARTED" (Unix times)
# to its file. APScheduler logs "Running job ... (scheduled at T)" in the
# executor thread just before it calls the job, which then starts the check;
# a handler on that logger keeps T for the check to write beside its own
# start. "flag" is CRITICAL while its file exists.
PLUGIN = '''
"""Check types for bench/daemon.py: "stamp" and "flag"."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from notifier import CheckType, Option, Result, Status, hookimpl

_scheduled: dict[str, float] = {}
_files: dict[str, int] = {}


class _ScheduledTimes(logging.Handler):
    def emit(self, record):
        args = record.args
        if str(record.msg).startswith("Running job") and len(args or ()) == 2:
            job, run_time = args
            _scheduled[job.id] = run_time.timestamp()
        elif record.levelno >= logging.WARNING:
            logging.getLogger().handle(record)


_executor_log = logging.getLogger("apscheduler.executors.default")
_executor_log.addHandler(_ScheduledTimes())
_executor_log.setLevel(logging.INFO)
_executor_log.propagate = False


class Stamp:
    def __init__(self, context):
        path = str(context.options["file"])
        if path not in _files:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            _files[path] = os.open(path, flags, 0o600)
        self.descriptor = _files[path]
        self.job_id = "check:" + context.name
        self.name = context.name

    def run(self):
        started = time.time()
        scheduled = _scheduled.get(self.job_id, 0.0)
        line = f"{self.name} {scheduled!r} {started!r}\\n"
        os.write(self.descriptor, line.encode())
        return Result(Status.OK, "stamped")


class Flag:
    def __init__(self, context):
        self.path = Path(context.options["file"])

    def run(self):
        if self.path.exists():
            return Result(Status.CRITICAL, "the flag is up")
        return Result(Status.OK, "no flag")


@hookimpl
def notifier_check_types():
    option = (Option("file", "path", required=True),)
    return [CheckType("stamp", Stamp, option), CheckType("flag", Flag, option)]
'''

SYSLOG_LINES = (
    "sshd[{n}]: Accepted publickey for deploy from 127.0.0.1 port {n} ssh2",
    "CRON[{n}]: (root) CMD (run-parts /etc/cron.hourly)",
    "systemd[1]: Started Session {n} of user deploy.",
    "postfix/smtpd[{n}]: connect from localhost[127.0.0.1]",
)


class BenchError(Exception):
    """A part could not measure; the message says why."""


# The daemon under test ------------------------------------------------------


def notifier_command() -> list[str]:
    """Return the ``notifier`` console script beside this Python, as systemd
    would start it, or ``python -m notifier`` where it is not installed."""
    script = Path(sys.executable).parent / "notifier"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "notifier"]


def service_environment() -> dict[str, str]:
    """Return this environment as a service would run with it: with the
    byte-code caches Python keeps. Some build machines set
    ``PYTHONDONTWRITEBYTECODE``; every start would then compile the sources
    again, and keep the compiler's leftovers resident."""
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return environment


class Daemon:
    """One ``notifier run`` subprocess, its output kept in a file.

    :param notify_socket: given as ``$NOTIFY_SOCKET`` when set.
    :param dump_on_hang: start it with ``PYTHONFAULTHANDLER=1``, so that a
        daemon that does not stop can be made to write every thread's stack.
    """

    def __init__(
        self,
        config: Path,
        notify_socket: Path | None = None,
        *,
        dump_on_hang: bool = False,
    ) -> None:
        self.config = config
        self.dump_on_hang = dump_on_hang
        self.hang = ""
        self.log_path = config.with_suffix(f".{time.monotonic_ns()}.log")
        environment = service_environment()
        for name in ("NOTIFIER_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
            environment.pop(name, None)
        environment.pop("JOURNAL_STREAM", None)
        if notify_socket is not None:
            environment["NOTIFY_SOCKET"] = str(notify_socket)
        if dump_on_hang:
            environment["PYTHONFAULTHANDLER"] = "1"
        with self.log_path.open("w") as log:
            self.started = time.perf_counter()
            self.process = subprocess.Popen(
                [*notifier_command(), "run", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def fail(self, what: str) -> BenchError:
        """Kill the daemon; return an error quoting the end of its log (with
        every thread's stack first if it is still running and
        ``dump_on_hang``)."""
        lines = 15
        if self.dump_on_hang and self.process.poll() is None:
            self.process.send_signal(signal.SIGABRT)
            lines = 200
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        self.process.kill()
        self.process.wait()
        tail = "\n".join(self.log().splitlines()[-lines:])
        return BenchError(f"{what}; the daemon's last lines:\n{tail}")

    def wait_for(self, condition: Callable[[], bool], what: str, limit: float) -> None:
        """Poll ``condition``; raise naming ``what`` if the daemon dies first
        or ``limit`` seconds pass."""
        deadline = time.monotonic() + limit
        while not condition():
            if self.process.poll() is not None or time.monotonic() > deadline:
                problem = f"timed out waiting for {what}"
                raise self.fail(problem)
            time.sleep(0.05)

    def wait_started(self) -> float:
        """Wait for the log line saying it started; return seconds since exec."""
        self.wait_for(
            lambda: "started with" in self.log(), "start", START_LIMIT_SECONDS
        )
        return time.perf_counter() - self.started

    def stop(self) -> str:
        """SIGTERM, then wait; return ``exit N``, or say that it hung.

        A daemon that does not exit in time is killed, after writing every
        thread's stack (``dump_on_hang``), which is kept in :attr:`hang`.
        """
        self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            return f"exit {self.process.wait(STOP_LIMIT_SECONDS)}"
        log_before = self.log()
        self.fail("hung")
        self.hang = self.log()[len(log_before) :]
        return f"HUNG: no exit within {STOP_LIMIT_SECONDS:.0f}s of SIGTERM, killed"


def report_stops(outcomes: list[tuple[Daemon, str]]) -> None:
    """Print how the daemons took SIGTERM, and the stacks of any that hung
    (without the standard library's thread plumbing)."""
    counts = Counter(outcome for _daemon, outcome in outcomes)
    said = ", ".join(f"{count} x {outcome}" for outcome, count in counts.items())
    print(f"   after SIGTERM: {said}")
    for daemon, _outcome in outcomes:
        if daemon.hang:
            print("     the hung daemon's threads, innermost call first:")
            for line in daemon.hang.splitlines():
                if line.strip() and not re.search(r"/(threading|concurrent/)", line):
                    print(f"       {line.strip()}")


def cpu_seconds(pid: int) -> float:
    """Return the CPU time of process ``pid`` so far, from its CPU-time clock.

    Linux names the clock of another process ``~pid << 3 | 2`` (the
    scheduler's exact sum for the whole process, ended threads included) and
    lets anyone read it.
    """
    return time.clock_gettime(((~pid) << 3) | 2)


def tick_seconds(pid: int) -> float:
    """Return utime + stime of ``pid`` from ``/proc/PID/stat``, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> dict[str, float]:
    """Return the ``Vm*`` and ``Rss*`` lines of ``/proc/PID/status``, in MiB."""
    sizes = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.startswith(("Vm", "Rss")) and value.strip().endswith("kB"):
            sizes[key] = int(value.split()[0]) / 1024
    return sizes


def checks_run(state_dir: Path) -> int:
    """Return how many checks the daemon's status file shows as run."""
    try:
        status = json.loads((state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(1 for record in status["checks"].values() if record.get("last_run"))


def seconds_of(duration: str) -> float:
    return float(parse_duration(duration))


def ratio(value: float, target: float) -> str:
    verdict = "meets it" if value <= target else "MISSES it"
    return f"{value / target:5.2f}x the target ({verdict})"


# Configurations ----------------------------------------------------------------


def write_config(folder: Path, document: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "notifier.toml"
    path.write_text(tomli_w.dumps(document))
    path.chmod(0o600)
    return path


def base_config(folder: Path, **notifier: object) -> dict[str, object]:
    """Return a configuration with state and mail files inside ``folder``."""
    return {
        "notifier": {
            "hostname": "bench.example.test",
            "state_dir": str(folder / "state"),
            **notifier,
        },
        "mail": {"transport": "file", "to": ["ops@example.test"]},
        "file": {"directory": str(folder / "mail")},
    }


def example_config(
    folder: Path, log_file: Path, every: str, *, checks: bool = True
) -> Path:
    """Write ``config.example.toml`` with its checks every ``every`` and its
    state, mail and logscan file moved into ``folder`` (or with no checks)."""
    document = tomllib.loads((REPOSITORY / "config.example.toml").read_text())
    document["notifier"]["state_dir"] = str(folder / "state")
    document["mail"]["transport"] = "file"
    document["file"] = {"directory": str(folder / "mail")}
    document["defaults"]["every"] = every
    types = {check["type"] for check in document["check"]}
    if not types >= EXAMPLE_TYPES:
        message = f"config.example.toml has no check of type {EXAMPLE_TYPES - types}"
        raise BenchError(message)
    for check in document["check"]:
        check.pop("every", None)
        check.pop("cron", None)
        if check["type"] == "logscan":
            check["path"] = str(log_file)
    if not checks:
        document["check"] = []
    return write_config(folder, document)


def plugin_folder(folder: Path) -> Path:
    plugins = folder / "plugins"
    plugins.mkdir(mode=0o755, parents=True, exist_ok=True)
    (plugins / "benchchecks.py").write_text(PLUGIN)
    return plugins


def syslog_line(number: int) -> str:
    stamp = time.strftime("%b %d %H:%M:%S")
    text = SYSLOG_LINES[number % len(SYSLOG_LINES)].format(n=1000 + number)
    return f"{stamp} bench {text}\n"


# 1. Idle cost -------------------------------------------------------------------


def bench_idle(folder: Path, seconds: float, every: str, settle_rounds: int) -> None:
    log_file = folder / "syslog"
    log_file.write_text("".join(syslog_line(number) for number in range(2000)))
    config = example_config(folder / "example", log_file, every)
    empty = example_config(folder / "empty", log_file, every, checks=False)
    checks = len(tomllib.loads(config.read_text())["check"])
    daemon, bare_daemon = Daemon(config), Daemon(empty)
    bare_daemon.wait_started()
    daemon.wait_started()
    state_dir = folder / "example" / "state"
    daemon.wait_for(lambda: checks_run(state_dir) == checks, "a first round", 60)

    # The log grows by a line a second, like a quiet server's syslog, so the
    # logscan has something to read: from the first round on, so that the
    # measured window holds no first-time work (the first lines it scans).
    with log_file.open("a") as log:
        grow_log(log, 2000, seconds_of(every) * max(0, settle_rounds - 1) + 0.5)

        # The measured window.
        before = {
            process.pid: memory_mib(process.pid) for process in (daemon, bare_daemon)
        }
        cpu_before = {
            process.pid: cpu_seconds(process.pid) for process in (daemon, bare_daemon)
        }
        ticks_before = tick_seconds(daemon.pid)
        started = time.monotonic()
        grow_log(log, 3000, seconds)
        elapsed = time.monotonic() - started
    cpu = cpu_seconds(daemon.pid) - cpu_before[daemon.pid]
    bare_cpu = cpu_seconds(bare_daemon.pid) - cpu_before[bare_daemon.pid]
    ticks = tick_seconds(daemon.pid) - ticks_before
    memory, bare_memory = memory_mib(daemon.pid), memory_mib(bare_daemon.pid)
    threads = len(list(Path(f"/proc/{daemon.pid}/task").iterdir()))
    stops = [(daemon, daemon.stop()), (bare_daemon, bare_daemon.stop())]
    alerts = len(list((folder / "example" / "mail").glob("*.eml")))

    python_rss = rss_of_child("pass")
    import_rss = rss_of_child("import notifier.daemon")
    per_hour = cpu / elapsed * 3600
    bare_per_hour = bare_cpu / elapsed * 3600
    rss = memory["VmRSS"]
    print(
        f"1. idle: {checks} example checks every {every} "
        f"({', '.join(sorted(EXAMPLE_TYPES))}), {elapsed:.0f}s measured "
        f"after {settle_rounds} rounds"
    )
    print(f"   resident (VmRSS)   {rss:6.1f} MiB  {ratio(rss, RSS_TARGET_MIB)}")
    print(
        f"     anonymous {memory['RssAnon']:.1f} MiB, files and libraries "
        f"{memory['RssFile']:.1f} MiB; peak (VmHWM) {memory['VmHWM']:.1f} MiB; "
        f"{rss - before[daemon.pid]['VmRSS']:+.1f} MiB over the window"
    )
    print(
        f"     references: python -c pass {python_rss:.1f} MiB; "
        f'python -c "import notifier.daemon" {import_rss:.1f} MiB; '
        f"the daemon with no checks {bare_memory['VmRSS']:.1f} MiB"
    )
    print(
        f"   CPU                {per_hour:6.2f} s/h  "
        f"{ratio(per_hour, CPU_TARGET_PER_HOUR)}"
    )
    print(
        f"     {cpu * 1000:.1f} ms in {elapsed:.0f}s by the CPU-time clock "
        f"(/proc stat ticks: {ticks * 1000:.0f} ms = "
        f"{ticks / elapsed * 3600:.2f} s/h)"
    )
    print(
        f"     reference: the daemon with no checks {bare_per_hour:.2f} s/h "
        f"({bare_per_hour / per_hour:.0%} of the above)"
    )
    print(
        f"   {threads} threads; {alerts} alerts written (0 expected on a quiet machine)"
    )
    report_stops(stops)


def grow_log(log: TextIO, first_number: int, seconds: float) -> None:
    """Append a syslog line to ``log`` every second for ``seconds``."""
    started = time.monotonic()
    number = first_number
    while (elapsed := time.monotonic() - started) < seconds:
        log.write(syslog_line(number))
        log.flush()
        number += 1
        time.sleep(min(1.0, seconds - elapsed))


def rss_of_child(code: str) -> float:
    """Return the resident size in MiB of a Python that has run ``code``."""
    finished = subprocess.run(
        [sys.executable, "-c", code + PRINT_RSS],
        capture_output=True,
        text=True,
        check=True,
        env=service_environment(),
    )
    return int(finished.stdout.split()[-1]) / 1024


# 2. Start to READY ----------------------------------------------------------------


def bench_ready(folder: Path, starts: int) -> None:
    log_file = folder / "syslog"
    log_file.write_text(syslog_line(0))
    config = example_config(folder, log_file, "10s")
    notify_path = folder / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(notify_path))

    ready: list[float] = []
    stops: list[tuple[Daemon, str]] = []
    try:
        for _ in range(starts):
            receiver.settimeout(START_LIMIT_SECONDS)
            daemon = Daemon(config, notify_path)
            try:
                while b"READY=1" not in receiver.recv(4096):
                    pass
            except TimeoutError:
                problem = "no READY=1 within two minutes"
                raise daemon.fail(problem) from None
            ready.append(time.perf_counter() - daemon.started)
            stops.append((daemon, daemon.stop()))
            receiver.settimeout(0)
            with contextlib.suppress(BlockingIOError):
                while receiver.recv(4096):
                    pass
    finally:
        receiver.close()

    bare = wall_time([sys.executable, "-c", "pass"], starts)
    imports = wall_time([sys.executable, "-c", "import notifier.daemon"], starts)
    median = statistics.median(ready)
    print(f"2. start to READY=1, the example checks (median of {starts} starts)")
    print(
        f"   notifier run                        {median:6.3f} s  {ratio(median, 0.5)}"
    )
    print(f"   python -c pass                      {bare:6.3f} s")
    print(f'   python -c "import notifier.daemon"  {imports:6.3f} s')
    print(
        f"     of the time to READY: the interpreter {bare / median:.0%}, the "
        f"imports {(imports - bare) / median:.0%}, the daemon's own start "
        f"{(median - imports) / median:.0%} (starts took {min(ready):.3f} to "
        f"{max(ready):.3f} s)"
    )
    report_stops(stops)


def wall_time(argv: list[str], runs: int) -> float:
    """Return the median wall time of running ``argv`` to its end."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, env=service_environment())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# 3. Punctuality under 1,000 checks ------------------------------------------------


def bench_late(folder: Path, count: int, seconds: float, every: str) -> None:
    stamps = folder / "stamps"
    document = base_config(folder, plugin_dirs=[str(plugin_folder(folder))])
    names = [f"c{number:04d}" for number in range(count)]
    document["check"] = [
        {"name": name, "type": "stamp", "file": str(stamps), "every": every}
        for name in names
    ]
    daemon = Daemon(write_config(folder, document), dump_on_hang=True)
    ready_after = daemon.wait_started()
    start_time = time.time()
    cpu_before = cpu_seconds(daemon.pid)
    time.sleep(seconds)
    stop_time = time.time()
    cpu = cpu_seconds(daemon.pid) - cpu_before
    memory = memory_mib(daemon.pid)
    stopped = daemon.stop()

    runs = read_stamps(stamps, stop_time - LATE_LIMIT_SECONDS)
    if not any(scheduled for by_check in runs.values() for scheduled, _ in by_check):
        message = (
            "no scheduled times recorded: did APScheduler's 'Running job' log "
            "line or the daemon's 'check:NAME' job ids change?"
        )
        raise BenchError(message)
    delays = run_delays(runs, names, stop_time, seconds_of(every))
    settled_from = start_time + LATE_SETTLED_AFTER
    settled = [delay for scheduled, delay in delays if scheduled >= settled_from]
    rounds: dict[int, list[float]] = defaultdict(list)
    for scheduled, delay in delays:
        rounds[max(0, int((scheduled - start_time) // seconds_of(every)))].append(delay)
    print(f"3. {count} checks every {every}, {seconds:.0f}s from the start")
    print_late_share("all runs", [delay for _, delay in delays])
    if settled:
        print_late_share(f"after {LATE_SETTLED_AFTER:.0f}s", settled)
    shares = " ".join(f"{late_share(rounds[key]):.0%}" for key in sorted(rounds))
    print(f"     late share round by round: {shares}")
    print(
        f"   the daemon meanwhile: READY after {ready_after:.2f} s, "
        f"{cpu / seconds:.1%} of a CPU, {memory['VmRSS']:.1f} MiB resident, "
        f"{memory['VmHWM']:.1f} MiB peak"
    )
    report_stops([(daemon, stopped)])


def read_stamps(path: Path, until: float) -> dict[str, list[tuple[float, float]]]:
    """Return (scheduled, started) of every run scheduled up to ``until``."""
    runs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    if not path.exists():
        return runs
    for line in path.read_text().splitlines():
        name, scheduled, started = line.split()
        if float(scheduled) <= until:
            runs[name].append((float(scheduled), float(started)))
    return runs


def run_delays(
    runs: dict[str, list[tuple[float, float]]],
    names: list[str],
    stop_time: float,
    interval: float,
) -> list[tuple[float, float]]:
    """Return (scheduled, delay) per run due by ``stop_time`` - 1 s; a run
    that never started (skipped, or still waiting) has an infinite delay."""
    delays: list[tuple[float, float]] = []
    due_by = stop_time - LATE_LIMIT_SECONDS
    for name in names:
        by_check = sorted(runs.get(name, []))
        if not by_check:
            delays.append((due_by, float("inf")))
            continue
        seen = {
            round((scheduled - by_check[0][0]) / interval) for scheduled, _ in by_check
        }
        expected = int((due_by - by_check[0][0]) // interval) + 1
        delays.extend(
            (scheduled, started - scheduled) for scheduled, started in by_check
        )
        delays.extend(
            (by_check[0][0] + index * interval, float("inf"))
            for index in range(expected)
            if index not in seen
        )
    return delays


def late_share(delays: list[float]) -> float:
    return sum(1 for delay in delays if delay > LATE_LIMIT_SECONDS) / len(delays)


def print_late_share(label: str, delays: list[float]) -> None:
    ordered = sorted(delays)
    share = late_share(ordered)
    late = round(share * len(ordered))
    never = sum(1 for delay in ordered if delay == float("inf"))
    print(
        f"   {label + ':':<11} {late} of {len(ordered)} runs more than 1 s late "
        f"= {share:.2%}  {ratio(share, LATE_TARGET_SHARE)}"
    )
    print(
        f"     delay after the scheduled time: median "
        f"{ordered[len(ordered) // 2] * 1000:.0f} ms, p99 "
        f"{ordered[int(len(ordered) * 0.99)] * 1000:.0f} ms, max "
        f"{ordered[-1] * 1000:.0f} ms; {never} runs never started"
    )


# 4. A storm over TLS -----------------------------------------------------------------


class Arrivals:
    """Watches a server's messages: when the first came, when the last did."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server
        self.count = 0
        self.first: float | None = None
        self.last = time.monotonic()

    def quiet_for(self) -> float:
        """Return how long no new message has come (0 right after one)."""
        if len(self.server.messages) != self.count:
            self.count = len(self.server.messages)
            self.last = time.monotonic()
            self.first = self.first or self.last
        return time.monotonic() - self.last


def bench_storm(folder: Path, count: int, every: str, group_wait: str) -> None:
    ca = trustme.CA()
    ca_file, password_file, flag = (
        folder / "ca.pem",
        folder / "password",
        folder / "flag",
    )
    ca.cert_pem.write_to_path(str(ca_file))
    password_file.write_text(PASSWORD)
    password_file.chmod(0o600)
    names = [f"storm-{number:04d}" for number in range(count)]
    window = seconds_of(group_wait or "10s")

    with SmtpServer(tls="implicit", cert=ca.issue_cert("127.0.0.1")) as server:
        notifier: dict[str, object] = {"plugin_dirs": [str(plugin_folder(folder))]}
        if group_wait:
            notifier["group_wait"] = group_wait
        document = base_config(folder, **notifier)
        document["mail"] = {"transport": "smtp", "to": ["ops@example.test"]}
        document["smtp"] = {
            "host": server.host,
            "port": server.port,
            "security": "ssl",
            "username": USERNAME,
            "password_file": str(password_file),
            "ca_file": str(ca_file),
        }
        document["check"] = [
            {"name": name, "type": "flag", "file": str(flag), "every": every}
            for name in names
        ]
        daemon = Daemon(write_config(folder, document), dump_on_hang=True)
        daemon.wait_started()
        state_dir = folder / "state"
        daemon.wait_for(lambda: checks_run(state_dir) == count, "a first round", 120)

        flag.touch()
        tripped = time.monotonic()
        arrivals = Arrivals(server)

        # Done once mail came, the outbox is empty, and nothing more came for
        # a grouping window (and 3 s) after every check had a run to trip.
        def settled() -> bool:
            quiet = arrivals.quiet_for()
            return (
                arrivals.count > 0
                and not list((state_dir / "outbox").glob("*.eml"))
                and time.monotonic() - tripped > seconds_of(every) + window
                and quiet > max(3.0, window)
            )

        daemon.wait_for(settled, "the storm's mail", 180 + window)
        stopped = daemon.stop()
        messages = [received.message() for received in server.messages]
        connections = server.connections

    text = "\n".join(
        str(message["Subject"]) + message.get_body(("plain",)).get_content()
        for message in messages
    )
    named = len(set(re.findall(r"\bstorm-\d{4}\b", text)) & set(names))
    first_mail = (arrivals.first or tripped) - tripped
    print(f"4. a storm: {count} checks every {every} turn CRITICAL in the same run")
    for label, number in (
        ("messages received", len(messages)),
        ("SMTP connections", connections),
    ):
        print(f"   {label:<18} {number:4d}  {ratio(number, STORM_TARGET)}")
    print(
        f"     checks named in the mail: {named} of {count}; the first message "
        f"came {first_mail:.1f} s after the flag (grouping window "
        f"{group_wait or '10s, the default'})"
    )
    report_stops([(daemon, stopped)])


# Main -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", default=",".join(PARTS), help="parts to run: idle,ready,late,storm"
    )
    parser.add_argument("--seconds", type=float, default=120, help="idle: measured")
    parser.add_argument("--every", default="10s", help="how often each check runs")
    parser.add_argument(
        "--settle-rounds", type=int, default=10, help="idle: rounds before measuring"
    )
    parser.add_argument("--starts", type=int, default=7, help="ready: starts timed")
    parser.add_argument("--checks", type=int, default=1000, help="late: checks")
    parser.add_argument(
        "--late-seconds", type=float, default=150, help="late: seconds measured"
    )
    parser.add_argument("--storm", type=int, default=500, help="storm: checks")
    parser.add_argument(
        "--group-wait", default="", help="storm: [notifier] group_wait (10s)"
    )
    args = parser.parse_args()
    parts = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown part {', '.join(sorted(unknown))}")

    print(
        f"bench/daemon.py: {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} "
        f"CPUs, Python {sys.version.split()[0]}, "
        f"{sum(path.name.isdigit() for path in Path('/proc').iterdir())} processes"
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as scratch:
        for part in parts:
            folder = Path(scratch) / part
            folder.mkdir()
            try:
                if part == "idle":
                    bench_idle(folder, args.seconds, args.every, args.settle_rounds)
                elif part == "ready":
                    bench_ready(folder, args.starts)
                elif part == "late":
                    bench_late(folder, args.checks, args.late_seconds, args.every)
                else:
                    bench_storm(folder, args.storm, args.every, args.group_wait)
            except BenchError as exc:
                print(f"{part}: could not measure: {exc}")
                failed = True
            sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
