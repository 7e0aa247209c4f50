"""Benchmark of the logscan check against grep and a per-line Python loop.

Run it with one command from the repository (about a minute):

    .venv/bin/python bench/logscan.py

It writes a syslog-like file of 500,000 and of 2,000,000 lines (about 3% of
them matching) into a temporary folder, then for each size measures, each in
a process of its own:

- ``ours``: the real logscan check (``LogscanCheck.run``) reading the file
  from its start, as on a first run with ``from = "start"``;
- ``grep``: ``grep -cE`` with the same pattern (``LC_ALL=C``, its fastest);
- ``per-line``: ``for line in f: if rx.search(line)`` in plain Python;
- ``ours-find``: ours again as on a machine without ``ahocorasick-rs``
  (one ``bytes.find`` pass per literal instead of one pass for all).

It prints lines/s, MB/s and peak RSS of each (the fastest of three runs),
and the ratios of ours to the two references. All must count the same
lines, or it exits 1.
Targets: at least 0.5x grep's throughput, at least 3x the per-line loop,
and a peak RSS that does not grow with the file.

``--lines N`` runs one size only (the test suite uses a small one).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PATTERN = r"error|fail(ed|ure)|denied|segfault at [0-9a-f]+"
SIZES = (500_000, 2_000_000)
MATCH_SHARE = 0.03
_NORMAL = (
    "sshd[{pid}]: Accepted publickey for deploy from 127.0.0.1 port {n} ssh2",
    "CRON[{pid}]: (root) CMD (run-parts /etc/cron.hourly)",
    "kernel: [{n}.123456] IPv4: martian source 127.0.0.1 from 127.0.0.2, on dev lo",
    "systemd[1]: Started Session {n} of user deploy.",
    'nginx[{pid}]: 127.0.0.1 - - "GET /api/v1/items/{n} HTTP/1.1" 200 512 "-" "curl"',
    "postfix/smtpd[{pid}]: connect from localhost[127.0.0.1]",
    "dhclient[{pid}]: DHCPREQUEST for 127.0.0.1 on lo to 127.0.0.1 port 67",
)
_MATCHING = (
    "sshd[{pid}]: Failed password for invalid user admin from 127.0.0.1 port {n}",
    "app[{pid}]: ERROR database connection error: timeout after {n}ms",
    "kernel: [{n}.5] app[{pid}]: segfault at 7f3a2c ip 0000 sp 0000 error 4",
    "sudo[{pid}]: pam_unix(sudo:auth): authentication failure; permission denied",
)
_CHUNK_LINES = 100_000


def generate(path: Path, lines: int) -> None:
    """Write ``lines`` syslog-like lines; a chunk of distinct lines is written
    again and again (only the content's mix matters for scanning speed)."""
    randomness = random.Random(1)
    chunk: list[str] = []
    for number in range(min(lines, _CHUNK_LINES)):
        second = number // 50
        stamp = f"May {1 + second // 86400:2d} {second // 3600 % 24:02d}:"
        stamp += f"{second // 60 % 60:02d}:{second % 60:02d}"
        templates = _MATCHING if randomness.random() < MATCH_SHARE else _NORMAL
        text = randomness.choice(templates).format(pid=1000 + number % 5000, n=number)
        chunk.append(f"{stamp} host{number % 3} {text}\n")
    block = "".join(chunk).encode()
    with path.open("wb") as stream:
        for _ in range(lines // len(chunk)):
            stream.write(block)
        rest = lines % len(chunk)
        if rest:
            stream.write("".join(chunk[:rest]).encode())


def child_ours(log: Path) -> dict[str, float]:
    """Scan with the real check, as the daemon would on a first run."""
    from notifier.checks.base import CheckContext
    from notifier.checks.logscan import OPTIONS, LogscanCheck

    options = {option.name: option.default for option in OPTIONS}
    options.update(
        path=log,
        pattern=(PATTERN,),
        max_bytes_per_run=1 << 40,
        **{"from": "start"},
    )
    with tempfile.TemporaryDirectory() as state:
        context = CheckContext("bench", options, Path(state), "localhost", 600)
        check = LogscanCheck(context)
        started = time.perf_counter()
        result = check.run()
        seconds = time.perf_counter() - started
        check.close()
    return {
        "matches": result.metrics["matches"],
        "seconds": seconds,
        "rss_kib": peak_rss_kib(),
    }


def child_ours_find(log: Path) -> dict[str, float]:
    """Scan with the real check as it runs where ahocorasick-rs has no wheel."""
    # None in sys.modules makes the import fail as a missing package does.
    sys.modules["ahocorasick_rs"] = None  # type: ignore[assignment]
    return child_ours(log)


def child_per_line(log: Path) -> dict[str, float]:
    """The plain loop a script would use."""
    pattern = re.compile(PATTERN)
    matches = 0
    started = time.perf_counter()
    with log.open(encoding="utf-8", errors="replace") as stream:
        for line in stream:
            if pattern.search(line):
                matches += 1
    seconds = time.perf_counter() - started
    return {"matches": matches, "seconds": seconds, "rss_kib": peak_rss_kib()}


def literal_search() -> str:
    """Say how the logscan check searches a block for the pattern's literals."""
    try:
        found = version("ahocorasick-rs")
    except PackageNotFoundError:
        return "one bytes.find pass per literal (ahocorasick-rs is not installed)"
    return f"one pass for all literals (ahocorasick-rs {found})"


def peak_rss_kib() -> int:
    """Return this process's peak resident size since its exec, in KiB.

    ``VmHWM`` belongs to the memory image of the program now running, unlike
    ``ru_maxrss``, which also counts the parent's image at the exec.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure(
    argv: list[str], env: dict[str, str] | None = None
) -> tuple[str, float, int]:
    """Run ``argv``; return its output, wall time and peak RSS in KiB (from
    ``wait4``, which cannot be lower than this process's size at the exec)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    if process.returncode not in (0, 1):
        sys.exit(f"bench: {argv[0]} failed with status {process.returncode}")
    return output, wall, usage.ru_maxrss


def warm(path: Path) -> None:
    """Read the file once so that every contender reads it from memory."""
    with path.open("rb") as stream:
        while stream.read(1 << 20):
            pass


def contender(name: str, log: Path, me: list[str]) -> tuple[int, float, int]:
    """Run one contender once; return its count, seconds and peak RSS (KiB)."""
    if name == "grep":
        env = {**os.environ, "LC_ALL": "C"}
        output, seconds, rss = measure(["grep", "-cE", PATTERN, str(log)], env)
        return int(output.strip() or 0), seconds, rss
    output, _wall, _rss = measure([*me, "--child", name, str(log)])
    measured = json.loads(output)
    return (
        int(measured["matches"]),
        float(measured["seconds"]),
        int(measured["rss_kib"]),
    )


def run_size(folder: Path, lines: int, repeat: int) -> list[dict[str, object]]:
    log = folder / f"syslog-{lines}.log"
    me = [sys.executable, str(Path(__file__).resolve())]
    # Generated in a child, so this process stays small (see measure()).
    subprocess.run([*me, "--child", "generate", str(log), str(lines)], check=True)
    size = log.stat().st_size
    warm(log)

    rows: list[dict[str, object]] = []
    for name in ("ours", "grep", "per-line", "ours-find"):
        runs = [contender(name, log, me) for _ in range(repeat)]
        matches, seconds, _rss = min(runs, key=lambda run: run[1])
        rows.append(
            {
                "name": name,
                "lines": lines,
                "bytes": size,
                "matches": matches,
                "seconds": seconds,
                "rss_kib": max(run[2] for run in runs),
            }
        )
    log.unlink()
    return rows


def report(rows: list[dict[str, object]]) -> bool:
    """Print the table and the ratios; return whether the counts agree."""
    print(
        f"{'contender':<9} {'lines':>10} {'MB':>7} {'matches':>8} {'seconds':>8} "
        f"{'lines/s':>11} {'MB/s':>7} {'peak RSS':>9}"
    )
    agree = True
    for lines in sorted({int(str(row["lines"])) for row in rows}):
        group = [row for row in rows if row["lines"] == lines]
        speed: dict[str, float] = {}
        for row in group:
            seconds = float(str(row["seconds"]))
            megabytes = int(str(row["bytes"])) / 1e6
            speed[str(row["name"])] = megabytes / seconds
            rss = int(str(row["rss_kib"])) / 1024
            print(
                f"{row['name']!s:<9} {lines:>10,} {megabytes:>7.1f} "
                f"{row['matches']!s:>8} {seconds:>8.3f} {lines / seconds:>11,.0f} "
                f"{megabytes / seconds:>7.1f} {rss:>6.1f}MiB"
            )
        counts = {row["matches"] for row in group}
        agree = agree and len(counts) == 1
        print(
            f"  ratios at {lines:,} lines: ours/grep = "
            f"{speed['ours'] / speed['grep']:.2f}x (target >= 0.5x), "
            f"ours/per-line = {speed['ours'] / speed['per-line']:.2f}x "
            f"(target >= 3x)" + ("" if len(counts) == 1 else "  COUNTS DIFFER")
        )
        print(
            f"  without ahocorasick-rs: ours-find/grep = "
            f"{speed['ours-find'] / speed['grep']:.2f}x, ours-find/per-line = "
            f"{speed['ours-find'] / speed['per-line']:.2f}x"
        )
    ours = [row for row in rows if row["name"] == "ours"]
    if len(ours) > 1:
        sizes = ", ".join(
            f"{int(str(row['rss_kib'])) / 1024:.1f}MiB at {row['lines']:,} lines"
            for row in ours
        )
        print(f"  peak RSS of ours: {sizes}")
    print(
        "  (seconds: time inside the process, start-up excluded, for ours,\n"
        "   ours-find and per-line; wall time for grep; the fastest of --repeat\n"
        "   runs. Peak RSS: VmHWM for those three; wait4 for grep, which counts\n"
        "   this benchmark's own size at the exec too.)"
    )
    return agree


CHILDREN = {
    "ours": child_ours,
    "ours-find": child_ours_find,
    "per-line": child_per_line,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, help="run one size with this many lines")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per contender; the fastest counts"
    )
    parser.add_argument(
        "--child", choices=(*CHILDREN, "generate"), help=argparse.SUPPRESS
    )
    parser.add_argument("file", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("count", nargs="?", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "generate":
        generate(Path(args.file), args.count)
        return 0
    if args.child:
        print(json.dumps(CHILDREN[args.child](Path(args.file))))
        return 0

    sizes = (args.lines,) if args.lines else SIZES
    print(f"pattern: {PATTERN}")
    print(f"literal search: {literal_search()}")
    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as folder:
        rows: list[dict[str, object]] = []
        for lines in sizes:
            rows.extend(run_size(Path(folder), lines, args.repeat))
    return 0 if report(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
