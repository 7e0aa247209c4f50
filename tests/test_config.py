"""The configuration file: every key validated, every problem reported at once."""

from __future__ import annotations

import dataclasses
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
from notifier.plugins import build_registry

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
        Option("limit", "size", None, "bytes"),
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
    assert spec.options == {
        "path": Path("/"),
        "warning": 70.0,
        "critical": 90.0,
        "limit": None,
    }


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
        attach_max_bytes = "1000001"
        [defaults]
        every = "400d1s"
        repeat = "1.0005s"
        timeout = "36500d"
        [[check]]
        name = "root"
        type = "diskish"
        for = "5m"
        within = "2 of 4"
        limit = "1.5GiB"
        [[check]]
        name = "odd"
        type = "diskish"
        limit = 1234567
        for = "1.0001s"
        """
    )

    shown = render_config(config, TYPES)
    again = build(shown)

    assert "hunter2" not in shown
    assert 'password = "<redacted>"' in shown
    # Sizes no unit writes exactly are shown as plain bytes, not "976.6KiB".
    assert "attach_max_bytes = 1000001\n" in shown
    assert 'limit = "1536MiB"\n' in shown
    assert 'every = "400d1s"\n' in shown
    assert 'repeat = "1.0005s"\n' in shown
    assert again.checks == config.checks
    assert again.defaults == config.defaults
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


# Values of every TOML shape, to throw at every key of every table: extremes
# included (numbers of hundreds of digits, non-finite floats, long strings,
# NUL characters) and the near misses of each kind.
BUILTIN_TYPES = build_registry([], load_entry_points=False).check_type_map()
FUZZ_TYPES = ("disk", "logscan", "command", "cpu", "load", "memory")
tricky_texts = st.sampled_from(
    [
        "30s",
        "5m",
        "0",
        "1.0005s",
        "9" * 300 + "d",
        "512KiB",
        "1000001",
        "9" * 400 + "GiB",
        "ssl",
        "3 of 5",
        "3 of 1001",
        "/",
        "/tmp",
        "/var/log/syslog",
        "var/log",
        "/tmp/a\0b",
        "(",
        "a{4294967296}",
        "utf-8",
        "utf-16",
        "nosuch",
        "*/5 * * * *",
        "08:00",
        "any",
        "end",
        "A=B",
    ]
)
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([10**400, -(10**400), 2**63, 10**19]),
    st.floats(),
    st.text(max_size=12),
    st.text(min_size=200, max_size=400),
    st.text(alphabet="ab\0=/ ", max_size=6),
    tricky_texts,
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(min_size=1, max_size=8) | tricky_texts, inner, max_size=3
        )
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
    | {"name", "type"}
)
check_keys = sorted(
    {option.name for name in FUZZ_TYPES for option in BUILTIN_TYPES[name].options}
    | {option.name for option in COMMON_OPTIONS}
)
keys = st.one_of(st.sampled_from(known_keys), st.text(min_size=1, max_size=10))
tables = st.dictionaries(keys, toml_values, max_size=5)
check_tables = st.dictionaries(
    st.one_of(st.sampled_from(check_keys), st.text(min_size=1, max_size=10)),
    toml_values,
    max_size=5,
)
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
                    "type": st.sampled_from([*FUZZ_TYPES, "nope", ""]),
                },
            ).flatmap(lambda base: check_tables.map(lambda extra: {**extra, **base})),
            max_size=3,
        ),
        "junk": toml_values,
    },
)
# Check types cheap and harmless to run for real on whatever a fuzzed entry
# says (command would run arbitrary programs; cpu waits a second).
RUNNABLE_TYPES = ("disk", "memory")


def _is_ours(line: str, path: Path) -> bool:
    """Return whether a line of stderr is a located problem or a plugin's
    failure, the only two things a bad file may produce."""
    return line.startswith((f"notifier: {path}: ", "notifier: plugin "))


def _assert_shown_back_the_same_and_runs(path: Path, shown_out: str, capfd) -> None:
    """A valid file: what `config show` printed is the same configuration, and
    the checks that are harmless to run do run, without a traceback."""
    again = path.with_name("shown.toml")
    again.write_text(shown_out)
    again.chmod(0o600)
    original, reread = load(path).config, load(again).config
    assert reread.checks == original.checks
    assert reread.defaults == original.defaults
    assert reread.mail == original.mail
    assert reread.notifier == original.notifier

    names = [spec.name for spec in original.checks if spec.type in RUNNABLE_TYPES]
    if names:
        status = main(["check", "-c", str(path), *names[:2]])
        err = capfd.readouterr().err
        assert status in (0, 1, 2, 3), err
        assert "internal error" not in err


def _check_and_show(document: dict, tmp_path: Path, capfd) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text(tomli_w.dumps(document))
    path.chmod(0o600)

    checked = main(["config", "check", "-c", str(path)])
    check_err = capfd.readouterr().err
    shown = main(["config", "show", "-c", str(path)])
    show_out, show_err = capfd.readouterr()

    for err in (check_err, show_err):
        assert "internal error" not in err
        assert "Traceback" not in err
    assert checked in (0, EX_CONFIG), check_err
    if checked == EX_CONFIG:
        for line in check_err.splitlines():
            assert _is_ours(line, path), line
        assert shown == EX_CONFIG or "notifier: plugin " in check_err
    else:
        assert shown == 0, show_err
        _assert_shown_back_the_same_and_runs(path, show_out, capfd)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(document=documents)
def test_malformed_configs_never_give_a_traceback_only_located_errors(
    document, tmp_path, capfd
):
    _check_and_show(document, tmp_path, capfd)


# Nearly valid files: each key gets a value of its declared kind, now and
# then an extreme one, so that `config show` and `check` are reached too.
SAMPLE_PATHS = st.sampled_from(["/", "/tmp", "/var/log/syslog"])
KIND_VALUES: dict[str, st.SearchStrategy] = {
    "str": st.text(max_size=20),
    "bool": st.booleans(),
    "duration": st.sampled_from(
        ["30s", "5m", "1h30m", "1.0005s", "250ms", "400d1s", "36500d", "0"]
    ),
    "size": st.sampled_from(["512KiB", "1000001", "1.5GiB", 4096, "10MB", 0]),
    "path": SAMPLE_PATHS,
    "str_list": st.text(min_size=1, max_size=10)
    | st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=3),
    "path_list": SAMPLE_PATHS | st.lists(SAMPLE_PATHS, max_size=3),
    "regex": st.sampled_from(["ERROR", "^x", "(a|b)c"]),
    "regex_list": st.lists(
        st.sampled_from(["ERROR", "^x", "(a|b)c"]), min_size=1, max_size=3
    ),
    "clock": st.sampled_from(["08:00", "", "23:59"]),
    "cron": st.sampled_from(["*/5 * * * *", "", "0 8 * * 1-5"]),
    "runs_or_duration": st.integers(min_value=1, max_value=10) | st.just("5m"),
    "n_of_m": st.sampled_from(["3 of 5", "1 of 1", "10 of 1000"]),
    "str_map": st.dictionaries(
        st.text(alphabet="ABCXYZ_", min_size=1, max_size=5), st.text(max_size=8)
    ),
}


def kind_values(option: Option) -> st.SearchStrategy:
    """Return values of ``option``'s kind, mostly within its bounds."""
    if option.choices:
        choices = [int(c) for c in option.choices] if option.kind == "int" else None
        return st.sampled_from(choices or list(option.choices))
    low = option.minimum if option.minimum is not None else 0
    high = option.maximum if option.maximum is not None else 10**6
    if option.kind == "int":
        return st.integers(min_value=int(low), max_value=int(high))
    if option.kind == "float":
        return st.floats(min_value=low, max_value=high)
    return KIND_VALUES[option.kind]


