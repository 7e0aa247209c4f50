"""``notifier plugins`` and how plugin folders reach ``notifier config check``,
run as a user would: mostly as a real ``python -m notifier`` subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from notifier import plugins
from notifier.checks import BUILTIN_CHECK_MODULES
from notifier.cli import main
from notifier.config import COMMON_OPTIONS
from notifier.errors import EX_CONFIG, EX_OK
from notifier.plugins import DISABLE_ENV, TRACE_ENV, build_registry

FIXTURES = Path(__file__).parent / "fixtures" / "plugins"


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (DISABLE_ENV, TRACE_ENV, "NOTIFIER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def make_plugin_dir(parent: Path, *fixtures: str, name: str = "plugins") -> Path:
    """Return a folder of copies of the named fixture plugins, with safe modes."""
    folder = parent / name
    folder.mkdir()
    folder.chmod(0o755)
    for fixture in fixtures:
        shutil.copyfile(FIXTURES / fixture, folder / fixture)
        (folder / fixture).chmod(0o644)
    return folder


def write_config(tmp_path: Path, folders: list[Path], checks: str = "") -> Path:
    listed = ", ".join(f'"{folder}"' for folder in folders)
    config = tmp_path / "notifier.toml"
    config.write_text(
        f'[notifier]\nstate_dir = "{tmp_path / "state"}"\n'
        f"plugin_dirs = [{listed}]\n\n{checks}"
    )
    return config


def run_notifier(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in (DISABLE_ENV, TRACE_ENV, "NOTIFIER_CONFIG")
    }
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "-m", "notifier", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


USES_EXISTS = """
[[check]]
name = "marker"
type = "fixture_exists"
path = "/"
"""


@pytest.mark.slow
def test_plugins_lists_a_dropin_type_with_its_file(tmp_path):
    folder = make_plugin_dir(tmp_path, "exists_check.py")
    config = write_config(tmp_path, [folder])

    done = run_notifier("plugins", "-c", str(config))

    assert done.returncode == EX_OK, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line}
    assert rows["TYPE"].split() == ["TYPE", "ORIGIN", "SUMMARY"]
    assert rows["fixture_exists"].split(maxsplit=2) == [
        "fixture_exists",
        str(folder / "exists_check.py"),
        "Checks that a path exists",
    ]
    assert done.stderr == ""


@pytest.mark.slow
def test_plugins_lists_an_installed_plugin_with_distribution_and_version(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copyfile(FIXTURES / "entry_point_plugin.py", site / "notifier_cli_ep.py")
    info = site / "notifier_cli_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: notifier-cli-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text("[notifier]\ncli_ep = notifier_cli_ep\n")

    done = run_notifier(
        "plugins", "-c", str(tmp_path / "absent.toml"), PYTHONPATH=str(site)
    )

    assert done.returncode == EX_OK, done.stderr
    row = next(line for line in done.stdout.splitlines() if "fixture_ep" in line)
    assert "notifier-cli-plugin 1.0" in row


@pytest.mark.slow
def test_plugins_exits_78_when_two_plugins_claim_one_type(tmp_path):
    folder = make_plugin_dir(tmp_path, "exists_check.py", "duplicate_exists.py")
    config = write_config(tmp_path, [folder])

    done = run_notifier("plugins", "-c", str(config))

    assert done.returncode == EX_CONFIG
    assert "'fixture_exists'" in done.stderr
    assert str(folder / "exists_check.py") in done.stderr
    assert str(folder / "duplicate_exists.py") in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_plugins_shows_hook_calls_when_tracing_is_asked_for(tmp_path):
    folder = make_plugin_dir(tmp_path, "other_check.py")
    config = write_config(tmp_path, [folder])

    done = run_notifier("plugins", "-c", str(config), **{TRACE_ENV: "1"})

    assert done.returncode == EX_OK, done.stderr
    assert "notifier_check_types" in done.stderr
    assert "fixture_other" in done.stderr


@pytest.mark.slow
def test_config_check_accepts_a_type_from_a_safe_plugin_folder(tmp_path):
    folder = make_plugin_dir(tmp_path, "exists_check.py")
    config = write_config(tmp_path, [folder], USES_EXISTS)

    done = run_notifier("config", "check", "-c", str(config))

    assert done.returncode == EX_OK, done.stderr


@pytest.mark.slow
def test_config_check_fails_78_when_the_plugin_folder_is_writable_by_others(
    tmp_path,
):
    folder = make_plugin_dir(tmp_path, "exists_check.py")
    folder.chmod(0o777)
    config = write_config(tmp_path, [folder], USES_EXISTS)

    done = run_notifier("config", "check", "-c", str(config))

    assert done.returncode == EX_CONFIG
    lines = done.stderr.splitlines()
    # The refusal reaches the user once, in the command's own voice...
    refusals = [line for line in lines if "writable by group and others" in line]
    assert refusals[0] == (
        f"notifier: plugin {folder}: plugin folder is writable by group and "
        f"others (mode 0o777); run chmod go-w {folder}; skipped, the other "
        "plugins still load"
    )
    # ...and the unknown type says which refusal is why it is unknown.
    (unknown,) = [line for line in lines if "is not a known check type" in line]
    assert unknown.startswith(
        f"notifier: {config}: [[check]] \"marker\" type: 'fixture_exists' is not a "
        f"known check type (it may come from a plugin that failed to load: plugin "
        f"folder {folder} was refused because it is writable by group and others"
    )
    assert len(refusals) == 2
    assert all(line.startswith("notifier: ") for line in lines), lines
    assert "Traceback" not in done.stderr


def test_plugins_reports_failures_on_stderr_and_still_lists_the_rest(tmp_path, capsys):
    folder = make_plugin_dir(tmp_path, "raises_at_import.py", "other_check.py")
    config = write_config(tmp_path, [folder])

    status = main(["plugins", "-c", str(config)])

    out, err = capsys.readouterr()
    assert status == EX_OK
    assert "fixture_other" in out
    broken = str(folder / "raises_at_import.py")
    failed = [line for line in err.splitlines() if broken in line]
    assert len(failed) == 1, err
    assert failed[0].startswith(f"notifier: plugin {broken}: failed to import: ")
    assert "RuntimeError: plugin exploded on purpose" in failed[0]


def test_plugins_without_a_config_file_lists_builtins_and_says_so(tmp_path, capsys):
    missing = tmp_path / "absent.toml"

    status = main(["plugins", "-c", str(missing)])

    out, err = capsys.readouterr()
    assert status == EX_OK
    assert f"no configuration file at {missing}" in err
    builtin_types = build_registry([], load_entry_points=False).check_types
    for name in builtin_types:
        assert any(line.split()[:2] == [name, "built-in"] for line in out.splitlines())


def test_plugins_with_an_invalid_config_file_exits_78(tmp_path, capsys):
    config = tmp_path / "notifier.toml"
    config.write_text("[notifier\n")

    status = main(["plugins", "-c", str(config)])

    assert status == EX_CONFIG
    assert "invalid TOML" in capsys.readouterr().err


def test_plugins_verbose_prints_each_option_from_its_declaration(tmp_path, capsys):
    folder = make_plugin_dir(tmp_path, "exists_check.py")
    config = write_config(tmp_path, [folder])

    status = main(["plugins", "--verbose", "-c", str(config)])

    out = capsys.readouterr().out
    assert status == EX_OK
    block = out.split("\nfixture_exists (", 1)[1].split("\n\n", 1)[0]
    lines = block.splitlines()
    assert lines[0] == f"{folder / 'exists_check.py'})"
    assert "  path: an absolute path; required" in lines
    assert (
        "  max_age: a duration such as '30s' or '5m'; default \"1h\"; at least 1m"
        in lines
    )
    assert "  want: one of 'any', 'file', 'folder'; default \"any\"" in lines
    assert (
        "  max_size: a size such as '512KiB' or '10MB'; default not set; at most 1GiB"
        in lines
    )
    assert "      Oldest modification time still fine." in lines


def test_plugins_verbose_prints_the_common_options_once(tmp_path, capsys):
    folder = make_plugin_dir(tmp_path, "exists_check.py", "other_check.py")
    config = write_config(tmp_path, [folder])

    main(["plugins", "-v", "-c", str(config)])

    out = capsys.readouterr().out
    assert out.count("options every check has") == 1
    common = out.split("options every check has", 1)[1].split("\n\n", 1)[0]
    for option in COMMON_OPTIONS:
        assert f"\n  {option.name}: {option.describe_kind()}" in common
        assert f"\n      {option.help}\n" in common + "\n"
        assert out.count(f"\n  {option.name}: ") == 1


def test_plugins_verbose_lists_each_plugin_with_its_hooks(tmp_path, capsys):
    folder = make_plugin_dir(tmp_path, "other_check.py")
    config = write_config(tmp_path, [folder])

    main(["plugins", "-v", "-c", str(config)])

    plugins = capsys.readouterr().out.split("\nplugins:\n", 1)[1].splitlines()
    assert plugins[0].split() == ["NAME", "ORIGIN", "HOOKS"]
    rows = {line.split()[0]: line.split() for line in plugins[1:]}
    assert rows["other_check"][1:] == [
        str(folder / "other_check.py"),
        "notifier_check_types",
    ]
    for module_name in BUILTIN_CHECK_MODULES:
        assert rows[module_name][1] == "built-in"


def test_plugins_says_which_plugins_were_disabled(tmp_path, capsys, monkeypatch):
    folder = make_plugin_dir(tmp_path, "other_check.py", "exists_check.py")
    config = write_config(tmp_path, [folder])
    monkeypatch.setenv(DISABLE_ENV, "exists_check")

    main(["plugins", "-c", str(config)])

    out, err = capsys.readouterr()
    assert "fixture_exists" not in out
    assert "fixture_other" in out
    assert f"disabled by ${DISABLE_ENV}: exists_check" in err


@pytest.mark.slow
def test_plugins_prints_each_failure_once_and_warns_of_unknown_disabled_names(
    tmp_path,
):
    folder = make_plugin_dir(tmp_path, "raises_at_import.py", "other_check.py")
    config = write_config(tmp_path, [folder])

    done = run_notifier("plugins", "-c", str(config), **{DISABLE_ENV: "nothing"})

    assert done.returncode == EX_OK, done.stderr
    broken = str(folder / "raises_at_import.py")
    assert [line for line in done.stderr.splitlines() if broken in line] == [
        f"notifier: plugin {broken}: failed to import: RuntimeError: plugin "
        f"exploded on purpose (at {broken}:6); skipped, the other plugins still load"
    ]
    assert f"notifier: ${DISABLE_ENV} names 'nothing', which is no plugin" in (
        done.stderr
    )


def test_plugins_lists_the_delivery_transports_with_their_origin(tmp_path, capsys):
    status = main(["plugins", "-c", str(tmp_path / "absent.toml")])

    out, _ = capsys.readouterr()
    assert status == EX_OK
    rows = [line.split()[:2] for line in out.split("TRANSPORT", 1)[1].splitlines()]
    assert ["smtp", "built-in"] in rows
    assert ["file", "built-in"] in rows


# What plugins print while they load never reaches a command's own output.


@pytest.mark.slow
def test_check_json_stays_clean_when_a_plugin_prints_while_loading(tmp_path):
    folder = make_plugin_dir(tmp_path, "noisy_loading.py")
    config = write_config(
        tmp_path, [folder], '[[check]]\nname = "n"\ntype = "fixture_noisy"\n'
    )

    done = run_notifier("check", "--json", "-c", str(config))

    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert result["summary"] == "quiet when it runs"
    assert "NOISE" not in done.stdout
    for noise in ("NOISE at import", "NOISE at import, on fd 1", "NOISE in the hook"):
        assert noise in done.stderr.splitlines()


@pytest.mark.slow
def test_config_show_stays_valid_toml_when_a_plugin_prints_while_loading(tmp_path):
    folder = make_plugin_dir(tmp_path, "noisy_loading.py")
    config = write_config(
        tmp_path, [folder], '[[check]]\nname = "n"\ntype = "fixture_noisy"\n'
    )

    done = run_notifier("config", "show", "-c", str(config))

    assert done.returncode == 0, done.stderr
    (entry,) = tomllib.loads(done.stdout)["check"]
    assert (entry["name"], entry["type"]) == ("n", "fixture_noisy")
    assert "NOISE in the hook" in done.stderr
    assert "NOISE at import" in done.stderr


@pytest.mark.slow
def test_plugins_listing_stays_clean_when_a_plugin_prints_while_loading(tmp_path):
    folder = make_plugin_dir(tmp_path, "noisy_loading.py")
    config = write_config(tmp_path, [folder])

    done = run_notifier("plugins", "-c", str(config))

    assert done.returncode == 0, done.stderr
    assert "NOISE" not in done.stdout
    assert done.stdout.splitlines()[0].split() == ["TYPE", "ORIGIN", "SUMMARY"]
    assert any(line.startswith("fixture_noisy ") for line in done.stdout.splitlines())
    assert "NOISE in the hook" in done.stderr


# A plugin that hangs is given up on; the command goes on without it.


def test_check_goes_on_without_a_plugin_that_hangs_at_import(
    tmp_path, capfd, monkeypatch
):
    # The real limit is 10s; a small one keeps the test fast.
    monkeypatch.setattr(plugins, "PLUGIN_TIME_LIMIT", 0.3)
    folder = make_plugin_dir(tmp_path, "hangs_at_import.py", "other_check.py")
    config = write_config(
        tmp_path, [folder], '[[check]]\nname = "o"\ntype = "fixture_other"\n'
    )

    status = main(["check", "-c", str(config)])

    out, err = capfd.readouterr()
    assert status == 0, err
    assert out.splitlines()[1].split()[:2] == ["o", "OK"]
    assert err.splitlines() == [
        f"notifier: plugin {folder / 'hangs_at_import.py'}: took longer than 300ms "
        "to import; it was given up on; skipped, the other plugins still load"
    ]


def test_config_check_fails_78_naming_a_plugin_that_hangs_in_its_hook(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(plugins, "PLUGIN_TIME_LIMIT", 0.3)
    folder = make_plugin_dir(tmp_path, "hangs_in_hook.py")
    config = write_config(tmp_path, [folder])

    status = main(["config", "check", "-c", str(config)])

    err = capsys.readouterr().err
    assert status == EX_CONFIG
    assert (
        f"notifier: plugin {folder / 'hangs_in_hook.py'}: hook notifier_check_types "
        "took longer than 300ms to return"
    ) in err


# Plugin failures: reported once, in the command's voice, and never "OK".


@pytest.mark.slow
def test_config_check_fails_78_when_a_dropin_failed_to_import(tmp_path):
    folder = make_plugin_dir(tmp_path, "raises_at_import.py", "exists_check.py")
    config = write_config(tmp_path, [folder], USES_EXISTS)

    done = run_notifier("config", "check", "-c", str(config))

    assert done.returncode == EX_CONFIG
    assert "OK" not in done.stdout
    broken = folder / "raises_at_import.py"
    assert done.stderr.splitlines() == [
        f"notifier: plugin {broken}: failed to import: RuntimeError: plugin exploded "
        f"on purpose (at {broken}:6); skipped, the other plugins still load",
        f"notifier: {config}: 1 plugin failed to load (reported above), so the check "
        "types it provides are missing; fix or remove it, or name it in "
        f"${DISABLE_ENV}",
    ]


@pytest.mark.slow
def test_check_reports_each_plugin_failure_once(tmp_path):
    folder = make_plugin_dir(tmp_path, "raises_at_import.py", "exists_check.py")
    config = write_config(tmp_path, [folder], USES_EXISTS)

    done = run_notifier("check", "-c", str(config))

    assert done.returncode == 0, done.stderr
    broken = str(folder / "raises_at_import.py")
    failures = [line for line in done.stderr.splitlines() if broken in line]
    assert len(failures) == 1
    assert failures[0].startswith(f"notifier: plugin {broken}: failed to import: ")


@pytest.mark.slow
def test_unknown_type_names_the_dropin_of_that_name_that_failed(tmp_path):
    folder = make_plugin_dir(tmp_path)
    good = folder / "good.py"
    good.write_text("raise ImportError('needs a module that is not installed')\n")
    good.chmod(0o644)
    config = write_config(tmp_path, [folder], '[[check]]\nname = "g"\ntype = "good"\n')

    done = run_notifier("config", "check", "-c", str(config))

    assert done.returncode == EX_CONFIG
    (unknown,) = [line for line in done.stderr.splitlines() if "'good'" in line]
    assert unknown.startswith(
        f"notifier: {config}: [[check]] \"g\" type: 'good' is not a known check type "
        f"(it may come from a plugin that failed to load: plugin {good} failed: "
        "failed to import: ImportError: needs a module that is not installed"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fixture", "declared"),
    [
        ("bad_option_kind.py", "whose option 'x' has kind 'bogus', which is not"),
        ("duplicate_option.py", "declaring option 'x' twice"),
        ("wrong_default.py", "whose option 'every_so_often' has the default '5m'"),
    ],
)
def test_a_broken_option_declaration_fails_its_plugin_not_the_command(
    tmp_path, fixture, declared
):
    folder = make_plugin_dir(tmp_path, fixture, "other_check.py")
    config = write_config(tmp_path, [folder])

    verbose = run_notifier("plugins", "--verbose", "-c", str(config))
    checked = run_notifier("config", "check", "-c", str(config))

    assert verbose.returncode == EX_OK, verbose.stderr
    assert "fixture_other (" in verbose.stdout
    assert checked.returncode == EX_CONFIG
    for done in (verbose, checked):
        assert "internal error" not in done.stderr
        assert "Traceback" not in done.stderr
        assert (
            f"notifier: plugin {folder / fixture}: hook notifier_check_types "
            "returned check type "
        ) in done.stderr
        assert declared in done.stderr


def test_plugins_says_why_a_relative_plugin_folder_is_not_searched(
    tmp_path, capsys, monkeypatch
):
    # A folder that would load, were relative paths taken from the cwd.
    make_plugin_dir(tmp_path, "other_check.py")
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "notifier.toml"
    config.write_text('[notifier]\nplugin_dirs = ["plugins"]\n')

    status = main(["plugins", "-c", str(config)])

    out, err = capsys.readouterr()
    assert status == EX_OK
    assert "fixture_other" not in out
    assert err.splitlines() == [
        f"notifier: {config}: [notifier] plugin_dirs: 'plugins' is not an absolute "
        f"path (write an absolute path, such as /var/log/syslog); drop-in plugin "
        "folders are not searched"
    ]
