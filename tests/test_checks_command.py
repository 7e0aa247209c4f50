"""The ``command`` check against real executables, and its perf data parser."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.checks import command
from notifier.checks.base import Status
from notifier.checks.perfdata import (
    PerfDatum,
    metrics_of,
    parse_perfdata,
    split_output,
)
from notifier.config import build_config
from notifier.errors import ConfigError
from notifier.plugins import build_registry
from notifier.testing import run_check_type

NAGIOS_PLUGINS = Path("/usr/lib/nagios/plugins")


def script(tmp_path: Path, body: str, name: str = "plugin.sh") -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def run(tmp_path: Path, argv: list[str], **options):
    return run_check_type(command, {"command": argv, **options}, tmp_path=tmp_path)


def is_gone(pid: int) -> bool:
    """Return whether ``pid`` died (or is a zombie waiting for its new parent).

    SIGKILL is delivered asynchronously, so a just-killed process may still
    show as running for a moment; poll for a while before saying no.
    """
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


# --- exit statuses ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, Status.OK),
        (1, Status.WARNING),
        (2, Status.CRITICAL),
        (3, Status.UNKNOWN),
    ],
)
def test_exit_status_is_the_verdict_and_first_line_the_summary(tmp_path, code, status):
    plugin = script(tmp_path, f"echo 'SERVICE {status.name} - all said'\nexit {code}\n")

    result = run(tmp_path, [str(plugin)])

    assert result.status is status
    assert result.summary == f"SERVICE {status.name} - all said"


def test_exit_status_outside_the_protocol_is_unknown_naming_it(tmp_path):
    plugin = script(tmp_path, "echo 'segfaulted helper'\nexit 42\n")

    result = run(tmp_path, [str(plugin)])

    assert result.status is Status.UNKNOWN
    assert result.summary == "command exited with status 42: segfaulted helper"


def test_program_killed_by_a_signal_is_unknown_naming_the_signal(tmp_path):
    plugin = script(tmp_path, "echo started\nkill -SEGV $$\n")

    result = run(tmp_path, [str(plugin)])

    assert result.status is Status.UNKNOWN
    assert "killed by signal SIGSEGV" in result.summary


def test_silent_program_gets_a_summary_saying_so(tmp_path):
    plugin = script(tmp_path, "exit 2\n")

    result = run(tmp_path, [str(plugin)])

    assert result.status is Status.CRITICAL
    assert result.summary == "command exited with status 2 and printed nothing"


def test_stderr_is_the_summary_when_stdout_is_empty_and_evidence_always(tmp_path):
    plugin = script(tmp_path, "echo 'cannot open /dev/sda' >&2\nexit 3\n")

    result = run(tmp_path, [str(plugin)])

    assert result.status is Status.UNKNOWN
    assert result.summary == "cannot open /dev/sda"
    assert "stderr: cannot open /dev/sda" in result.evidence


# --- starting the program --------------------------------------------------


def test_missing_executable_is_unknown_with_a_clear_reason(tmp_path):
    result = run(tmp_path, [str(tmp_path / "check_nothing")])

    assert result.status is Status.UNKNOWN
    assert result.summary == f"executable '{tmp_path / 'check_nothing'}' not found"


def test_program_name_is_looked_up_in_path(tmp_path):
    result = run(tmp_path, ["check_surely_not_installed_here"])

    assert result.summary == (
        "executable 'check_surely_not_installed_here' not found in PATH"
    )


def test_shell_line_instead_of_argument_list_gets_a_hint(tmp_path):
    result = run(tmp_path, "check_load -w 5,4,3")

    assert result.status is Status.UNKNOWN
    assert "write ['check_load', '-w', '5,4,3']" in result.summary


def test_file_without_execute_permission_is_unknown(tmp_path):
    plugin = script(tmp_path, "exit 0\n")
    plugin.chmod(0o644)

    result = run(tmp_path, [str(plugin)])

    assert result.status is Status.UNKNOWN
    assert result.summary == f"'{plugin}' is not executable (permission denied)"


def test_arguments_are_passed_without_a_shell(tmp_path):
    plugin = script(tmp_path, 'echo "OK - got [$1] [$2]"\n')

    result = run(tmp_path, [str(plugin), "two words", "$HOME;rm -rf /"])

    assert result.summary == "OK - got [two words] [$HOME;rm -rf /]"


def test_env_adds_variables_and_keeps_the_daemons(tmp_path):
    plugin = script(tmp_path, 'echo "OK - $NOTIFIER_TEST_VAR with ${PATH:+path}"\n')

    result = run(tmp_path, [str(plugin)], env={"NOTIFIER_TEST_VAR": "hello"})

    assert result.summary == "OK - hello with path"


def test_cwd_is_where_the_program_runs(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    plugin = script(tmp_path, 'echo "OK - in $(pwd)"\n')

    result = run(tmp_path, [str(plugin)], cwd=str(workdir))

    assert result.summary == f"OK - in {workdir}"


def test_missing_cwd_is_unknown_naming_it(tmp_path):
    plugin = script(tmp_path, "exit 0\n")

    result = run(tmp_path, [str(plugin)], cwd=str(tmp_path / "nowhere"))

    assert result.status is Status.UNKNOWN
    assert result.summary == f"working folder '{tmp_path / 'nowhere'}' does not exist"


def test_stdin_is_closed_so_a_program_reading_it_does_not_wait(tmp_path):
    plugin = script(tmp_path, 'if read line; then exit 2; fi\necho "OK - eof"\n')

    result = run(tmp_path, [str(plugin)], timeout="5s")

    assert result.status is Status.OK
    assert result.summary == "OK - eof"


def test_empty_command_list_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        run(tmp_path, [])

    assert "command: 0 entries is below the minimum" in str(caught.value)


def test_env_must_be_a_table_of_strings(tmp_path):
    with pytest.raises(ConfigError) as caught:
        run(tmp_path, ["true"], env={"COUNT": 3})

    assert "env:" in str(caught.value)
    assert "expected a table of strings" in str(caught.value)


def config_problems(**entry) -> list[str]:
    """Return the problems `notifier config check` reports for one command
    entry, validated against the real built-in check types."""
    document = {"check": [{"name": "probe", "type": "command", **entry}]}
    types = build_registry([], load_entry_points=False).check_type_map()
    with pytest.raises(ConfigError) as caught:
        build_config(document, Path("/etc/notifier/notifier.toml"), types)
    return [problem.render() for problem in caught.value.problems]


def test_config_check_reports_an_empty_program_name():
    assert config_problems(command=["", "-w", "5"]) == [
        '/etc/notifier/notifier.toml: [[check]] "probe" command: the program, the '
        'first element, is empty (put the program first, such as ["/usr/bin/check_x",'
        ' "-w", "5"])'
    ]


def test_config_check_reports_nul_characters_the_system_cannot_pass_on():
    problems = config_problems(
        command=["/bin/echo", "a\0b"], env={"GOOD": "x", "BAD": "y\0z"}
    )

    assert problems == [
        '/etc/notifier/notifier.toml: [[check]] "probe" command: element 2 holds a '
        "NUL character",
        "/etc/notifier/notifier.toml: [[check]] \"probe\" env: the value of 'BAD' "
        "holds a NUL character",
    ]


@pytest.mark.parametrize("name", ["A=B", "", "X\0Y"])
def test_config_check_reports_an_environment_name_no_program_can_receive(name):
    (problem,) = config_problems(command=["/bin/true"], env={name: "1"})

    assert problem == (
        f'/etc/notifier/notifier.toml: [[check]] "probe" env: {name!r} is not an '
        "environment variable name (a name is not empty and has no '=' or NUL in it)"
    )


def test_an_empty_argument_after_the_program_is_fine():
    types = build_registry([], load_entry_points=False).check_type_map()
    document = {
        "check": [{"name": "p", "type": "command", "command": ["/bin/echo", ""]}]
    }

    (spec,) = build_config(document, None, types).checks

    assert spec.options["command"] == ("/bin/echo", "")


# --- output limits and time limits -----------------------------------------


def test_huge_output_is_cut_and_does_not_block(tmp_path):
    plugin = script(
        tmp_path,
        "echo 'OK - chatty | lines=1'\nyes 'long output line' | head -c 2000000\n",
    )

    result = run(tmp_path, [str(plugin)], timeout="20s")

    assert result.status is Status.OK
    assert result.summary == "OK - chatty"
    # 64KiB of 17-byte lines after the 22-byte first line: 3854 lines, of
    # which 199 are shown and the rest counted.
    assert result.evidence[-2:] == (
        "(3655 more lines not shown)",
        "(output cut at 64KiB)",
    )
    assert len(result.evidence) == command.MAX_EVIDENCE_LINES + 1


@pytest.mark.slow
def test_timeout_kills_the_whole_process_group(tmp_path):
    child_pid_file = tmp_path / "child.pid"
    plugin = script(
        tmp_path,
        f"""\
        sleep 300 &
        echo $! > {child_pid_file}
        echo $$ > {tmp_path / "parent.pid"}
        echo 'still thinking'
        sleep 300
        """,
    )

    result = run(tmp_path, [str(plugin)], timeout="2s")

    assert result.status is Status.UNKNOWN
    assert result.summary == "command timed out after 2s (it had said: still thinking)"
    for pid_file in (child_pid_file, tmp_path / "parent.pid"):
        assert is_gone(int(pid_file.read_text()))


@pytest.mark.slow
def test_timeout_kills_a_program_that_ignores_sigterm(tmp_path):
    plugin = script(
        tmp_path,
        f"""\
        trap '' TERM
        echo $$ > {tmp_path / "parent.pid"}
        while :; do sleep 1; done
        """,
    )

    result = run(tmp_path, [str(plugin)], timeout="2s")

    assert result.summary == "command timed out after 2s"
    assert is_gone(int((tmp_path / "parent.pid").read_text()))


def test_children_left_behind_by_a_finished_program_are_killed(tmp_path):
    plugin = script(
        tmp_path,
        f"""\
        sleep 300 > /dev/null 2>&1 &
        echo $! > {tmp_path / "child.pid"}
        echo 'OK - done'
        """,
    )

    result = run(tmp_path, [str(plugin)])

    assert result.status is Status.OK
    assert is_gone(int((tmp_path / "child.pid").read_text()))


def test_child_holding_the_pipe_open_does_not_hold_the_result(tmp_path):
    # The background sleep inherits stdout, so the pipe stays open after the
    # plugin exits; the check must still finish and not wait for the timeout.
    plugin = script(
        tmp_path,
        f"""\
        sleep 300 &
        echo $! > {tmp_path / "child.pid"}
        echo 'OK - returned'
        """,
    )

    result = run(tmp_path, [str(plugin)], timeout="60s")

    assert result.status is Status.OK
    assert result.summary == "OK - returned"
    assert is_gone(int((tmp_path / "child.pid").read_text()))


def test_budget_leaves_room_to_kill_before_the_core_gives_up():
    for timeout in (0.5, 2.0, 10.0, 300.0):
        budget = command.budget_for(timeout)
        assert 0 < budget.run < timeout
        assert budget.run + budget.grace < timeout


# --- performance data from real programs -----------------------------------


def test_perf_data_of_every_shape_becomes_metrics(tmp_path):
    plugin = script(
        tmp_path,
        """\
        echo "DISK WARNING - / at 91% | /=2643MB;5948;5958;0;5968 'used space'=91%;80"
        echo "/ 15272 MB (77%);"
        echo "/boot 68 MB (69%); | /boot=68KB;88;93;0;98"
        echo "'it''s'=3c rta=12.5ms;100;200 time=0.25s pkts=U;1;2 raw=7"
        echo "temp=41.5C bytes=10B"
        exit 1
        """,
    )

    result = run(tmp_path, [str(plugin)])

    assert result.status is Status.WARNING
    assert result.summary == "DISK WARNING - / at 91%"
    assert result.evidence == ("/ 15272 MB (77%);", "/boot 68 MB (69%);")
    assert result.metrics == {
        "/_bytes": 2643 * 1024**2,
        "used space_percent": 91.0,
        "/boot_bytes": 68 * 1024,
        "it's_total": 3.0,
        "rta_seconds": 0.0125,
        "time_seconds": 0.25,
        "raw": 7.0,
        "temp_C": 41.5,
        "bytes_bytes": 10.0,
    }
    assert result.value == 2643 * 1024**2


def test_no_perf_data_means_no_metrics_and_no_value(tmp_path):
    plugin = script(tmp_path, "echo 'PROCS OK: 3 processes'\necho detail\n")

    result = run(tmp_path, [str(plugin)])

    assert result.metrics == {}
    assert result.value is None
    assert result.evidence == ("detail",)


# --- the Debian monitoring-plugins-basic executables ------------------------


@pytest.mark.skipif(
    not (NAGIOS_PLUGINS / "check_load").exists(),
    reason="monitoring-plugins-basic is not installed",
)
def test_real_check_load(tmp_path):
    check_load = str(NAGIOS_PLUGINS / "check_load")

    relaxed = run(
        tmp_path, [check_load, "-w", "1000,1000,1000", "-c", "2000,2000,2000"]
    )
    strict = run(tmp_path, [check_load, "-w", "0,0,0", "-c", "0,0,0"])

    assert relaxed.status is Status.OK
    assert relaxed.summary.startswith("LOAD OK")
    assert set(relaxed.metrics) == {"load1", "load5", "load15"}
    assert relaxed.value == relaxed.metrics["load1"]
    assert relaxed.metrics["load1"] == pytest.approx(os.getloadavg()[0], abs=2)
    assert strict.status is Status.CRITICAL


@pytest.mark.skipif(
    not (NAGIOS_PLUGINS / "check_disk").exists(),
    reason="monitoring-plugins-basic is not installed",
)
def test_real_check_disk(tmp_path):
    check_disk = str(NAGIOS_PLUGINS / "check_disk")

    relaxed = run(tmp_path, [check_disk, "-w", "0%", "-c", "0%", "-p", "/"])
    full = run(tmp_path, [check_disk, "-w", "100%", "-c", "100%", "-p", "/"])

    assert relaxed.status is Status.OK
    assert relaxed.summary.startswith("DISK OK")
    used = psutil.disk_usage("/").used
    assert relaxed.metrics["/_bytes"] == pytest.approx(used, rel=0.05)
    assert full.status is Status.CRITICAL


# --- the perf data parser ---------------------------------------------------


def test_parser_reads_quoted_labels_with_spaces_and_doubled_quotes():
    data = parse_perfdata("'/ used'=12MB;10;20;0;100 'it''s here'=1")

    assert data == [
        PerfDatum("/ used", 12.0, "MB", "10", "20", 0.0, 100.0),
        PerfDatum("it's here", 1.0),
    ]


def test_parser_keeps_threshold_ranges_as_printed():
    (datum,) = parse_perfdata("users=4;@10:20;~:5;0;")

    assert datum.warn == "@10:20"
    assert datum.crit == "~:5"
    assert datum.minimum == 0.0
    assert datum.maximum is None


def test_parser_skips_undetermined_and_malformed_data_and_goes_on():
    data = parse_perfdata("a=U b=oops c= 'unterminated=3 d=4")

    assert data == []
    assert parse_perfdata("a=U junk b=2 =5 'x'=1,5s")[:2] == [
        PerfDatum("b", 2.0),
        PerfDatum("x", 1.5, "s"),
    ]


def test_parser_reads_negative_and_exponent_values():
    assert [datum.value for datum in parse_perfdata("a=-1.5 b=2e3 c=.5 d=+7")] == [
        -1.5,
        2000.0,
        0.5,
        7.0,
    ]


def test_repeated_labels_keep_every_value():
    metrics = metrics_of(parse_perfdata("x=1 x=2 x=3"))

    assert metrics == {"x": 1.0, "x_2": 2.0, "x_3": 3.0}


def test_split_output_follows_the_nagios_long_output_rule():
    output = split_output(
        "TEXT | a=1\nlong one\nlong two | b=2\nc=3\nnot text either=4\n"
    )

    assert output.summary == "TEXT"
    assert output.long_output == ("long one", "long two")
    assert [datum.label for datum in output.perfdata] == ["a", "b", "c", "either"]


@given(st.text())
def test_parser_never_raises_and_yields_finite_numbers(text):
    for datum in parse_perfdata(text):
        for number in (datum.value, datum.minimum, datum.maximum):
            assert number is None or abs(number) < float("inf")
    output = split_output(text)
    metrics_of(output.perfdata)
    assert "\n" not in output.summary


labels = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
    min_size=1,
    max_size=20,
).filter(lambda label: label.strip() == label and "|" not in label)
values = st.floats(allow_nan=False, allow_infinity=False, width=32)
units = st.sampled_from(["", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c"])


@given(st.lists(st.tuples(labels, values, units), min_size=1, max_size=6))
def test_parser_reads_back_what_a_plugin_prints(entries):
    printed = " ".join(
        "'{}'={}{};1;2;0;100".format(label.replace("'", "''"), repr(value), unit)
        for label, value, unit in entries
    )

    data = parse_perfdata(printed)

    assert [(d.label, d.value, d.uom) for d in data] == [
        (label, value, unit) for label, value, unit in entries
    ]


def test_signal_names_cover_unknown_numbers():
    assert command._signal_name(signal.SIGKILL) == "SIGKILL"
    assert command._signal_name(200) == "200"


def test_program_sees_path_and_locale_but_not_the_daemon_s_secrets(
    tmp_path, monkeypatch
):
    # What a daemon run with `[smtp] password_env = "SMTP_PASSWORD"` under a
    # systemd credential has in its environment.
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret-value")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/notifier.service")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    printer = script(tmp_path, 'echo "environment"\nenv | sort\n')

    result = run(tmp_path, [str(printer)], env={"CHECK_ONLY": "yes"})

    seen = "\n".join(result.evidence)
    assert "s3cret-value" not in seen
    assert "CREDENTIALS_DIRECTORY" not in seen
    assert "LC_ALL=C.UTF-8" in seen
    assert "CHECK_ONLY=yes" in seen
    assert any(line.startswith("PATH=") for line in result.evidence)