def option_values(options, required=()) -> st.SearchStrategy:
    """Return tables of some of ``options``, every ``required`` one included."""
    by_name = {option.name: option for option in options}
    chosen = st.lists(st.sampled_from(sorted(by_name)), unique=True, max_size=3)
    return chosen.flatmap(
        lambda names: st.fixed_dictionaries(
            {
                name: rarely_extreme(kind_values(by_name[name]))
                if name not in required
                else kind_values(by_name[name])
                for name in {*names, *required}
            }
        )
    )


def rarely_extreme(values: st.SearchStrategy) -> st.SearchStrategy:
    """Return ``values``, or one time in twenty any TOML value at all."""
    return st.integers(min_value=0, max_value=19).flatmap(
        lambda dice: toml_scalars if dice == 0 else values
    )


def entry_values(type_name: str) -> st.SearchStrategy:
    check_type = BUILTIN_TYPES[type_name]
    required = [option.name for option in check_type.options if option.required]
    return option_values((*check_type.options, *COMMON_OPTIONS), required).map(
        lambda values: {"type": type_name, **values}
    )


nearly_valid_documents = st.fixed_dictionaries(
    {
        "mail": option_values(options_of(MailSettings)).map(
            lambda values: {**values, "transport": "file"}
        ),
        "notifier": option_values(options_of(NotifierSettings)).map(
            lambda values: {**values, "plugin_dirs": []}
        ),
        "defaults": option_values(COMMON_OPTIONS),
        "check": st.lists(
            st.sampled_from(FUZZ_TYPES).flatmap(entry_values), max_size=3
        ).map(
            lambda entries: [
                {"name": f"c{index}", **entry} for index, entry in enumerate(entries)
            ]
        ),
    }
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(document=nearly_valid_documents)
def test_nearly_valid_configs_show_back_the_same_and_run(document, tmp_path, capfd):
    _check_and_show(document, tmp_path, capfd)


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


# Input that once gave "internal error" (exit 70) is a located error (78).

BIG = "9" * 400


def notifier_config(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notifier", "config", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"[defaults]\nclear_below = {BIG}\n",
            f"[defaults] clear_below: {BIG[:30]}...{BIG[:30]} (400 characters) is "
            "too large (write a number of at most 308 digits)",
        ),
        (
            f'[mail]\nattach_max_bytes = "{BIG}GiB"\n',
            "[mail] attach_max_bytes: '99999999999999999999...99999999999999999GiB' "
            "is larger than 1048576TiB, the largest size allowed",
        ),
        (
            '[notifier]\nplugin_dirs = ["/tmp/a\\u0000b"]\n',
            "[notifier] plugin_dirs: '/tmp/a\\x00b' holds a NUL character, which no "
            "path can",
        ),
        (
            f'[defaults]\nevery = "{"9" * 300}d"\n',
            "[defaults] every: '99999999999999999999...9999999999999999999d' is "
            "longer than 36500d, the longest duration allowed",
        ),
        (
            "[defaults]\nclear_above = nan\n",
            "[defaults] clear_above: nan is not a finite number (write an ordinary "
            "number such as 90 or 2.5)",
        ),
        (
            "[defaults]\nclear_above = -inf\n",
            "[defaults] clear_above: -inf is not a finite number",
        ),
        (
            "[notifier]\nworkers = 99999999999999999999\n",
            "[notifier] workers: 99999999999999999999 is too large (a whole number "
            "is at most 9223372036854775807)",
        ),
        (
            "[mail]\nredact = ['a{4294967296}']\n",
            "[mail] redact: 'a{4294967296}' is not a valid regular expression: the "
            "repetition number is too large",
        ),
        (
            f"[mail]\nmax_per_hour = {'9' * 5000}\n",
            "invalid TOML: Exceeds the limit (4300 digits) for integer string "
            "conversion",
        ),
        (
            "[defaults]\nwithin = '3 of 1001'\n",
            "[defaults] within: '3 of 1001' looks back over more runs than the "
            "maximum (use at most 1000 runs, such as '3 of 5')",
        ),
        (
            f"[defaults]\nwithin = '3 of {'1' * 5000}'\n",
            "looks back over more runs than the maximum",
        ),
        (
            '[notifier]\nstate_dir = "var/lib/notifier"\n',
            "[notifier] state_dir: 'var/lib/notifier' is not an absolute path "
            "(write an absolute path, such as /var/log/syslog)",
        ),
        (
            '[notifier]\nplugin_dirs = ["plugins"]\n',
            "[notifier] plugin_dirs: 'plugins' is not an absolute path",
        ),
    ],
)
def test_extreme_values_are_located_errors_in_check_and_show(
    tmp_path, capsys, text, expected
):
    path = tmp_path / "notifier.toml"
    path.write_text(text)

    for action in ("check", "show"):
        status = main(["config", action, "-c", str(path)])

        out, err = capsys.readouterr()
        assert status == EX_CONFIG, (action, err)
        assert out == ""
        assert err.startswith(f"notifier: {path}: "), err
        assert expected in err, err
        assert "internal error" not in err


