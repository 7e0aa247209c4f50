"""``notifier silence`` as a user runs it: a real process on a real config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from notifier.silences import SilenceStore


@pytest.fixture
def config(tmp_path):
    state_dir = tmp_path / "state"
    path = tmp_path / "notifier.toml"
    path.write_text(
        f"""
[notifier]
state_dir = "{state_dir}"

[[check]]
name = "root-disk"
type = "command"
command = ["/bin/true"]

[[check]]
name = "nightly-backup"
type = "command"
command = ["/bin/true"]
"""
    )
    return path


def notifier(config, *args, tz="Europe/Berlin"):
    environment = {**os.environ, "TZ": tz}
    environment.pop("NOTIFIER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "notifier", "silence", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


UNTIL = re.compile(
    r"until (\d{4}-\d\d-\d\d \d\d:\d\d) (CET|CEST) "
    r"\((\d{4}-\d\d-\d\d \d\d:\d\d) UTC\)"
)


def test_silence_prints_until_when_in_local_time_and_utc(config):
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    done = notifier(config, "root-disk", "--for", "2h", "--reason", "disk swap")
    after = datetime.now(UTC)

    assert done.returncode == 0, done.stderr
    first, reason = done.stdout.splitlines()
    assert first.startswith("silenced 'root-disk' for 2h, until ")
    assert reason == "reason: disk swap"
    local, zone, universal = UNTIL.search(first).groups()
    until = datetime.strptime(universal, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert before + timedelta(hours=2) <= until <= after + timedelta(hours=2)
    # Berlin is one or two hours ahead of UTC.
    offset = {"CET": 1, "CEST": 2}[zone]
    shown_local = datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert shown_local - until == timedelta(hours=offset)


def test_running_daemon_sees_the_silence_and_its_clearing(config, tmp_path):
    daemon = SilenceStore(tmp_path / "state")
    now = datetime.now(UTC)
    assert not daemon.is_silenced("root-disk", now)

    assert notifier(config, "root-disk", "--for", "30m").returncode == 0
    assert daemon.is_silenced("root-disk", datetime.now(UTC))
    assert not daemon.is_silenced("nightly-backup", datetime.now(UTC))

    assert notifier(config, "--clear", "root-disk").returncode == 0
    assert not daemon.is_silenced("root-disk", datetime.now(UTC))


def test_list_shows_running_silences_then_clear_removes_one(config):
    notifier(config, "root-disk", "--for", "2h", "--reason", "disk swap")
    notifier(config, "nightly-backup", "--for", "90m")

    listed = notifier(config, "--list")
    assert listed.returncode == 0
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "UNTIL", "UTC", "LEFT", "REASON"]
    assert [row.split()[0] for row in rows] == ["nightly-backup", "root-disk"]
    assert re.search(r"\b(1h30m|1h29m)\b", rows[0])
    assert re.search(r"\b(2h|1h59m)\b", rows[1])
    assert rows[1].endswith("disk swap")

    cleared = notifier(config, "--clear", "root-disk")
    assert cleared.returncode == 0
    assert cleared.stdout.startswith("cleared the silence on 'root-disk', which ran")
    rows = notifier(config, "--list").stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["nightly-backup"]


def test_list_when_there_are_none(config):
    done = notifier(config, "--list")
    assert (done.returncode, done.stdout) == (0, "no silences\n")


def test_clear_of_a_check_without_silence_says_so(config):
    done = notifier(config, "--clear", "root-disk")
    assert done.returncode == 0
    assert done.stdout == "no silence on 'root-disk'; nothing to clear\n"


def test_silence_all_covers_every_check(config, tmp_path):
    done = notifier(config, "all", "--for", "1h", tz="UTC")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("silenced every check for 1h, until ")
    daemon = SilenceStore(tmp_path / "state")
    now = datetime.now(UTC)
    assert daemon.is_silenced("root-disk", now)
    assert daemon.is_silenced("nightly-backup", now)


def test_adding_again_says_what_it_replaced(config):
    notifier(config, "root-disk", "--for", "4h")
    done = notifier(config, "root-disk", "--for", "10m")
    first, second = done.stdout.splitlines()
    assert first.startswith("replaced the silence on 'root-disk', which ran until ")
    assert second.startswith("silenced 'root-disk' for 10m, until ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["root-dsik", "--for", "2h"],
            "'root-dsik' is not a configured check (did you mean 'root-disk'?)",
        ),
        (["--clear", "nightly-bakup"], "did you mean 'nightly-backup'?"),
        (["root-disk", "--for", "2 hours"], "--for: '2 hours' is not a duration"),
        (["root-disk", "--for", "0"], "is no time at all"),
        (["root-disk"], "say how long to silence 'root-disk', such as --for 2h"),
        ([], "name a check to silence, or use --list or --clear NAME"),
        (["--list", "root-disk"], "--list takes no NAME"),
        (["--clear", "root-disk", "--for", "1h"], "--clear takes no --for"),
    ],
)
def test_usage_mistakes_exit_64_with_one_clear_line(config, args, message):
    done = notifier(config, *args)
    assert done.returncode == 64
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_list_and_clear_together_are_refused(config):
    done = notifier(config, "--list", "--clear", "root-disk")
    assert done.returncode == 64
    assert "not allowed with argument" in done.stderr


def test_broken_config_exits_78(tmp_path):
    path = tmp_path / "notifier.toml"
    path.write_text("[notifier]\nstate_dri = '/tmp'\n")
    done = notifier(path, "--list")
    assert done.returncode == 78
    assert "did you mean 'state_dir'?" in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_unwritable_state_folder_exits_77(config, tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state_dir.chmod(0o500)
    try:
        done = notifier(config, "root-disk", "--for", "1h")
    finally:
        state_dir.chmod(0o700)
    assert done.returncode == 77
    assert "permission denied" in done.stderr


def test_damaged_silences_file_is_set_aside_with_a_warning(config, tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "silences.json").write_text("garbage")
    done = notifier(config, "root-disk", "--for", "1h")
    assert done.returncode == 0
    assert "was damaged; it was moved to" in done.stderr
    assert len(list(state_dir.glob("silences.json.corrupt-*"))) == 1
    assert SilenceStore(state_dir).is_silenced("root-disk", datetime.now(UTC))


def test_list_warns_about_a_damaged_file_instead_of_hiding_it(config, tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "silences.json").write_text("garbage")
    done = notifier(config, "--list")
    assert done.returncode == 0
    assert done.stdout == "no silences\n"
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"notifier: warning: {state_dir / 'silences.json'} cannot")
    assert (state_dir / "silences.json").read_text() == "garbage"


def test_on_a_utc_machine_the_time_is_not_printed_twice(config):
    done = notifier(config, "root-disk", "--for", "1h", tz="UTC")
    assert re.fullmatch(
        r"silenced 'root-disk' for 1h, until \d{4}-\d\d-\d\d \d\d:\d\d UTC\n",
        done.stdout,
    )
    header = notifier(config, "--list", tz="UTC").stdout.splitlines()[0]
    assert header.split() == ["NAME", "UNTIL", "LEFT", "REASON"]
