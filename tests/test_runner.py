"""Running one check safely, and creating a configured check."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from pathlib import Path

import pluggy
import pytest

from notifier import hookspecs
from notifier import runner as runner_module
from notifier.checks.base import CheckContext, CheckType, Result, Status
from notifier.config import build_config
from notifier.errors import ConfigError, PermissionRefusedError
from notifier.options import Option
from notifier.plugins import CheckTypeInfo, Registry
from notifier.runner import (
    CheckRunner,
    _Call,
    _Workers,
    create_check,
    run_check,
    warmup_of,
)


class Raising:
    def run(self):
        raise ValueError("disk on fire\nsecond line of detail")


class Hanging:
    def __init__(self):
        self.release = threading.Event()
        self.runs = 0

    def run(self):
        self.runs += 1
        self.release.wait()
        return Result(Status.OK, "finally done")


class ReturningNone:
    def run(self):
        return None


class ReturningBareStatus:
    def run(self):
        return Result(2, "status as a plain int")  # type: ignore[arg-type]


class Exiting:
    def run(self):
        raise SystemExit(3)


class Chatty:
    def run(self):
        return Result(Status.WARNING, "first line\nsecond line\n")


def wait_until_run_ended(name: str) -> None:
    """Wait until no thread is running check ``name`` any more.

    Worker threads outlive their runs (they wait for the next one), so the
    end of a run is the moment its thread gives up the check's name.
    """
    deadline = time.monotonic() + 5
    while any(thread.name == name for thread in threading.enumerate()):
        if time.monotonic() > deadline:
            pytest.fail(f"a thread is still named {name!r}")
        time.sleep(0.01)


# --- run_check ---------------------------------------------------------------


def test_exception_becomes_unknown_with_one_line_reason():
    result = run_check(Raising(), 5.0, "raiser")

    assert result.status is Status.UNKNOWN
    assert result.summary == "check raised ValueError: disk on fire"


def test_exception_logged_without_traceback_unless_debug(caplog):
    caplog.set_level(logging.INFO, logger="notifier.runner")
    run_check(Raising(), 5.0, "raiser")
    quiet = [r for r in caplog.records if r.levelno == logging.WARNING]

    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="notifier.runner")
    run_check(Raising(), 5.0, "raiser")
    verbose = [r for r in caplog.records if r.levelno == logging.WARNING]

    assert quiet[0].getMessage() == ("check 'raiser' raised ValueError: disk on fire")
    assert quiet[0].exc_info is None
    assert verbose[0].exc_info is not None


def test_hanging_check_times_out_as_unknown_and_is_not_restarted_while_stuck():
    check = Hanging()

    first = run_check(check, 0.2, "sleeper")
    while_stuck = run_check(check, 0.2, "sleeper")
    check.release.set()
    wait_until_run_ended("check-sleeper")
    after_release = run_check(check, 5.0, "sleeper")

    assert first.status is Status.UNKNOWN
    assert first.summary == "check timed out after 200ms"
    assert while_stuck.status is Status.UNKNOWN
    assert while_stuck.summary.startswith("check not started: its previous run")
    assert check.runs == 2
    assert after_release == Result(Status.OK, "finally done")


class ThreadRecorder:
    def __init__(self):
        self.threads = []

    def run(self):
        self.threads.append(threading.current_thread())
        return Result(Status.OK, "recorded")


def test_runs_one_after_another_reuse_one_thread():
    check = ThreadRecorder()

    for _ in range(5):
        assert run_check(check, 5.0, "reused").status is Status.OK
        wait_until_run_ended("check-reused")

    assert len(check.threads) == 5
    assert all(thread is check.threads[0] for thread in check.threads)


def test_idle_worker_threads_end_after_their_idle_time():
    workers = _Workers(idle_seconds=0.05)
    check = ThreadRecorder()
    call = _Call(check.run, check, None)

    workers.submit(call, "check-short-lived")
    call.join(5)
    (thread,) = check.threads
    deadline = time.monotonic() + 5
    while thread.is_alive():
        assert time.monotonic() < deadline, "the idle thread never ended"
        time.sleep(0.01)


def test_stuck_check_is_reported_once_then_quietly(caplog):
    caplog.set_level(logging.DEBUG, logger="notifier.runner")
    check = Hanging()
    run_check(check, 0.1, "sleeper")
    caplog.clear()

    for _ in range(3):
        result = run_check(check, 0.1, "sleeper")
    check.release.set()

    skipped = [r for r in caplog.records if "not started" in r.getMessage()]
    assert [r.levelno for r in skipped] == [
        logging.WARNING,
        logging.DEBUG,
        logging.DEBUG,
    ]
    assert result.summary.startswith("check not started: its previous run timed out")
    assert result.summary.endswith(" and has not returned yet")


def test_timeout_is_written_the_human_way():
    check = Hanging()

    result = run_check(check, 1.5, "slow")
    check.release.set()

    assert result.summary == "check timed out after 1.5s"


def test_returning_none_is_unknown_naming_it():
    result = run_check(ReturningNone(), 5.0, "forgetful")

    assert result.status is Status.UNKNOWN
    assert result.summary == "check returned None, not a Result"


def test_returning_a_bare_int_status_is_unknown():
    result = run_check(ReturningBareStatus(), 5.0, "intish")

    assert result.status is Status.UNKNOWN
    assert "check returned status 2" in result.summary


def test_sys_exit_inside_a_check_is_reported_not_obeyed():
    result = run_check(Exiting(), 5.0, "quitter")

    assert result.status is Status.UNKNOWN
    assert result.summary == "check raised SystemExit: 3"


def test_multi_line_summary_is_folded_to_one_line():
    result = run_check(Chatty(), 5.0, "chatty")

    assert result.status is Status.WARNING
    assert result.summary == "first line second line"


def test_warmup_defaults_to_zero_and_ignores_nonsense():
    class Warm:
        warmup = 1.5

    class Silly:
        warmup = True

    assert warmup_of(Raising()) == 0.0
    assert warmup_of(Warm()) == 1.5
    assert warmup_of(Silly()) == 0.0


# --- create_check ------------------------------------------------------------


def registry_with(*check_types: CheckType) -> Registry:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    return Registry(
        manager, {t.name: CheckTypeInfo(t, "tests/test_runner.py") for t in check_types}
    )


def configure(tmp_path: Path, registry: Registry, entry: dict, state_dir=None):
    raw = {
        "notifier": {"state_dir": str(state_dir or tmp_path / "state")},
        "check": [entry],
    }
    config = build_config(raw, tmp_path / "notifier.toml", registry.check_type_map())
    return config.checks[0], config


def remembering_type() -> tuple[CheckType, list[CheckContext]]:
    seen: list[CheckContext] = []

    def create(context: CheckContext):
        seen.append(context)
        return ReturningNone()

    option = Option("limit", "int", 3)
    return CheckType("remembering", create, (option,)), seen


def test_create_gives_a_private_state_dir_and_the_options(tmp_path):
    check_type, seen = remembering_type()
    registry = registry_with(check_type)
    spec, config = configure(
        tmp_path, registry, {"name": "one", "type": "remembering", "timeout": "7s"}
    )

    create_check(spec, registry, config)

    context = seen[0]
    assert context.state_dir == tmp_path / "state" / "checks" / "one"
    assert stat.S_IMODE(context.state_dir.stat().st_mode) == 0o700
    assert context.options == {"limit": 3}
    assert context.timeout == 7.0
    assert context.name == "one"
    assert context.hostname == config.notifier.hostname


def test_create_that_raises_gives_a_check_reporting_why(tmp_path):
    def create(context):
        raise RuntimeError("cannot talk to the database")

    registry = registry_with(CheckType("broken", create))
    spec, config = configure(tmp_path, registry, {"name": "db", "type": "broken"})

    check = create_check(spec, registry, config)
    result = run_check(check, 5.0, "db")

    assert result.status is Status.UNKNOWN
    assert result.summary == (
        "check could not be created: RuntimeError: cannot talk to the database"
    )


def test_create_that_hangs_is_given_up_after_the_check_timeout(tmp_path):
    release = threading.Event()

    def create(context):
        release.wait()
        return Hanging()

    registry = registry_with(CheckType("stuck", create))
    spec, config = configure(
        tmp_path, registry, {"name": "stuck", "type": "stuck", "timeout": "200ms"}
    )

    check = create_check(spec, registry, config)
    release.set()
    result = check.run()

    assert result.summary == "creating the check timed out after 200ms"


def test_create_returning_something_without_run_is_reported(tmp_path):
    registry = registry_with(CheckType("odd", lambda context: 42))
    spec, config = configure(tmp_path, registry, {"name": "odd", "type": "odd"})

    result = create_check(spec, registry, config).run()

    assert result.status is Status.UNKNOWN
    assert result.summary == "check type 'odd' created an int without run()"


def test_state_dir_blocked_by_a_file_is_a_config_error_naming_it(tmp_path):
    check_type, _ = remembering_type()
    registry = registry_with(check_type)
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    spec, config = configure(tmp_path, registry, {"name": "x", "type": "remembering"})

    with pytest.raises(ConfigError) as caught:
        create_check(spec, registry, config)

    message = str(caught.value)
    assert caught.value.exit_code == 78
    assert "[notifier] state_dir" in message
    assert str(blocker / "checks" / "x") in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any folder")
def test_state_dir_not_writable_is_refused_naming_folder_and_fix(tmp_path):
    check_type, _ = remembering_type()
    registry = registry_with(check_type)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    spec, config = configure(
        tmp_path, registry, {"name": "x", "type": "remembering"}, state_dir=locked
    )

    with pytest.raises(PermissionRefusedError) as caught:
        create_check(spec, registry, config)

    assert str(locked / "checks" / "x") in str(caught.value)
    assert "state_dir" in str(caught.value)


class Reports:
    """Collects what a CheckRunner reports, and lets a test wait for it."""

    def __init__(self) -> None:
        self.results: list[tuple[Result, float]] = []
        self.arrived = threading.Condition()

    def __call__(self, result: Result, duration: float) -> None:
        with self.arrived:
            self.results.append((result, duration))
            self.arrived.notify_all()

    def wait_for(self, count: int) -> list[tuple[Result, float]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.results) >= count, timeout=10)
        return self.results


def test_runner_start_returns_at_once_and_reports_the_result():
    runner = CheckRunner()
    check = Hanging()
    reports = Reports()

    assert runner.start("slow", check, 10.0, reports)
    assert reports.results == []  # start did not wait for the run
    check.release.set()

    ((result, duration),) = reports.wait_for(1)
    assert result.summary == "finally done"
    assert duration >= 0


def test_runner_reports_a_hung_run_once_at_its_timeout_and_drops_the_late_one():
    runner = CheckRunner()
    check = Hanging()
    reports = Reports()

    runner.start("stuck", check, 0.2, reports)
    ((result, _),) = reports.wait_for(1)
    check.release.set()
    wait_until_run_ended("check-stuck")

    assert result.status is Status.UNKNOWN
    assert result.summary == "check timed out after 200ms"
    assert len(reports.results) == 1


def test_runner_skips_a_tick_while_the_run_is_live_and_refuses_while_abandoned():
    runner = CheckRunner()
    check = Hanging()
    reports = Reports()

    assert runner.start("stuck", check, 0.3, reports)
    assert not runner.start("stuck", check, 0.3, reports)  # still live: skipped
    reports.wait_for(1)  # timed out, now abandoned
    assert not runner.start("stuck", check, 0.3, reports)
    results = reports.wait_for(2)
    check.release.set()

    assert [r.summary.split(":")[0] for r, _ in results] == [
        "check timed out after 300ms",
        "check not started",
    ]
    assert check.runs == 1


def test_runner_turns_exceptions_into_unknown():
    runner = CheckRunner()
    reports = Reports()

    runner.start("raising", Raising(), 5.0, reports)

    ((result, _),) = reports.wait_for(1)
    assert result.status is Status.UNKNOWN
    assert result.summary == "check raised ValueError: disk on fire"


def test_runner_stop_waits_for_live_runs_within_the_grace():
    runner = CheckRunner()
    check = Hanging()
    reports = Reports()
    runner.start("slow", check, 30.0, reports)
    threading.Timer(0.2, check.release.set).start()

    runner.stop(5.0)

    assert [r.summary for r, _ in reports.results] == ["finally done"]
    assert runner.running() == 0


class Marking:
    """Notes when its run starts; returns at once."""

    def __init__(self):
        self.started = threading.Event()

    def run(self):
        self.started.set()
        return Result(Status.OK, "marked")


def wait_until_running(check: Hanging) -> None:
    deadline = time.monotonic() + 5
    while check.runs == 0:
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.01)


def test_runner_runs_started_together_take_turns(monkeypatch):
    # A long wait, so that only the end of the first run can start the next.
    monkeypatch.setattr(runner_module, "TURN_WAIT_SECONDS", 30.0)
    runner = CheckRunner()
    first, second = Hanging(), Marking()
    reports = Reports()

    runner.start("first", first, 60.0, reports)
    wait_until_running(first)
    runner.start("second", second, 60.0, reports)
    waited = not second.started.wait(0.3)
    first.release.set()
    results = reports.wait_for(2)

    assert waited
    assert second.started.is_set()
    assert [r.summary for r, _ in results] == ["finally done", "marked"]


def test_runner_a_hung_run_delays_the_next_by_the_turn_wait_only(monkeypatch):
    monkeypatch.setattr(runner_module, "TURN_WAIT_SECONDS", 0.2)
    runner = CheckRunner()
    hung, other = Hanging(), Marking()
    reports = Reports()

    runner.start("hung", hung, 60.0, reports)
    wait_until_running(hung)
    started = time.monotonic()
    runner.start("other", other, 60.0, reports)
    ((result, _),) = reports.wait_for(1)
    delay = time.monotonic() - started
    hung.release.set()

    assert result.summary == "marked"
    assert delay >= 0.2  # it did wait for its turn...
    assert delay < 10  # ...and then ran, the hung run still going
