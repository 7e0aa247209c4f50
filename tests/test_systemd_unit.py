"""systemd/notifier.service: systemd accepts it, and its sandbox rates OK."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "notifier.service"
MAX_EXPOSURE = 1.5
INSTALLED_EXECSTART = "ExecStart=/usr/local/bin/notifier "

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd)",
)


def directives(path: Path) -> dict[str, list[str]]:
    """Return each ``Key=`` of the unit with every value it is given."""
    found: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "cat"}
    return subprocess.run(
        ["systemd-analyze", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def runnable_copy(tmp_path: Path, text: str) -> Path:
    """Write ``text`` as notifier.service with ExecStart on a real script.

    ``systemd-analyze verify`` refuses a unit whose ExecStart binary does not
    exist, and /usr/local/bin/notifier exists only where notifier was
    installed system-wide; the copy runs the notifier script of the
    interpreter running the tests instead, keeping the arguments.
    """
    script = Path(sys.executable).with_name("notifier")
    assert script.exists(), f"{script} missing: is the package installed?"
    assert INSTALLED_EXECSTART in text
    copy = tmp_path / "notifier.service"
    copy.write_text(text.replace(INSTALLED_EXECSTART, f"ExecStart={script} "))
    return copy


def complaints_about(unit: Path, output: str) -> list[str]:
    """Return the lines of verify's output that concern ``unit``."""
    return [line for line in output.splitlines() if unit.name in line]


def test_unit_has_the_directives_the_daemon_relies_on():
    unit = directives(UNIT)

    assert unit["Type"] == ["notify"]
    assert unit["ExecStart"] == [
        "/usr/local/bin/notifier run -c /etc/notifier/notifier.toml"
    ]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["78"]
    assert len(unit["WatchdogSec"]) == 1
    assert unit["StateDirectory"] == ["notifier"]
    assert unit["RuntimeDirectory"] == ["notifier"]
    assert unit["LoadCredential"] == ["smtp-password:/etc/notifier/smtp-password"]
    assert unit["SupplementaryGroups"] == ["adm"]
    assert unit["User"] == ["notifier"]


def test_hardening_leaves_what_the_checks_and_mail_need():
    unit = directives(UNIT)

    # SMTP over IPv4/IPv6, the notify socket over AF_UNIX.
    families = " ".join(unit["RestrictAddressFamilies"]).split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
    # /proc/stat, /proc/meminfo, /proc/loadavg and other users' processes.
    assert "ProcSubset" not in unit
    assert "ProtectProc" not in unit
    # The mail server is reachable.
    assert "PrivateNetwork" not in unit
    assert "IPAddressDeny" not in unit
    # /var/log stays readable: strict keeps the tree read-only, not hidden.
    assert unit["ProtectSystem"] == ["strict"]
    assert "InaccessiblePaths" not in unit


@needs_systemd_analyze
def test_systemd_verify_accepts_the_unit(tmp_path):
    copy = runnable_copy(tmp_path, UNIT.read_text())

    result = systemd_analyze("verify", "--man=no", str(copy))

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert complaints_about(copy, output) == []


@needs_systemd_analyze
def test_systemd_verify_would_catch_a_bad_directive(tmp_path):
    # Proof that the test above can fail: verify exits 0 on a bad value but
    # names the unit and line.
    broken = UNIT.read_text().replace("Restart=on-failure", "Restart=sometimes")
    copy = runnable_copy(tmp_path, broken)

    result = systemd_analyze("verify", "--man=no", str(copy))

    complaints = complaints_about(copy, result.stdout + result.stderr)
    assert any("sometimes" in line for line in complaints)


@needs_systemd_analyze
def test_security_exposure_is_at_most_one_and_a_half():
    result = systemd_analyze("security", "--offline=true", str(UNIT))

    output = result.stdout + result.stderr
    match = re.search(
        r"Overall exposure level for notifier\.service: (\d+\.\d+) (\w+)", output
    )
    assert match is not None, output
    exposure, verdict = float(match.group(1)), match.group(2)
    assert exposure <= MAX_EXPOSURE, output
    assert verdict == "OK"