@pytest.mark.slow
def test_what_once_gave_internal_error_is_a_config_error_in_one_report(tmp_path):
    path = tmp_path / "notifier.toml"
    path.write_text(
        f'[notifier]\nplugin_dirs = ["/tmp/a\\u0000b"]\n'
        f'[mail]\nattach_max_bytes = "{BIG}GiB"\n'
        f'[defaults]\nclear_below = {BIG}\nevery = "{"9" * 300}d"\n'
    )

    for action in ("check", "show"):
        done = notifier_config(action, "-c", str(path))

        assert done.returncode == EX_CONFIG, done.stderr
        assert done.stdout == ""
        assert [
            line.split(": ")[2].split()[0] for line in done.stderr.splitlines()
        ] == [
            "[notifier]",
            "[mail]",
            "[defaults]",
            "[defaults]",
        ], done.stderr


@pytest.mark.slow
def test_a_config_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "notifier.toml"
    path.write_bytes(b'\xef\xbb\xbf[mail]\ntransport = "file"\n')

    done = notifier_config("show", "-c", str(path))

    assert done.returncode == 0, done.stderr
    assert tomllib.loads(done.stdout)["mail"]["transport"] == "file"


@pytest.mark.slow
def test_transport_problems_come_with_every_other_problem_in_one_go(tmp_path):
    path = tmp_path / "notifier.toml"
    path.write_text(
        '[smtp]\nusername = "alerts"\npassword = "hunter2"\n[defaults]\nevry = "1m"\n'
    )
    path.chmod(0o644)

    done = notifier_config("check", "-c", str(path))

    assert done.returncode == EX_CONFIG
    lines = done.stderr.splitlines()
    assert (
        f"notifier: {path}: [defaults] evry: is not a known key (did you mean 'every'?)"
    ) in lines
    assert any(
        line.startswith(f"notifier: {path}: [smtp] password: an inline password")
        for line in lines
    ), lines
    assert "hunter2" not in done.stderr


