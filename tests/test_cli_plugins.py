"""``notifier plugins`` and how plugin folders reach ``notifier config check``,
run as a user would: mostly as a real ``python -m notifier`` subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert "'fixture_exists' is not a known check type" in done.stderr
    # The refusal itself reaches the user too, so they know why.
    assert f"{folder}: plugin folder is writable by group and others" in done.stderr
    assert "Traceback" not in done.stderr


def test_plugins_reports_failures_on_stderr_and_still_lists_the_rest(tmp_path, capsys):
    folder = make_plugin_dir(tmp_path, "raises_at_import.py", "other_check.py")
    config = write_config(tmp_path, [folder])

    status = main(["plugins", "-c", str(config)])

    out, err = capsys.readouterr()
    assert status == EX_OK
    assert "fixture_other" in out
    failed = err.split("failed to load:\n", 1)[1].splitlines()
    assert len(failed) == 1
    assert failed[0].startswith(f"  plugin {folder / 'raises_at_import.py'}: ")
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
    assert "  path: a path; required" in lines
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
        f"  plugin {broken}: failed to import: RuntimeError: plugin exploded on "
        f"purpose (at {broken}:6)"
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
