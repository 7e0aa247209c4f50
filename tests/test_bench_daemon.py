"""bench/daemon.py runs end to end at tiny sizes and reports every part.

The benchmark's numbers are not judged here (timings on a shared machine
prove nothing); what is checked is that each part measured something real:
the daemon started, answered READY=1, ran the stamp checks, stopped, and the
storm's mail reached the TLS server.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench" / "daemon.py"


def test_daemon_benchmark_runs_every_part_at_tiny_sizes():
    finished = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--seconds=1",
            "--every=1s",
            "--settle-rounds=2",
            "--starts=1",
            "--checks=30",
            "--late-seconds=2",
            "--storm=10",
            "--group-wait=500ms",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = finished.stdout

    assert finished.returncode == 0, output + finished.stderr
    assert "could not measure" not in output
    assert re.search(r"resident \(VmRSS\)\s+\d+\.\d MiB", output), output
    assert re.search(r"CPU\s+\d+\.\d\d s/h", output), output
    assert re.search(r"notifier run\s+\d\.\d{3} s", output), output
    assert re.search(r"all runs:\s+\d+ of \d+ runs more than 1 s late", output)
    messages = re.search(r"messages received\s+(\d+)", output)
    assert messages, output
    assert int(messages[1]) >= 1
    assert "checks named in the mail: 10 of 10" in output
