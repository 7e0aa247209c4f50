"""The configuration file: every key validated, every problem reported at once."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.checks.base import CheckContext, CheckType, Result, Status
from notifier.cli import main
from notifier.config import (
    COMMON_OPTIONS,
    CheckCommon,
    FileSettings,
    MailSettings,
    NotifierSettings,
    SmtpSettings,
    build_config,
    read_toml,
    render_config,
)
from notifier.errors import EX_CONFIG, ConfigError
from notifier.loader import load
from notifier.options import Option, RunsOrDuration, options_of

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"


class _Fixed:
    def run(self) -> Result:
        return Result(Status.OK, "fine")


def _create(context: CheckContext) -> _Fixed:
    return _Fixed()


DISKISH = CheckType(
    name="diskish",
    create=_create,
    options=(
        Option("path", "path", Path("/"), "mount point"),
        Option("warning", "float", 80.0, "percent", minimum=0, maximum=100),
        Option("critical", "float", 90.0, "percent", minimum=0, maximum=100),
    ),
)
TYPES = {"diskish": DISKISH}


def build(text: str, path: Path | None = None):
    return build_config(tomllib.loads(text), path, TYPES)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build(text, Path("/etc/notifier/notifier.toml"))
    return [problem.render() for problem in caught.value.problems]


def test_empty_file_gives_documented_defaults():
    config = build("")

    assert config.notifier.state_dir == Path("/var/lib/notifier")
    assert config.mail.transport == "smtp"
    assert config.mail.attach_max_bytes == 512 * 1024
    assert config.smtp.security == "ssl"
    assert config.smtp.verify is True
    assert config.smtp.timeout == 30
    assert config.defaults.repeat == 4 * 3600
    assert config.checks == ()


def test_derived_values_are_filled_in_for_what_is_really_used():
    config = build('[notifier]\nhostname = "web-1"\nstate_dir = "/srv/n"\n')

    assert config.mail.sender == "notifier@web-1"
    assert config.file.directory == Path("/srv/n/mail")


def test_check_entry_takes_defaults_then_its_own_values():
    config = build(
        """
        [defaults]
        every = "10s"
        repeat = "0"
        [[check]]
        name = "root"
        type = "diskish"
        warning = 70
        for = "5m"
        within = "3 of 5"
        attach = "/var/log/syslog"
        """
    )

    (spec,) = config.checks
    assert spec.common.every == 10
    assert spec.common.repeat == 0
    assert spec.common.for_ == RunsOrDuration(runs=1, seconds=300)
    assert spec.common.within == (3, 5)
    assert spec.common.attach == (Path("/var/log/syslog"),)
    assert spec.options == {"path": Path("/"), "warning": 70.0, "critical": 90.0}


def test_every_problem_in_a_file_is_reported_in_one_go():
    rendered = problems_of(
        """
        [notifier]
        log_levl = "debug"
        [smtp]
        port = 99999
        security = "tls"
        [mail]
        transport = "fiel"
        [[check]]
        name = "root"
        type = "diskish"
        warnng = 80
        [[check]]
        name = "root"
        type = "diskis"
        [[check]]
        type = "diskish"
        every = 30
        """
    )

    assert rendered == [
        "/etc/notifier/notifier.toml: [notifier] log_levl: is not a known key "
        "(did you mean 'log_level'?)",
        "/etc/notifier/notifier.toml: [smtp] port: 99999 is above the maximum "
        "(use at most 65535)",
        "/etc/notifier/notifier.toml: [smtp] security: 'tls' is not valid "
        "(expected one of 'ssl', 'starttls', 'none')",
        "/etc/notifier/notifier.toml: [mail] transport: 'fiel' is not a known "
        "transport (did you mean 'file'?)",
        '/etc/notifier/notifier.toml: [[check]] "root" warnng: is not a known key '
        "(did you mean 'warning'?)",
        "/etc/notifier/notifier.toml: [[check]] \"root\" name: 'root' is used by "
        "[[check]] number 1 too (give every check its own name)",
        "/etc/notifier/notifier.toml: [[check]] \"root\" type: 'diskis' is not a "
        "known check type (did you mean 'diskish'?)",
        "/etc/notifier/notifier.toml: [[check]] number 3 name: is required but missing",
        "/etc/notifier/notifier.toml: [[check]] number 3 every: 30 is not a "
        'duration (write it as a string such as "30s")',
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[mail]\nmax_age = '1s'", "[mail] max_age: 1s is below the minimum"),
        ("[mail]\nattach_max_bytes = 'lots'", "[mail] attach_max_bytes: 'lots' is"),
        ("[mail]\nto = 5", "[mail] to: 5 is not valid (expected a string or a list"),
        ("[mail]\nredact = ['(']", "[mail] redact: '(' is not a valid regular"),
        ("[smtp]\nverify = 'yes'", "[smtp] verify: 'yes' is not valid (expected true"),
        ("[notifier]\nworkers = 0", "[notifier] workers: 0 is below the minimum"),
        ("[defaults]\nfor = 0", "[defaults] for: 0 is not valid"),
        ("[defaults]\nwithin = '6 of 5'", "[defaults] within: '6 of 5' is not valid"),
        ("[defaults]\nevery = '5 minutes'", "[defaults] every: '5 minutes' is not a"),
        ("smtp = 3", "smtp: must be a table"),
        ("check = 3", "check: must be an array of tables ([[check]])"),
        ("[mial]\nto = 'x'", "mial: is not a known table (did you mean 'mail'?)"),
        (
            "[[check]]\nname = 'a b'\ntype = 'diskish'",
            "[[check]] number 1 name: 'a b' is not a valid check name",
        ),
        (
            "[[check]]\nname = 'x'",
            '[[check]] "x" type: is required but missing (one of diskish)',
        ),
        (
            "[[check]]\nname = 'x'\ntype = 'diskish'\nwarning = 120",
            '[[check]] "x" warning: 120 is above the maximum (use at most 100)',
        ),
    ],
)
def test_bad_values_name_table_key_value_and_what_is_right(text, expected):
    rendered = problems_of(text)

    assert any(expected in line for line in rendered), rendered


def test_secret_values_never_appear_in_errors():
    rendered = problems_of("[smtp]\npassword = 12345678")

    assert rendered == [
        "/etc/notifier/notifier.toml: [smtp] password: <hidden> is not valid "
        "(expected a string)"
    ]


def test_invalid_toml_is_one_line_with_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[mail\nto = 1\n")

    with pytest.raises(ConfigError) as caught:
        read_toml(path)
    assert str(caught.value).startswith(f"{path}: invalid TOML: ")
    assert "\n" not in str(caught.value)


def test_missing_and_non_utf8_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        read_toml(tmp_path / "absent.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        read_toml(binary)


def test_config_show_output_is_itself_a_valid_equivalent_config():
    config = build(
        """
        [notifier]
        hostname = "web-1"
        [smtp]
        password = "hunter2"
        [mail]
        compress_above = "1MB"
        [[check]]
        name = "root"
        type = "diskish"
        for = "5m"
        within = "2 of 4"
        """
    )

    shown = render_config(config, TYPES)
    again = build(shown)

    assert "hunter2" not in shown
    assert 'password = "<redacted>"' in shown
    assert again.checks[0].common == config.checks[0].common
    assert again.checks[0].options == config.checks[0].options
    assert again.mail == config.mail
    assert again.notifier == config.notifier


def test_every_declared_key_is_documented_in_the_example_file():
    text = EXAMPLE.read_text()
    tables = {
        "notifier": NotifierSettings,
        "mail": MailSettings,
        "smtp": SmtpSettings,
        "file": FileSettings,
        "defaults": CheckCommon,
    }
    missing = []

    for table, cls in tables.items():
        body = text.split(f"\n[{table}]\n", 1)[1].split("\n[", 1)[0]
        for option in options_of(cls):
            if not re.search(rf"^#? ?{re.escape(option.name)} = ", body, re.M):
                missing.append(f"[{table}] {option.name}")

    assert missing == []


def test_example_config_loads_with_the_real_plugins(tmp_path):
    loaded = load(EXAMPLE)

    assert loaded.config.mail.transport == "file"
    assert loaded.config.defaults == CheckCommon()
    for option in COMMON_OPTIONS:
        assert f"{option.name} =" in EXAMPLE.read_text()


def test_config_check_exits_78_with_one_line_per_problem(tmp_path):
    path = tmp_path / "notifier.toml"
    path.write_text('[smtp]\nport = "465"\n[mail]\nto = 3\n')

    completed = subprocess.run(
        [sys.executable, "-m", "notifier", "config", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == EX_CONFIG
    assert completed.stderr.splitlines() == [
        f"notifier: {path}: [mail] to: 3 is not valid (expected a string or a list "
        "of strings)",
        f"notifier: {path}: [smtp] port: '465' is not valid (expected a whole number)",
    ] or sorted(completed.stderr.splitlines()) == sorted(
        [
            f"notifier: {path}: [mail] to: 3 is not valid (expected a string or a "
            "list of strings)",
            f"notifier: {path}: [smtp] port: '465' is not valid (expected a whole "
            "number)",
        ]
    )
    assert "Traceback" not in completed.stderr


def test_config_path_comes_from_environment_when_not_given(tmp_path, monkeypatch):
    path = tmp_path / "env.toml"
    path.write_text('[mail]\ntransport = "file"\n')
    monkeypatch.setenv("NOTIFIER_CONFIG", str(path))

    completed = subprocess.run(
        [sys.executable, "-m", "notifier", "config", "show"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert tomllib.loads(completed.stdout)["mail"]["transport"] == "file"


# Values of every TOML shape, to throw at every key of every table.
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["30s", "5m", "0", "512KiB", "ssl", "3 of 5", "/tmp", "("]),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
known_keys = sorted(
    {
        option.name
        for cls in (
            NotifierSettings,
            MailSettings,
            SmtpSettings,
            FileSettings,
            CheckCommon,
        )
        for option in options_of(cls)
    }
    | {"name", "type", "path", "warning"}
)
keys = st.one_of(st.sampled_from(known_keys), st.text(min_size=1, max_size=10))
tables = st.dictionaries(keys, toml_values, max_size=5)
documents = st.fixed_dictionaries(
    {},
    optional={
        "notifier": tables,
        "mail": tables,
        "smtp": tables,
        "file": tables,
        "defaults": tables,
        "check": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.one_of(st.text(max_size=6), st.integers()),
                    "type": st.sampled_from(["diskish", "disk", "nope", ""]),
                },
            ).flatmap(lambda base: tables.map(lambda extra: {**extra, **base})),
            max_size=3,
        ),
        "junk": toml_values,
    },
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(document=documents)
def test_malformed_configs_never_give_a_traceback_only_located_errors(
    document, tmp_path, capsys
):
    path = tmp_path / "fuzz.toml"
    path.write_text(tomli_w.dumps(document))

    status = main(["config", "check", "-c", str(path)])

    err = capsys.readouterr().err
    assert status in (0, EX_CONFIG), err
    if status == EX_CONFIG:
        for line in err.splitlines():
            assert line.startswith(f"notifier: {path}: "), line
    assert "internal error" not in err
    assert "Traceback" not in err


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_as_config_give_a_config_error(data, tmp_path, capsys):
    path = tmp_path / "bytes.toml"
    path.write_bytes(data)

    status = main(["config", "check", "-c", str(path)])

    err = capsys.readouterr().err
    assert status in (0, EX_CONFIG)
    assert "internal error" not in err


def test_cron_lines_are_checked_by_the_scheduler_s_own_parser():
    rendered = problems_of(
        "[[check]]\nname = 'x'\ntype = 'diskish'\ncron = '61 * * * *'"
    )

    assert len(rendered) == 1
    assert rendered[0].startswith(
        "/etc/notifier/notifier.toml: [[check]] \"x\" cron: '61 * * * *' is not a "
        "crontab line"
    )
    assert build("[defaults]\ncron = '*/5 * * * *'").defaults.cron == "*/5 * * * *"
