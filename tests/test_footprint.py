"""What the daemon keeps resident: the imports it avoids and its malloc settings.

Each test runs a fresh interpreter, because what a module imports can only be
seen in a process that has imported nothing yet (this test process has loaded
asyncio, ssl and the rest through aiosmtpd long before). The memory itself is
measured by ``bench/daemon.py``; these tests pin down the causes, so that a
change that brings OpenSSL back into the idle daemon fails here first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import tomli_w

REPO = Path(__file__).resolve().parent.parent
HEAVY = (
    # OpenSSL and what brings it: wanted only by the smtp transport's client.
    "asyncio",
    "ssl",
    "_ssl",
    "_hashlib",
    "smtplib",
    "hashlib",
    # Wanted only once there is mail to write or read.
    "email",
    "notifier.compose",
    "notifier.digest",
    # APScheduler's imports that the daemon never uses (notifier/scheduling.py)
    # and importlib.metadata, which notifier.entrypoints replaces.
    "importlib.metadata",
    "multiprocessing",
    "uuid",
    # Wanted only to search a large block of log in one pass.
    "ahocorasick_rs",
    # Wanted only for a rare message or another command.
    "decimal",
    "difflib",
    "notifier.cli.queue_cmd",
)


def run_python(code: str, **environment: str) -> str:
    """Run ``code`` in a new interpreter; return what it printed."""
    env = {**os.environ, **environment}
    finished = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout.strip()


def example_config(tmp_path: Path) -> Path:
    """The example configuration (mail by file) with its state in tmp_path."""
    document = tomllib.loads((REPO / "config.example.toml").read_text())
    document["notifier"]["state_dir"] = str(tmp_path / "state")
    document["file"] = {"directory": str(tmp_path / "mail")}
    path = tmp_path / "notifier.toml"
    path.write_text(tomli_w.dumps(document))
    return path


def test_idle_daemon_with_mail_by_file_loads_no_mail_code_nor_openssl(tmp_path):
    # What `notifier run` imports before its first check: the command line,
    # the daemon and the example configuration's plugins and transport.
    # tests/test_daemon.py shows that mail still goes out once there is some.
    config = example_config(tmp_path)

    loaded = run_python(
        f"""
        import sys
        from pathlib import Path
        from notifier.cli import build_parser
        build_parser("run")
        import notifier.daemon
        from notifier.loader import load
        from notifier.transport import create_transport
        loaded = load(Path({str(config)!r}))
        create_transport(loaded.config, loaded.registry.transport_map())
        print(sorted(set(sys.modules) & set({HEAVY!r})))
        """
    )

    assert loaded == "[]"


@pytest.mark.slow
def test_running_daemon_loads_none_of_them_through_its_first_rounds(tmp_path):
    # The real daemon on its main thread, as `notifier run` starts it; a
    # helper thread appends to the log the logscan check reads, waits for
    # the status file to show every check run (it is written every 20s),
    # notes what is imported, and stops it with SIGTERM.
    config = example_config(tmp_path)
    document = tomllib.loads(config.read_text())
    document["defaults"]["every"] = "1s"
    for check in document["check"]:
        check.pop("every", None)
        check.pop("cron", None)
        if check["type"] == "logscan":
            check["path"] = str(tmp_path / "quiet.log")
    (tmp_path / "quiet.log").write_text("nothing to see\n")
    config.write_text(tomli_w.dumps(document))
    status = tmp_path / "state" / "status.json"

    loaded = run_python(
        f"""
        import json, os, signal, sys, threading, time
        from pathlib import Path
        from notifier.cli import main

        def rounds_done():
            try:
                checks = json.loads(Path({str(status)!r}).read_text())["checks"]
            except (OSError, ValueError, KeyError):
                return False
            return len(checks) == {len(document["check"])} and all(
                record["last_run"] for record in checks.values()
            )

        def watch():
            deadline = time.monotonic() + 50
            with open({str(tmp_path / "quiet.log")!r}, "a") as log:
                while not rounds_done() and time.monotonic() < deadline:
                    log.write("sshd[7]: session opened\\n")
                    log.flush()
                    time.sleep(0.1)
            print(rounds_done())
            print(sorted(set(sys.modules) & set({HEAVY!r})))
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, daemon=True).start()
        sys.exit(main(["run", "-c", {str(config)!r}]))
        """
    )

    assert loaded.splitlines() == ["True", "[]"]
    assert not list((tmp_path / "mail").glob("*.eml"))  # quiet: nothing sent


def test_the_scheduler_runs_jobs_without_the_modules_it_never_uses():
    ran = run_python(
        """
        import sys, threading
        from notifier.scheduling import (
            BackgroundScheduler, IntervalTrigger, ThreadPoolExecutor,
        )
        unused = ("asyncio", "importlib.metadata", "multiprocessing",
                  "concurrent.futures.process", "uuid")
        print(sorted(set(sys.modules) & set(unused)))
        ran = threading.Event()
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(2)}, timezone="UTC"
        )
        scheduler.start()
        job = scheduler.add_job(ran.set, trigger=IntervalTrigger(seconds=0.05))
        print(ran.wait(10), len(job.id))
        scheduler.shutdown()
        """
    )

    assert ran.splitlines() == ["[]", "True 32"]


def test_modules_imported_after_the_scheduler_are_the_real_ones():
    ran = run_python(
        """
        import notifier.scheduling
        import asyncio, importlib.metadata, multiprocessing, uuid
        from concurrent.futures import ProcessPoolExecutor
        async def answer():
            await asyncio.sleep(0)
            return 42
        print(asyncio.run(answer()))
        print(importlib.metadata.version("apscheduler").startswith("3."))
        print(multiprocessing.cpu_count() >= 1, uuid.uuid4().version)
        with ProcessPoolExecutor(1) as pool:
            print(pool.submit(abs, -7).result())
        """
    )

    assert ran.splitlines() == ["42", "True", "True 4", "7"]


def test_smtp_transport_still_loads_its_client_when_made(tmp_path):
    config = example_config(tmp_path)
    document = tomllib.loads(config.read_text())
    document["mail"]["transport"] = "smtp"
    document["smtp"]["host"] = "127.0.0.1"
    config.write_text(tomli_w.dumps(document))

    made = run_python(
        f"""
        from pathlib import Path
        from notifier.loader import load
        from notifier.transport import create_transport
        loaded = load(Path({str(config)!r}))
        transport = create_transport(loaded.config, loaded.registry.transport_map())
        print(type(transport).__module__, transport.port)
        """
    )

    assert made == "notifier.transports.smtp_client 465"


def test_malloc_settings_apply_unless_the_environment_chose(monkeypatch):
    for name in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    code = "from notifier.mallocsettings import tune_malloc; print(tune_malloc())"

    applied = run_python(code)
    left = run_python(code, MALLOC_ARENA_MAX="4")

    assert applied == "True"  # glibc, as on the Debian machines we target
    assert left == "False"
