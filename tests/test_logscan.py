"""The logscan check: what a sysadmin sees for lines appended to a log.

Checks are built the way the daemon builds them: the [[check]] entry goes
through the real configuration validation and the plugin registry.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier import logrules
from notifier.checks.base import CheckContext, Status
from notifier.checks.logscan import OPTIONS
from notifier.config import build_config, read_toml
from notifier.errors import ConfigError
from notifier.logmatch import ONE_PASS_MIN_BYTES, LineScanner
from notifier.logrules import EVIDENCE_CHARS, Rules, cut_evidence
from notifier.plugins import build_registry

REPOSITORY = Path(__file__).resolve().parent.parent


def make_check(tmp_path: Path, **entry):
    """Return a logscan check built from a [[check]] entry, as the daemon would."""
    raw = {"check": [{"name": "app-log", "type": "logscan", **entry}]}
    registry = build_registry()
    config = build_config(raw, None, registry.check_type_map())
    spec = config.checks[0]
    state = tmp_path / "state" / spec.name
    state.mkdir(parents=True, exist_ok=True)
    check_type = registry.check_types["logscan"].check_type
    context = CheckContext(spec.name, spec.options, state, "host", spec.common.timeout)
    return check_type.create(context)


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "app.log"
    path.write_bytes(b"")
    return path


def texts(result) -> list[str]:
    """Return the evidence lines without their ``path:LINE:`` prefix, and
    without the ``--`` between lines that are not adjacent."""
    return [line.split(": ", 1)[1] for line in result.evidence if line != "--"]


def append(path: Path, data: str | bytes) -> None:
    with path.open("ab") as stream:
        stream.write(data.encode() if isinstance(data, str) else data)


def test_logscan_is_a_built_in_check_type():
    registry = build_registry()

    info = registry.check_types["logscan"]

    assert info.origin == "built-in"
    assert {option.name for option in info.check_type.options} >= {
        "path",
        "pattern",
        "ignore",
        "attach_log",
        "max_bytes_per_run",
    }


def test_one_match_left_out_of_the_evidence_is_one_line(tmp_path, log):
    check = make_check(tmp_path, path=str(log), pattern="hit", max_evidence_lines=1)
    check.run()
    append(log, "hit 1\nhit 2\n")

    result = check.run()
    check.close()

    assert result.evidence == (f"{log}:1: hit 1", "(1 more matching line not shown)")


def test_first_run_starts_at_the_end_then_counts_new_matching_lines(tmp_path, log):
    append(log, "old error that was there before\n")
    check = make_check(tmp_path, path=str(log), pattern="error", critical=3)

    first = check.run()
    new_lines = "ok\nerror: disk full\nok again\nerror: disk still full\n"
    append(log, new_lines)
    second = check.run()
    check.close()

    assert first.status == Status.OK
    assert first.metrics["matches"] == 0
    assert second.status == Status.WARNING
    assert second.summary == f"2 matching lines in {log}: error: disk full"
    assert second.metrics == {
        "matches": 2.0,
        "bytes_scanned": float(len(new_lines)),
        "lines_scanned": 4.0,
        "files": 1.0,
        "behind_bytes": 0.0,
    }
    assert second.value == 2.0


def test_thresholds_decide_the_status(tmp_path, log):
    check = make_check(tmp_path, path=str(log), pattern="ERROR", warning=2, critical=4)
    check.run()
    statuses = []
    for count in (1, 2, 4):
        append(log, "ERROR x\n" * count)
        statuses.append(check.run().status)
    check.close()

    assert statuses == [Status.OK, Status.WARNING, Status.CRITICAL]


def test_ignore_vetoes_a_matching_line(tmp_path, log):
    check = make_check(
        tmp_path,
        path=str(log),
        pattern=["error", "(?i)fatal"],
        ignore=["error: expected", "debug"],
    )
    check.run()
    append(log, "error: expected in tests\nFATAL crash\nerror: real\ndebug error\n")

    result = check.run()
    check.close()

    assert result.metrics["matches"] == 2
    assert texts(result) == ["FATAL crash", "error: real"]


def test_evidence_has_numbered_lines_with_context_like_grep(tmp_path, log):
    check = make_check(
        tmp_path, path=str(log), pattern="error", context=1, **{"from": "start"}
    )
    append(log, "one\ntwo error\nthree\nfour\nfive\nsix error\nseven error\n")

    result = check.run()
    check.close()

    assert result.evidence == (
        f"{log}-1- one",
        f"{log}:2: two error",
        f"{log}-3- three",
        "--",
        f"{log}-5- five",
        f"{log}:6: six error",
        f"{log}:7: seven error",
    )


def test_evidence_is_capped_and_says_how_many_were_left_out(tmp_path, log):
    check = make_check(tmp_path, path=str(log), pattern="hit", max_evidence_lines=3)
    check.run()
    append(log, "".join(f"hit {number}\n" for number in range(10)))

    result = check.run()
    check.close()

    assert result.metrics["matches"] == 10
    assert [line.endswith(f"hit {n}") for n, line in enumerate(result.evidence[:3])]
    assert result.evidence[3] == "(7 more matching lines not shown)"
    assert len(result.evidence) == 4


@pytest.mark.parametrize("attach_log", [True, False])
def test_only_the_log_that_matched_is_offered_as_attachment(tmp_path, attach_log):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "quiet.log").write_text("")
    (folder / "noisy.log").write_text("")
    check = make_check(
        tmp_path, path=str(folder / "*.log"), pattern="panic", attach_log=attach_log
    )
    check.run()
    append(folder / "quiet.log", "all fine\n")
    append(folder / "noisy.log", "kernel panic\n")

    result = check.run()
    check.close()

    assert result.attachments == ((folder / "noisy.log",) if attach_log else ())


@pytest.mark.parametrize(
    ("missing", "status"),
    [("ok", Status.OK), ("unknown", Status.UNKNOWN), ("critical", Status.CRITICAL)],
)
def test_missing_file_status_is_the_configured_one(tmp_path, missing, status):
    check = make_check(
        tmp_path, path=str(tmp_path / "nope-*.log"), pattern="x", missing=missing
    )

    result = check.run()
    check.close()

    assert result.status == status
    assert result.summary == f"no file at {tmp_path / 'nope-*.log'}"


def test_glob_gains_a_new_file_between_runs(tmp_path):
    folder = tmp_path / "nginx"
    folder.mkdir()
    (folder / "access.log").write_text("old 500 line\n")
    check = make_check(tmp_path, path=str(folder / "*.log"), pattern=" 500 ")
    check.run()

    (folder / "vhost2.log").write_text("GET / 500 first\nGET / 200 fine\n")
    result = check.run()
    check.close()

    assert result.metrics["files"] == 2
    assert result.metrics["matches"] == 1
    assert result.evidence == (f"{folder / 'vhost2.log'}:1: GET / 500 first",)


def test_new_check_over_the_same_state_neither_repeats_nor_misses(tmp_path, log):
    seen = []
    for round_number in range(3):
        check = make_check(tmp_path, path=str(log), pattern="error")
        seen.extend(texts(check.run()))
        append(log, f"error {round_number}\n")
        seen.extend(texts(check.run()))
        check.close()
        append(log, f"error while stopped {round_number}\n")

    assert seen == [
        "error 0",
        "error while stopped 0",
        "error 1",
        "error while stopped 1",
        "error 2",
    ]


def test_two_rotations_between_runs_count_the_file_in_between(tmp_path, log):
    check = make_check(tmp_path, path=str(log), pattern="ERROR")
    check.run()

    append(log, "ERROR 1 in the first file\n")
    log.rename(log.with_name("app.log.1"))
    append(log, "ERROR 2 in the file in between\n")
    log.with_name("app.log.1").rename(log.with_name("app.log.2"))
    log.rename(log.with_name("app.log.1"))
    append(log, "ERROR 3 in the new file\n")
    result = check.run()
    check.close()

    assert texts(result) == [
        "ERROR 1 in the first file",
        "ERROR 2 in the file in between",
        "ERROR 3 in the new file",
    ]


def test_run_says_when_lines_may_have_been_missed(tmp_path, log):
    check = make_check(tmp_path, path=str(log), pattern="ERROR", critical=5)
    check.run()

    log.rename(log.with_name("app.log.1"))
    append(log, "ERROR in a file that gets compressed with zstd\n")
    log.with_name("app.log.1").rename(log.with_name("app.log.2"))
    log.rename(log.with_name("app.log.1.zst"))
    append(log, "fine\n")
    result = check.run()
    check.close()

    assert result.status == Status.OK
    assert result.summary.endswith(
        f"; {log}.1.zst was rotated since the last run and cannot be read "
        "(compressed in a way notifier cannot read); lines in it may have been "
        "missed"
    )


def test_invalid_utf8_is_replaced_never_raised(tmp_path, log):
    check = make_check(tmp_path, path=str(log), pattern="error")
    check.run()
    append(log, b"\xff\xfe error \xc3 here\n\xc3\x28 fine\n")

    result = check.run()
    check.close()

    assert result.metrics["matches"] == 1
    assert texts(result) == ["\ufffd\ufffd error \ufffd here"]


def test_latin1_encoding_is_decoded_before_matching(tmp_path, log):
    check = make_check(
        tmp_path, path=str(log), pattern="Fehler: Datenträger", encoding="latin-1"
    )
    check.run()
    append(log, "Fehler: Datenträger voll\n".encode("latin-1"))

    result = check.run()
    check.close()

    assert texts(result) == ["Fehler: Datenträger voll"]


def test_nul_bytes_and_escape_sequences_are_matched_but_shown_escaped(tmp_path, log):
    check = make_check(tmp_path, path=str(log), pattern="error")
    check.run()
    append(log, b"\x00\x00error\x00 \x1b[31mred\x1b[0m\n")

    result = check.run()
    check.close()

    assert texts(result) == ["\\x00\\x00error\\x00 \\x1b[31mred\\x1b[0m"]


def test_crlf_lines_match_at_their_end_and_show_without_cr(tmp_path, log):
    check = make_check(tmp_path, path=str(log), pattern="failed$")
    check.run()
    append(log, b"login failed\r\nlogin failed twice\r\n")

    result = check.run()
    check.close()

    assert texts(result) == ["login failed"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("^$", ["", ""]),
        (".*", ["1 a", "", "x", "", "3 c"]),
        ("x*", ["1 a", "", "x", "", "3 c"]),
        ("(foo)?", ["1 a", "", "x", "", "3 c"]),
        ("^x*$", ["", "x", ""]),
    ],
)
def test_patterns_matching_an_empty_string_count_each_line_once(
    tmp_path, log, pattern, expected
):
    # These made the scan loop forever: an empty match after the last line
    # feed sent it back to the start of the block.
    append(log, "1 a\n\nx\n\n3 c\n")
    check = make_check(tmp_path, path=str(log), pattern=pattern, **{"from": "start"})

    result = check.run()
    again = check.run()
    check.close()

    assert result.metrics["matches"] == len(expected)
    assert texts(result) == expected
    assert result.metrics["lines_scanned"] == 5
    assert again.metrics["matches"] == 0


@pytest.mark.parametrize("key", ["pattern", "ignore"])
def test_empty_pattern_is_a_config_error_naming_the_key(tmp_path, log, key):
    entry = {"pattern": "error", key: ["error", ""]}

    with pytest.raises(ConfigError) as caught:
        make_check(tmp_path, path=str(log), **entry)

    message = str(caught.value)
    assert f'[[check]] "app-log" {key}: an empty pattern matches every line' in (
        message
    )
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\A\d", ["1 a", "2 b", "3 c"]),
        (r"\d\Z", []),
        (r"\w\Z", ["1 a", "2 b", "x", "3 c"]),
        (r"(?<=\n)\d", []),
        (r"(?<!\n)\d", ["1 a", "2 b", "3 c"]),
        (r"[a-z](?=\n)", []),
        (r"[a-z](?!\n)", ["1 a", "2 b", "x", "3 c"]),
        ("(?-m:^)[0-9]", ["1 a", "2 b", "3 c"]),
    ],
)
@pytest.mark.parametrize("block_size", [4, 4096])
def test_each_line_is_matched_alone_whatever_the_block(
    tmp_path, pattern, expected, block_size
):
    # \A, \Z and lookarounds see the start and end of the line, never the
    # lines around it, however the data is cut into blocks.
    log = tmp_path / "app.log"
    log.write_bytes(b"1 a\n2 b\nx\n3 c\n")
    scanner = LineScanner(Rules([pattern]), max_evidence=100, block_size=block_size)

    with log.open("rb") as stream:
        scanner.scan(stream.readinto, label=str(log), first_line=1)

    assert [line.text for line in scanner.evidence if line.matched] == expected
    assert scanner.matches == len(expected)


def test_anchored_pattern_counts_every_line_it_starts_in_a_check(tmp_path, log):
    append(log, "1 a\n2 b\nx\n3 c\n")
    check = make_check(tmp_path, path=str(log), pattern=r"\A\d", **{"from": "start"})

    result = check.run()
    check.close()

    assert result.summary == f"3 matching lines in {log}: 1 a"
    assert texts(result) == ["1 a", "2 b", "3 c"]


def test_partial_last_line_waits_for_its_newline(tmp_path, log):
    check = make_check(tmp_path, path=str(log), pattern="error$")
    check.run()
    append(log, "disk error")
    waiting = check.run()
    append(log, "s everywhere\nthen error\n")
    completed = check.run()
    check.close()

    assert waiting.metrics["matches"] == 0
    assert texts(completed) == ["then error"]


def test_partial_last_line_counts_once_the_file_is_idle(tmp_path, log):
    check = make_check(tmp_path, path=str(log), pattern="error", partial_after="2s")
    check.run()
    append(log, "last words: error")
    too_soon = check.run()
    # Make the file look untouched for a minute (a real change of its mtime;
    # waiting for partial_after would only slow the test down).
    an_hour_ago = time.time() - 60
    os.utime(log, (an_hour_ago, an_hour_ago))
    idle = check.run()
    again = check.run()
    check.close()

    assert too_soon.metrics["matches"] == 0
    assert texts(idle) == ["last words: error"]
    assert again.metrics["matches"] == 0


def run_measured(check):
    """Run the check; return its result and the peak of Python memory."""
    tracemalloc.start()
    try:
        result = check.run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_ten_megabyte_line_is_matched_once_in_bounded_memory(tmp_path, log):
    check = make_check(tmp_path, path=str(log), pattern="NEEDLE")
    check.run()
    append(log, b"x" * 5_000_000 + b" NEEDLE " + b"y" * 5_000_000 + b"\n")
    append(log, b"short NEEDLE line\n")

    result, peak = run_measured(check)
    append(log, b"z" * 15_000_000 + b" NEEDLE " + b"z" * 15_000_000 + b"\n")
    _longer, peak_for_three_times_longer = run_measured(check)
    check.close()

    assert peak < 8 * 1024 * 1024
    assert peak_for_three_times_longer < peak + 1024 * 1024
    assert result.metrics["matches"] == 2
    assert result.metrics["lines_scanned"] == 2
    long_line, short_line = result.evidence
    assert long_line.startswith(f"{log}:1: [...] xxx")
    assert "xxx NEEDLE yyy" in long_line
    assert long_line.endswith(" [... line longer than 1024 KiB cut]")
    assert len(long_line) < EVIDENCE_CHARS + 200
    assert short_line == f"{log}:2: short NEEDLE line"


def test_evidence_lines_are_cut_with_a_marker():
    text = "e" * (EVIDENCE_CHARS + 500)

    shown = cut_evidence(text)

    assert shown == "e" * EVIDENCE_CHARS + " [... 500 more characters cut]"


def test_log_grown_past_the_budget_is_caught_up_over_runs(tmp_path, log):
    check = make_check(
        tmp_path, path=str(log), pattern="ERROR", max_bytes_per_run="64KiB"
    )
    check.run()
    lines = [
        f"line {n:06d} {'ERROR' if n % 10 == 0 else 'info'}\n" for n in range(20000)
    ]
    append(log, "".join(lines))
    size = log.stat().st_size

    results = [check.run() for _ in range(size // 65536 + 2)]
    check.close()

    first = results[0]
    assert "behind by" in first.summary
    assert "catching up" in first.summary
    assert first.metrics["behind_bytes"] == size - first.metrics["bytes_scanned"]
    assert all(result.metrics["bytes_scanned"] <= 65536 for result in results)
    assert results[-1].metrics["behind_bytes"] == 0
    assert sum(result.metrics["matches"] for result in results) == 2000
    assert sum(result.metrics["lines_scanned"] for result in results) == 20000


def test_empty_pattern_list_asks_for_at_least_one_entry(tmp_path, log):
    with pytest.raises(ConfigError) as caught:
        make_check(tmp_path, path=str(log), pattern=[])

    assert "pattern: 0 entries is below the minimum (use at least 1 entry)" in str(
        caught.value
    )


def config_check(tmp_path: Path, entry: str) -> subprocess.CompletedProcess[str]:
    """Run ``notifier config check`` on a file with one logscan entry."""
    config = tmp_path / "notifier.toml"
    config.write_text(
        f'[notifier]\nstate_dir = "{tmp_path / "state"}"\n\n'
        f'[[check]]\nname = "app-log"\ntype = "logscan"\n'
        f'path = "{tmp_path / "app.log"}"\n{entry}\n'
    )
    return subprocess.run(
        [sys.executable, "-m", "notifier", "config", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("value", ["true", "false"])
def test_config_check_says_which_key_turns_attaching_the_log_off(tmp_path, value):
    finished = config_check(tmp_path, f'pattern = "error"\nattach = {value}')

    assert finished.returncode == 78
    assert finished.stderr.splitlines() == [
        f'notifier: {tmp_path / "notifier.toml"}: [[check]] "app-log" attach: '
        f"{value.title()} is not valid (expected an absolute path or a list of "
        "them; for logscan, attach_log = true turns attaching the matched log on "
        "or off)"
    ]


def test_config_check_accepts_attach_log_and_a_list_in_attach(tmp_path):
    entry = f'pattern = "error"\nattach_log = false\nattach = ["{tmp_path}/x"]'

    finished = config_check(tmp_path, entry)

    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == ""


def test_config_check_refuses_an_empty_pattern(tmp_path):
    finished = config_check(tmp_path, 'pattern = ["error", ""]\nignore = ""')

    assert finished.returncode == 78
    assert finished.stderr.splitlines() == [
        f'notifier: {tmp_path / "notifier.toml"}: [[check]] "app-log" pattern: '
        "an empty pattern matches every line (use '^' to count every line)",
        f'notifier: {tmp_path / "notifier.toml"}: [[check]] "app-log" ignore: '
        "an empty pattern matches every line (remove it)",
    ]


def test_unusable_encoding_is_a_config_error_naming_the_check(tmp_path, log):
    with pytest.raises(ConfigError) as caught:
        make_check(tmp_path, path=str(log), pattern="x", encoding="utf-16")

    assert '[[check]] "app-log" encoding' in str(caught.value)
    assert "line feed" in str(caught.value)


LINE_PARTS = st.sampled_from(
    [
        "error",
        "ERROR",
        "Error",
        "fail",
        "failed",
        "ok",
        "sshd",
        "\u017f\u017fhd",  # long s: (?i)sshd matches it
        "\u212aernel",  # KELVIN SIGN: (?i)kernel matches it
        "kernel",
        "fa\u0131led",  # dotless i: (?i)failed matches it
        "\u0130NFO",  # dotted capital I: (?i)info matches it
        "denied",
        " ",
        "\t",
        "é",
        "\x00",
        "\r",
    ]
)
RAW_PARTS = st.one_of(
    LINE_PARTS.map(str.encode), st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82"])
)
PATTERN_SETS = [
    ["error"],
    ["(?i)error"],
    ["error|fail(ed)?"],
    ["^ok"],
    ["ok$"],
    ["(?i)sshd|kernel"],
    [r"\bfail"],
    ["e.r"],
    ["(?i:ERR)or", "kern"],
    ["é"],
    ["error", "failed"],
    [r"(o)\1", r"(r)\1"],
    # Literals of every alternative: the rarest in the data is searched.
    ["ok.*error|denied"],
    ["error|failed"],
    ["(?i)failed|info"],
    ["(?a)(?i)failed|sshd"],
    ["(?a)(?ui:sshd)|error"],
    ["(?i)kernel", "denied"],
    ["error|ok"],
    # Patterns that can match an empty string.
    ["^$"],
    [".*"],
    ["x*"],
    ["(foo)?"],
    ["^\\s*$", "error"],
    # What a block of lines and a line alone tell apart: a pattern is applied
    # to one line, whatever the scanner searches to find where to look.
    [r"\A\w"],
    [r"\Aok"],
    [r"\Ae"],
    [r"d\Z"],
    [r"\s\Z"],
    [r"(?s)d.\Z"],
    ["(?-m:^)e"],
    ["r(?-m:$)"],
    ["(?m)^e", "(?m)r$"],
    [r"(?<=\n)\w"],
    [r"(?<!\n)e"],
    [r"(?<![a-z])e"],
    [r"(?<=e)r{2}"],
    [r"r(?=\n)"],
    [r"r(?!\n)"],
    [r"r(?![\s\S])"],
    [r"(?s)r(?=.*ok)"],
    [r"(?>[^z]*)$"],
    [r"[^z]*+$"],
    [r"\bok\b", r"\Bk"],
    [r"(e)?(?(1)r|o)"],
]


def reference_count(rules: Rules, data: bytes, flush_partial: bool) -> list[str]:
    """The definition: each line alone, line ending removed, decoded, matched."""
    lines = data.split(b"\n")
    complete, partial = lines[:-1], lines[-1]
    if flush_partial and partial:
        complete.append(partial)
    matched = []
    for raw in complete:
        text = rules.decode(raw[:-1] if raw.endswith(b"\r") else raw)
        if rules.matches(text):
            matched.append(cut_evidence(text))
    return matched


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.lists(RAW_PARTS, max_size=8).map(b"".join), max_size=30),
    partial=st.lists(RAW_PARTS, max_size=3).map(b"".join),
    patterns=st.sampled_from(PATTERN_SETS),
    ignore=st.sampled_from([[], ["ERROR"], ["(?i)kernel"]]),
    block_size=st.sampled_from([5, 16, 64, 4096]),
    flush_partial=st.booleans(),
    one_pass=st.booleans(),
)
def test_block_scanner_agrees_with_matching_each_line_alone(
    lines, partial, patterns, ignore, block_size, flush_partial, one_pass
):
    rules = Rules(patterns, ignore)
    data = b"".join(line + b"\n" for line in lines) + partial
    scanner = LineScanner(
        rules,
        max_evidence=1000,
        block_size=block_size,
        one_pass=one_pass,
        one_pass_from=0,
    )

    scanned = scanner.scan(
        io.BytesIO(data).readinto, label="x", flush_partial=flush_partial
    )

    expected = reference_count(rules, data, flush_partial)
    assert scanner.matches == len(expected)
    assert [line.text for line in scanner.evidence if line.matched] == expected
    assert scanned.lines == len(lines) + (1 if flush_partial and partial else 0)
    assert scanned.consumed == (
        len(data) if flush_partial else len(data) - len(partial)
    )


@settings(max_examples=40, deadline=None)
@given(
    lines=st.lists(
        st.tuples(st.integers(0, 40000), st.one_of(st.none(), st.floats(0, 1))),
        min_size=1,
        max_size=4,
    ),
    block_size=st.sampled_from([1000, 4096, 9000]),
    pattern=st.sampled_from(["NEEDLE", r"NEE\w+E"]),
)
def test_long_lines_searched_in_pieces_count_once_each(lines, block_size, pattern):
    # Lines past 8 KiB (the smallest piece) are searched piece by piece.
    data = b""
    expected = 0
    for length, where in lines:
        line = b"x" * length
        if where is not None:
            cut = int(where * length)
            line = line[:cut] + b"NEEDLE" + line[cut:]
            expected += 1
        data += line + b"\n"
    scanner = LineScanner(Rules([pattern]), block_size=block_size, max_line=8192)

    scanned = scanner.scan(io.BytesIO(data).readinto, label="x")

    assert scanner.matches == expected
    assert scanned.lines == len(lines)
    assert scanned.consumed == len(data)


@pytest.mark.parametrize("one_pass", [True, False])
def test_case_insensitive_pattern_finds_the_non_ascii_look_alikes(one_pass):
    rules = Rules(["(?i)sshd", "(?i)kernel"])
    data = "\u017f\u017fhd[1]: x\n\u212aERNEL: y\nnothing\n".encode()
    scanner = LineScanner(rules, one_pass=one_pass, one_pass_from=0)

    scanner.scan(io.BytesIO(data).readinto, label="x")

    assert scanner.matches == 2


@pytest.mark.parametrize("one_pass", [True, False])
def test_case_insensitive_look_alike_in_a_single_byte_encoding(one_pass):
    # cp1254 (Turkish) writes the dotless i as one byte, 0xfd.
    rules = Rules(["(?i)login failed"], encoding="cp1254")
    data = b"LOGIN FA\xfdLED for root\nlogin failed for bob\nlogin ok\n"
    scanner = LineScanner(rules, one_pass=one_pass, one_pass_from=0)

    scanner.scan(io.BytesIO(data).readinto, label="x")

    assert scanner.matches == 2
    assert b"\xfd" in scanner.needles


def test_rarest_literal_of_each_alternative_is_searched():
    rules = Rules([r"127\.0\.0\.1 .*denied|kernel: .*oom-kill"])
    common = b"127.0.0.1 kernel: accepted\n" * 5000
    data = common + b"127.0.0.1 x denied\nkernel: oom-kill y\n" + common
    scanner = LineScanner(rules)

    scanner.scan(io.BytesIO(data).readinto, label="x")

    assert scanner.needles == (b"denied", b"oom-kill")
    assert scanner.matches == 2


def test_scan_is_the_same_without_the_one_pass_library(monkeypatch):
    # Stand-in for a machine where ahocorasick-rs has no wheel: None in
    # sys.modules makes its import fail the way a missing package does.
    # Rules of their own each: rules keep the search they made.
    patterns = [r"error|fail(ed|ure)|segfault at [0-9a-f]+"]
    data = b"ok\nfailure here\nsegfault at zz\nsegfault at 7f error\n" * 100
    with_library = LineScanner(Rules(patterns), one_pass_from=0)
    with_library.scan(io.BytesIO(data).readinto, label="x")
    monkeypatch.setitem(sys.modules, "ahocorasick_rs", None)
    without = LineScanner(Rules(patterns), one_pass_from=0)

    without.scan(io.BytesIO(data).readinto, label="x")

    assert without.matches == with_library.matches == 200
    assert [line.text for line in without.evidence] == [
        line.text for line in with_library.evidence
    ]


@pytest.fixture
def searches_made(monkeypatch):
    """Every literal search built, as ``(needles, one_pass)``; each is still
    built by the real :func:`notifier.logrules.literal_finder`."""
    made = []
    real_finder = logrules.literal_finder

    def recording_finder(needles, *, one_pass=True):
        made.append((needles, one_pass))
        return real_finder(needles, one_pass=one_pass)

    monkeypatch.setattr(logrules, "literal_finder", recording_finder)
    return made


def test_a_quiet_log_is_searched_without_remaking_the_search_each_run(
    tmp_path, log, searches_made
):
    check = make_check(tmp_path, path=str(log), pattern=r"segfault|oom-kill")
    check.run()

    for number in range(5):
        append(log, f"sshd[{number}]: accepted\n")
        assert check.run().status == Status.OK
    append(log, "kernel: oom-kill process 7\n")
    found = check.run()
    check.close()

    assert found.status == Status.WARNING
    assert len(searches_made) == 1


def test_only_a_large_block_is_searched_in_one_pass(searches_made):
    # A quiet log's few new lines never load the one-pass library; a log
    # read in bulk (a first scan, a catch-up) is searched with it.
    few_lines = b"sshd[1]: accepted\nkernel: oom-kill process 7\n"
    bulk = few_lines * (ONE_PASS_MIN_BYTES // len(few_lines) + 1)

    for data in (few_lines, bulk):
        scanner = LineScanner(Rules([r"segfault|oom-kill"]))
        scanner.scan(io.BytesIO(data).readinto, label="x")
        assert scanner.matches == data.count(b"oom-kill")

    assert [one_pass for _, one_pass in searches_made] == [False, True]


def test_the_rarest_literal_is_picked_from_the_lines_read_alone(monkeypatch):
    samples = []
    real_pick = logrules.Literals.pick

    def recording_pick(self, sample):
        samples.append(bytes(sample))
        return real_pick(self, sample)

    monkeypatch.setattr(logrules.Literals, "pick", recording_pick)
    data = b"kernel: denied\n"
    scanner = LineScanner(Rules([r"kernel: .*denied"]))

    scanner.scan(io.BytesIO(data).readinto, label="x")

    assert samples == [data]
    assert scanner.matches == 1


def scan_with_peak_memory(rules: Rules, data: bytes) -> tuple[LineScanner, int]:
    """Scan ``data`` with a new scanner; return it and the peak bytes held."""
    tracemalloc.start()
    try:
        scanner = LineScanner(rules)
        scanner.scan(io.BytesIO(data).readinto, label="x")
        return scanner, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_literal_on_every_line_keeps_memory_bounded():
    rules = Rules(["aaa.*b"])
    data = (b"a" * 1000 + b"\n") * 1100

    scanner, peak = scan_with_peak_memory(rules, data)

    assert scanner.matches == 0
    assert peak < 8 * 1024 * 1024


def test_a_few_new_lines_are_read_with_a_small_buffer():
    # A quiet log gains a few lines between runs; each run's scanner must not
    # zero a megabyte of buffer for them (the daemon's memory and CPU).
    rules = Rules(["segfault at"])
    data = b"kernel: app[12]: segfault at 0 ip 0\n" + b"cron: ran\n" * 20

    scanner, peak = scan_with_peak_memory(rules, data)

    assert scanner.matches == 1
    assert peak < 256 * 1024


def test_reads_grow_to_full_blocks_without_losing_a_line():
    # The first read is small and each full one doubles the next: lines that
    # straddle every size step, a line longer than the first block, and one
    # longer than a piece all count once.
    rules = Rules(["NEEDLE"])
    parts = [b"x" * 1000 + b" NEEDLE\n"] * 3000
    parts.insert(70, b"y" * 200_000 + b" NEEDLE\n")
    parts.insert(900, b"z" * 1_500_000 + b" NEEDLE\n")
    data = b"".join(parts) + b"tail NEEDLE"
    scanner = LineScanner(rules)

    scanned = scanner.scan(io.BytesIO(data).readinto, label="x")

    assert scanner.matches == 3002
    assert scanned.lines == 3002
    assert scanned.consumed == len(data) - len(b"tail NEEDLE")


def test_example_configuration_shows_every_logscan_option():
    text = (REPOSITORY / "config.example.toml").read_text()
    entry = text[text.index('type = "logscan"') :]
    entry = entry[: entry.find("[[check]]") if "[[check]]" in entry else len(entry)]

    for option in OPTIONS:
        assert f"\n{option.name} = " in entry or f"\n# {option.name} = " in entry


def test_example_logscan_entry_is_valid(tmp_path):
    raw = read_toml(REPOSITORY / "config.example.toml")
    registry = build_registry()
    entries = [
        entry for entry in raw.get("check", []) if entry.get("type") == "logscan"
    ]

    config = build_config({"check": entries}, None, registry.check_type_map())

    assert config.checks
    assert all(spec.type == "logscan" for spec in config.checks)


def test_benchmark_runs_and_its_contenders_agree(tmp_path):
    bench = REPOSITORY / "bench" / "logscan.py"

    finished = subprocess.run(
        [sys.executable, str(bench), "--lines", "20000", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "ratios at 20,000 lines: ours/grep = " in finished.stdout
    assert "COUNTS DIFFER" not in finished.stdout