@pytest.mark.slow
def test_config_show_prints_a_size_no_unit_writes_exactly_as_plain_bytes(tmp_path):
    path = tmp_path / "notifier.toml"
    path.write_text(
        '[mail]\ntransport = "file"\n[[check]]\nname = "root"\ntype = "disk"\n'
        'path = "/"\nfree_warning = "1000001"\nfree_critical = "1.5GiB"\n'
    )

    done = notifier_config("show", "-c", str(path))

    assert done.returncode == 0, done.stderr
    (entry,) = tomllib.loads(done.stdout)["check"]
    assert entry["free_warning"] == 1000001
    assert entry["free_critical"] == "1536MiB"
    shown = tmp_path / "shown.toml"
    shown.write_text(done.stdout)
    assert load(shown).config.checks == load(path).config.checks


def test_n_of_m_looks_back_over_at_most_a_thousand_runs():
    assert build("[defaults]\nwithin = '3 of 1000'").defaults.within == (3, 1000)
    (problem,) = problems_of("[defaults]\nwithin = '1 of 1001'")
    assert "within: '1 of 1001' looks back over more runs than the maximum" in problem


@pytest.mark.parametrize(
    ("key", "value"),
    [("path", "var/log"), ("attach", ["/var/log/syslog", "relative.log"])],
)
def test_paths_must_be_absolute(key, value):
    text = tomli_w.dumps({"check": [{"name": "x", "type": "diskish", key: value}]})

    (problem,) = problems_of(text)

    assert f'[[check]] "x" {key}: ' in problem
    assert "is not an absolute path (write an absolute path, such as " in problem


# A check type's own validate: problems only the type can see, located.


def _charset_problems(options):
    if options["charset"] not in ("utf-8", "latin-1"):
        return [("charset", f"{options['charset']!r} is unknown", "such as 'utf-8'")]
    return []


