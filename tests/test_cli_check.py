"""``notifier check`` as a user runs it: a real process, real config files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
import tomli_w

pytestmark = pytest.mark.slow

PLUGIN = textwrap.dedent(
    """
    from __future__ import annotations

    import os
    import subprocess

    from notifier import CheckType, Option, Result, Status, hookimpl


    class Noisy:
        def __init__(self, context):
            pass

        def run(self):
            print("noise from print")
            os.write(1, b"noise from fd 1\\n")
            subprocess.run(["echo", "noise from a child"], check=True)
            return Result(Status.OK, "noisy but fine", metrics={"odd": float("nan")})


    class Evidence:
        def __init__(self, context):
            self.lines = context.options["lines"]

        def run(self):
            lines = tuple(f"line {i}" for i in range(1, self.lines + 1))
            return Result(Status.WARNING, "many lines", evidence=lines)


    class Counter:
        def __init__(self, context):
            self.file = context.state_dir / "count"

        def run(self):
            count = int(self.file.read_text()) if self.file.exists() else 0
            self.file.write_text(str(count + 1))
            return Result(Status.OK, f"count {count + 1}")


    class Raiser:
        def __init__(self, context):
            pass

        def run(self):
            raise RuntimeError("plugin bug\\nwith details")


    @hookimpl
    def notifier_check_types():
        return [
            CheckType("noisy", Noisy),
            CheckType("evidence", Evidence, (Option("lines", "int", 8),)),
            CheckType("counter", Counter),
            CheckType("raiser", Raiser),
        ]
    """
)


def write_config(tmp_path: Path, checks: list[dict], plugins: bool = False) -> Path:
    notifier: dict = {"state_dir": str(tmp_path / "state")}
    if plugins:
        folder = tmp_path / "plugins"
        folder.mkdir(mode=0o755, exist_ok=True)
        (folder / "test_plugin.py").write_text(PLUGIN)
        notifier["plugin_dirs"] = [str(folder)]
    path = tmp_path / "notifier.toml"
    path.write_text(tomli_w.dumps({"notifier": notifier, "check": checks}))
    return path


def notifier_check(*args: str, env: dict | None = None):
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("NOTIFIER")
    }
    return subprocess.run(
        [sys.executable, "-m", "notifier", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
        check=False,
    )


def disk(tmp_path: Path, name: str, state: str) -> dict:
    """A disk check on tmp_path whose thresholds force ``state``."""
    used = psutil.disk_usage(str(tmp_path)).percent
    entry = {"name": name, "type": "disk", "path": str(tmp_path)}
    if state == "OK":
        entry |= {"warning": 99.0, "critical": 99.5}
    elif state == "WARNING":
        entry |= {"warning": used / 2, "critical": used + (100 - used) / 2}
    elif state == "CRITICAL":
        entry |= {"warning": used / 4, "critical": used / 2}
    else:
        entry["path"] = str(tmp_path / "missing")
    return entry


@pytest.mark.parametrize(
    ("state", "exit_status"),
    [("OK", 0), ("WARNING", 1), ("CRITICAL", 2), ("UNKNOWN", 3)],
)
def test_exit_status_follows_nagios(tmp_path, state, exit_status):
    config = write_config(tmp_path, [disk(tmp_path, "data", state)])

    done = notifier_check("-c", str(config))

    assert done.returncode == exit_status, done.stderr
    header, row = done.stdout.splitlines()[:2]
    assert header.split() == ["CHECK", "STATUS", "SUMMARY"]
    assert row.split()[:2] == ["data", state]


def test_worst_result_wins_and_unknown_ranks_below_warning(tmp_path):
    config = write_config(
        tmp_path,
        [
            disk(tmp_path, "ok", "OK"),
            disk(tmp_path, "blind", "UNKNOWN"),
            disk(tmp_path, "filling", "WARNING"),
        ],
    )

    done = notifier_check("-c", str(config))

    assert done.returncode == 1
    assert [line.split()[0] for line in done.stdout.splitlines()] == [
        "CHECK",
        "ok",
        "blind",
        "filling",
    ]


def test_json_output_parses_with_every_field(tmp_path):
    config = write_config(
        tmp_path,
        [
            disk(tmp_path, "data", "CRITICAL"),
            {"name": "load", "type": "load", "warning": 0.0, "critical": 1e6},
        ],
    )

    done = notifier_check("-c", str(config), "--json")

    assert done.returncode == 2
    data, load = json.loads(done.stdout)
    assert data["name"] == "data"
    assert data["type"] == "disk"
    assert data["status"] == "CRITICAL"
    assert " full (" in data["summary"]
    assert data["metrics"]["total_bytes"] == psutil.disk_usage(str(tmp_path)).total
    assert data["evidence"] == []
    assert data["attachments"] == []
    assert load["status"] == "WARNING"
    assert set(load["metrics"]) >= {"load_1m", "load_5m", "load_15m", "cores"}


def test_check_output_on_stdout_does_not_corrupt_json(tmp_path):
    config = write_config(tmp_path, [{"name": "noisy", "type": "noisy"}], plugins=True)

    done = notifier_check("-c", str(config), "--json")

    assert done.returncode == 0, done.stderr
    (noisy,) = json.loads(done.stdout)
    assert noisy["summary"] == "noisy but fine"
    assert noisy["metrics"] == {"odd": None}
    for noise in ("noise from print", "noise from fd 1", "noise from a child"):
        assert noise in done.stderr


def test_evidence_is_indented_under_a_bad_row_and_capped(tmp_path):
    config = write_config(
        tmp_path,
        [
            {"name": "many", "type": "evidence", "lines": 8},
            disk(tmp_path, "data", "OK"),
        ],
        plugins=True,
    )

    done = notifier_check("-c", str(config))

    lines = done.stdout.splitlines()
    assert lines[1].split()[:2] == ["many", "WARNING"]
    assert lines[2:8] == [
        "    line 1",
        "    line 2",
        "    line 3",
        "    line 4",
        "    line 5",
        "    ... 3 more (--json shows them all)",
    ]
    assert lines[8].split()[:2] == ["data", "OK"]
    assert len(lines) == 9


def test_raising_check_is_unknown_without_traceback(tmp_path):
    config = write_config(tmp_path, [{"name": "bug", "type": "raiser"}], plugins=True)

    done = notifier_check("-c", str(config))

    assert done.returncode == 3
    assert done.stdout.splitlines()[1].split(maxsplit=2) == [
        "bug",
        "UNKNOWN",
        "check raised RuntimeError: plugin bug",
    ]
    assert "with details" not in done.stdout
    assert "Traceback" not in done.stderr


def test_named_checks_run_alone_even_when_disabled(tmp_path):
    config = write_config(
        tmp_path,
        [
            disk(tmp_path, "broken", "UNKNOWN"),
            disk(tmp_path, "spare", "CRITICAL") | {"enabled": False},
            disk(tmp_path, "fine", "OK"),
        ],
    )

    everything = notifier_check("-c", str(config))
    named = notifier_check("-c", str(config), "spare")

    assert everything.returncode == 3
    assert "spare" not in everything.stdout
    assert named.returncode == 2
    assert [line.split()[0] for line in named.stdout.splitlines()] == [
        "CHECK",
        "spare",
    ]


def test_unknown_name_is_a_usage_error_with_a_suggestion(tmp_path):
    config = write_config(
        tmp_path, [disk(tmp_path, "root-disk", "OK"), disk(tmp_path, "cpu", "OK")]
    )

    done = notifier_check("-c", str(config), "rot-disk")

    assert done.returncode == 64
    assert done.stdout == ""
    assert "did you mean 'root-disk'?" in done.stderr
    assert "root-disk, cpu" in done.stderr


def test_bad_config_exits_78_with_one_line(tmp_path):
    config = tmp_path / "notifier.toml"
    config.write_text('[[check]]\nname = "data"\ntype = "disk"\nwarnin = 80\n')

    done = notifier_check("-c", str(config))

    assert done.returncode == 78
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert str(config) in done.stderr
    assert "did you mean 'warning'?" in done.stderr
    assert "Traceback" not in done.stderr


def test_config_from_environment_variable(tmp_path):
    config = write_config(tmp_path, [disk(tmp_path, "data", "CRITICAL")])

    done = notifier_check(env={"NOTIFIER_CONFIG": str(config)})

    assert done.returncode == 2


def test_one_shot_reads_the_daemon_state_but_never_changes_it(tmp_path):
    config = write_config(
        tmp_path, [{"name": "tally", "type": "counter"}], plugins=True
    )
    saved = tmp_path / "state" / "checks" / "tally" / "count"
    saved.parent.mkdir(parents=True)
    saved.write_text("5")

    first = notifier_check("-c", str(config))
    second = notifier_check("-c", str(config))

    assert "count 6" in first.stdout
    assert "count 6" in second.stdout
    assert saved.read_text() == "5"


def test_state_dir_nobody_can_write_still_runs_and_creates_nothing(tmp_path):
    config = write_config(
        tmp_path, [{"name": "tally", "type": "counter"}], plugins=True
    )
    text = config.read_text().replace(str(tmp_path / "state"), "/proc/notifier")
    config.write_text(text)

    done = notifier_check("-c", str(config))

    assert done.returncode == 0, done.stderr
    assert "count 1" in done.stdout
    assert not Path("/proc/notifier").exists()