def _broken_validate(options):
    msg = "validator bug"
    raise RuntimeError(msg)


VALIDATING = {
    "charsets": CheckType(
        "charsets",
        _create,
        (Option("charset", "str", "utf-8"),),
        validate=_charset_problems,
    ),
    "broken": CheckType("broken", _create, validate=_broken_validate),
}


def test_a_type_s_validate_problems_are_located_and_reported_with_the_rest():
    text = (
        "[defaults]\nevry = '1m'\n"
        "[[check]]\nname = 'a'\ntype = 'charsets'\ncharset = 'ebcdic-martian'\n"
        "[[check]]\nname = 'b'\ntype = 'charsets'\n"
    )

    with pytest.raises(ConfigError) as caught:
        build_config(tomllib.loads(text), Path("/etc/n.toml"), VALIDATING)

    assert [problem.render() for problem in caught.value.problems] == [
        "/etc/n.toml: [defaults] evry: is not a known key (did you mean 'every'?)",
        "/etc/n.toml: [[check]] \"a\" charset: 'ebcdic-martian' is unknown "
        "(such as 'utf-8')",
    ]


def test_a_validate_that_raises_is_reported_at_the_entry_not_as_a_crash():
    text = "[[check]]\nname = 'b'\ntype = 'broken'\n"

    with pytest.raises(ConfigError) as caught:
        build_config(tomllib.loads(text), None, VALIDATING)

    (problem,) = caught.value.problems
    assert problem.location == '[[check]] "b"'
    assert problem.message == (
        "check type 'broken' failed to validate this entry: RuntimeError: validator bug"
    )


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("nosuch", "encoding: 'nosuch' is not an encoding Python knows"),
        ("utf-16", "encoding: 'utf-16' does not write a line feed as one byte"),
        ("utf-32-le", "encoding: 'utf-32-le' does not write a line feed as one byte"),
        ("utf\u00008", "encoding: 'utf\\x008' is not an encoding Python knows"),
    ],
)
def test_config_check_reports_a_logscan_encoding_it_cannot_read(
    tmp_path, encoding, expected
):
    path = tmp_path / "notifier.toml"
    path.write_text(
        tomli_w.dumps(
            {
                "check": [
                    {
                        "name": "app",
                        "type": "logscan",
                        "path": "/var/log/app.log",
                        "pattern": "ERROR",
                        "encoding": encoding,
                    }
                ]
            }
        )
    )

    with pytest.raises(ConfigError) as caught:
        load(path)

    (problem,) = [p.render() for p in caught.value.problems]
    assert problem.startswith(f'{path}: [[check]] "app" {expected}'), problem


@pytest.mark.parametrize(
    ("toml", "name"),
    [
        (r'"bad\r\nRSET"', "bad\r\nRSET"),
        ('"two words"', "two words"),
        (r'"tab\there"', "tab\there"),
    ],
)
def test_a_host_name_with_spaces_or_control_characters_is_refused(toml, name):
    rendered = problems_of(f"[notifier]\nhostname = {toml}")

    assert rendered == [
        f"/etc/notifier/notifier.toml: [notifier] hostname: {name!r} is not a host "
        "name (no spaces or control characters, such as 'web-1.example.org')"
    ]


def test_a_non_ascii_host_name_is_accepted():
    assert build('[notifier]\nhostname = "hôst-ü.example"').notifier.hostname == (
        "hôst-ü.example"
    )


def test_a_type_s_own_default_for_a_common_option_gives_way_to_defaults_table():
    quiet = dataclasses.replace(DISKISH, common_defaults={"recovery": False})
    types = {"diskish": quiet}
    entry = "[[check]]\nname = 'x'\ntype = 'diskish'\n"

    alone = build_config(tomllib.loads(entry), None, types)
    told = build_config(
        tomllib.loads("[defaults]\nrecovery = true\n" + entry), None, types
    )
    own = build_config(tomllib.loads(entry + "recovery = true\n"), None, types)

    assert alone.checks[0].common.recovery is False
    assert told.checks[0].common.recovery is True
    assert own.checks[0].common.recovery is True
