"""The plugin manager: built-ins, real entry points, drop-in folders and their
safety checks, failures that leave the other plugins loaded."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier import CheckContext, Status, plugins
from notifier.checks import BUILTIN_CHECK_MODULES
from notifier.dropin import DROPIN_MODULE_PREFIX
from notifier.errors import EX_CONFIG, PluginError
from notifier.plugins import (
    BUILTIN_ORIGIN,
    DISABLE_ENV,
    TRACE_ENV,
    build_registry,
)

FIXTURES = Path(__file__).parent / "fixtures" / "plugins"
OTHER_UID = 12345

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root can give a file to another user"
)


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    monkeypatch.delenv(TRACE_ENV, raising=False)


def make_plugin_dir(parent: Path, *fixtures: str, name: str = "plugins") -> Path:
    """Return a folder of copies of the named fixture plugins, with the
    permissions a careful sysadmin would give them."""
    folder = parent / name
    folder.mkdir()
    folder.chmod(0o755)
    for fixture in fixtures:
        shutil.copyfile(FIXTURES / fixture, folder / fixture)
        (folder / fixture).chmod(0o644)
    return folder


@pytest.fixture
def install_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Install a distribution the way pip lays it out (module plus
    ``.dist-info``) into a folder on ``sys.path``, so that its entry points
    are found for real."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def install(dist: str, module: str, source: str) -> Path:
        (site / f"{module}.py").write_text(source)
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text(f"[notifier]\n{module} = {module}\n")
        modules.append(module)
        return site

    yield install
    for module in modules:
        sys.modules.pop(module, None)


def context(tmp_path: Path, **options: object) -> CheckContext:
    return CheckContext("probe", options, tmp_path, "host.example", 5.0)


def failure_for(registry, origin: object) -> str:
    messages = [str(f) for f in registry.failures if f.origin == str(origin)]
    assert len(messages) == 1, [str(f) for f in registry.failures]
    return messages[0]


# Drop-in folders


def test_safe_dropin_folder_provides_a_check_type_that_runs(tmp_path):
    folder = make_plugin_dir(tmp_path, "exists_check.py")

    registry = build_registry([folder], load_entry_points=False)

    info = registry.check_types["fixture_exists"]
    assert info.origin == str(folder / "exists_check.py")
    assert registry.failures == ()
    check = info.check_type.create(context(tmp_path, path=tmp_path))
    assert check.run().status is Status.OK
    check = info.check_type.create(context(tmp_path, path=tmp_path / "gone"))
    assert check.run().status is Status.CRITICAL


def test_registry_records_each_plugin_with_origin_and_hooks(tmp_path):
    folder = make_plugin_dir(tmp_path, "exists_check.py", "other_check.py")

    registry = build_registry([folder], load_entry_points=False)

    dropins = {p.name: p for p in registry.plugins if p.source == "drop-in"}
    assert set(dropins) == {"exists_check", "other_check"}
    assert dropins["other_check"].origin == str(folder / "other_check.py")
    assert dropins["other_check"].hooks == ("notifier_check_types",)
    assert registry.manager.get_plugin("other_check") is not None


def test_dropin_does_not_touch_sys_path_or_leave_bytecode_in_its_folder(tmp_path):
    folder = make_plugin_dir(tmp_path, "exists_check.py")
    path_before = list(sys.path)

    registry = build_registry([folder], load_entry_points=False)

    assert sys.path == path_before
    assert sorted(p.name for p in folder.iterdir()) == ["exists_check.py"]
    module = registry.manager.get_plugin("exists_check")
    assert module.__name__.startswith(DROPIN_MODULE_PREFIX)
    assert "exists_check" not in sys.modules


def test_dropins_load_in_sorted_order_across_folders(tmp_path):
    first = make_plugin_dir(tmp_path, "other_check.py", name="b-first")
    second = make_plugin_dir(tmp_path, "exists_check.py", name="a-second")

    registry = build_registry([first, second], load_entry_points=False)

    names = [p.name for p in registry.plugins if p.source == "drop-in"]
    assert names == ["other_check", "exists_check"]


def test_each_build_has_its_own_manager_and_sees_new_plugins(tmp_path):
    folder = make_plugin_dir(tmp_path, "exists_check.py")
    before = build_registry([folder], load_entry_points=False)
    shutil.copyfile(FIXTURES / "other_check.py", folder / "other_check.py")
    (folder / "other_check.py").chmod(0o644)

    after = build_registry([folder], load_entry_points=False)

    assert after.manager is not before.manager
    assert "fixture_other" not in before.check_types
    assert "fixture_other" in after.check_types


# Refusing unsafe drop-ins


def test_folder_writable_by_others_is_refused_naming_path_mode_and_fix(tmp_path):
    folder = make_plugin_dir(tmp_path, "exists_check.py")
    folder.chmod(0o777)

    registry = build_registry([folder], load_entry_points=False)

    message = failure_for(registry, folder)
    assert "writable by group and others (mode 0o777)" in message
    assert f"chmod go-w {folder}" in message
    assert "fixture_exists" not in registry.check_types


def test_file_writable_by_group_is_refused_and_its_neighbour_loads(tmp_path):
    folder = make_plugin_dir(tmp_path, "exists_check.py", "other_check.py")
    (folder / "exists_check.py").chmod(0o664)

    registry = build_registry([folder], load_entry_points=False)

    message = failure_for(registry, folder / "exists_check.py")
    assert "writable by group (mode 0o664)" in message
    assert "fixture_exists" not in registry.check_types
    assert "fixture_other" in registry.check_types


@needs_root
def test_file_owned_by_another_user_is_refused(tmp_path):
    folder = make_plugin_dir(tmp_path, "exists_check.py")
    os.chown(folder / "exists_check.py", OTHER_UID, -1)

    registry = build_registry([folder], daemon_uid=0, load_entry_points=False)

    message = failure_for(registry, folder / "exists_check.py")
    assert f"owned by uid {OTHER_UID}" in message
    assert "not root or the daemon's user" in message
    assert "fixture_exists" not in registry.check_types


@needs_root
def test_file_owned_by_the_daemon_user_is_accepted(tmp_path):
    folder = make_plugin_dir(tmp_path, "exists_check.py")
    os.chown(folder / "exists_check.py", OTHER_UID, -1)

    registry = build_registry([folder], daemon_uid=OTHER_UID, load_entry_points=False)

    assert registry.failures == ()
    assert "fixture_exists" in registry.check_types


@needs_root
def test_folder_owned_by_another_user_is_refused(tmp_path):
    folder = make_plugin_dir(tmp_path, "exists_check.py")
    os.chown(folder, OTHER_UID, -1)

    registry = build_registry([folder], daemon_uid=0, load_entry_points=False)

    assert f"owned by uid {OTHER_UID}" in failure_for(registry, folder)
    assert "fixture_exists" not in registry.check_types


def test_symlink_to_a_file_writable_by_others_is_refused(tmp_path):
    elsewhere = make_plugin_dir(tmp_path, "exists_check.py", name="elsewhere")
    target = elsewhere / "exists_check.py"
    target.chmod(0o666)
    folder = make_plugin_dir(tmp_path)
    (folder / "exists_check.py").symlink_to(target)

    registry = build_registry([folder], load_entry_points=False)

    message = failure_for(registry, folder / "exists_check.py")
    assert (
        f"links to {target}, which is writable by group and others (mode 0o666)"
        in message
    )
    assert "fixture_exists" not in registry.check_types


def test_symlink_to_a_safe_file_loads(tmp_path):
    elsewhere = make_plugin_dir(tmp_path, "exists_check.py", name="elsewhere")
    folder = make_plugin_dir(tmp_path)
    (folder / "exists_check.py").symlink_to(elsewhere / "exists_check.py")

    registry = build_registry([folder], load_entry_points=False)

    assert registry.failures == ()
    assert registry.check_types["fixture_exists"].origin == str(
        folder / "exists_check.py"
    )


def test_missing_folder_is_reported(tmp_path):
    missing = tmp_path / "no-such-folder"

    registry = build_registry([missing], load_entry_points=False)

    assert "plugin folder does not exist" in failure_for(registry, missing)


# Plugins that break


def test_plugin_raising_at_import_is_reported_and_the_others_still_load(tmp_path):
    folder = make_plugin_dir(
        tmp_path, "raises_at_import.py", "exists_check.py", "other_check.py"
    )

    registry = build_registry([folder], load_entry_points=False)

    path = folder / "raises_at_import.py"
    message = failure_for(registry, path)
    assert "failed to import: RuntimeError: plugin exploded on purpose" in message
    assert f"at {path}:6" in message
    assert {"fixture_exists", "fixture_other"} <= set(registry.check_types)


def test_plugin_with_a_syntax_error_is_reported_with_its_line(tmp_path):
    folder = make_plugin_dir(tmp_path, "other_check.py")
    broken = folder / "broken.py"
    broken.write_text("from notifier import hookimpl\n\ndef oops(:\n    pass\n")
    broken.chmod(0o644)

    registry = build_registry([folder], load_entry_points=False)

    message = failure_for(registry, broken)
    assert "SyntaxError" in message
    assert f"{broken}:3" in message
    assert "fixture_other" in registry.check_types


def test_failures_are_logged_at_error_one_line_each(tmp_path, caplog):
    folder = make_plugin_dir(tmp_path, "raises_at_import.py", "returns_dict.py")

    with caplog.at_level(logging.ERROR, logger="notifier.plugins"):
        registry = build_registry([folder], load_entry_points=False)

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == len(registry.failures) == 2
    for record in errors:
        assert "\n" not in record.getMessage()
    assert str(folder / "returns_dict.py") in errors[1].getMessage()


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "returns_dict.py",
            "hook notifier_check_types returned dict, expected a list of "
            "notifier.CheckType",
        ),
        (
            "returns_strings.py",
            "hook notifier_check_types returned a list holding str at index 0",
        ),
        (
            "hook_raises.py",
            "hook notifier_check_types raised ValueError: hook exploded on purpose",
        ),
        (
            "clashing_option.py",
            "returned check type 'fixture_clash' declaring 'timeout', which every "
            "check already has; rename the option",
        ),
        (
            "bad_option_kind.py",
            "hook notifier_check_types returned check type 'fixture_bad_kind' whose "
            "option 'x' has kind 'bogus', which is not a kind",
        ),
        (
            "duplicate_option.py",
            "hook notifier_check_types returned check type 'fixture_twice' declaring "
            "option 'x' twice",
        ),
        (
            "wrong_default.py",
            "hook notifier_check_types returned check type 'fixture_wrong_default' "
            "whose option 'every_so_often' has the default '5m', which is not a "
            "number of seconds as kind 'duration' needs",
        ),
    ],
)
def test_hook_breaking_the_contract_is_a_failure_naming_plugin_and_hook(
    tmp_path, fixture, expected
):
    folder = make_plugin_dir(tmp_path, fixture, "other_check.py")

    registry = build_registry([folder], load_entry_points=False)

    assert expected in failure_for(registry, folder / fixture)
    assert Path(fixture).stem not in {p.name for p in registry.plugins}
    assert set(registry.check_types) >= {"fixture_other"}
    assert registry.manager.get_plugin(Path(fixture).stem) is None


def test_misspelt_hook_is_reported_with_the_right_name(tmp_path):
    folder = make_plugin_dir(tmp_path, "misspelt_hook.py", "other_check.py")

    registry = build_registry([folder], load_entry_points=False)

    message = failure_for(registry, folder / "misspelt_hook.py")
    assert "unknown hook 'notifier_check_type'" in message
    assert "did you mean 'notifier_check_types'?" in message
    assert "fixture_other" in registry.check_types


def test_hook_function_without_hookimpl_is_reported(tmp_path):
    folder = make_plugin_dir(tmp_path, "unmarked_hook.py")

    registry = build_registry([folder], load_entry_points=False)

    message = failure_for(registry, folder / "unmarked_hook.py")
    assert "notifier_check_types is not marked as a hook" in message
    assert "@hookimpl" in message
    assert "fixture_unmarked" not in registry.check_types


def test_two_dropins_claiming_one_type_is_an_error_naming_both(tmp_path):
    first = make_plugin_dir(tmp_path, "exists_check.py", name="one")
    second = make_plugin_dir(tmp_path, "duplicate_exists.py", name="two")

    with pytest.raises(PluginError) as raised:
        build_registry([first, second], load_entry_points=False)

    message = str(raised.value)
    assert "'fixture_exists'" in message
    assert str(first / "exists_check.py") in message
    assert str(second / "duplicate_exists.py") in message
    assert raised.value.exit_code == EX_CONFIG


def test_two_dropins_with_one_file_name_keep_the_first(tmp_path):
    first = make_plugin_dir(tmp_path, "exists_check.py", name="one")
    second = make_plugin_dir(tmp_path, "exists_check.py", name="two")

    registry = build_registry([first, second], load_entry_points=False)

    message = failure_for(registry, second / "exists_check.py")
    assert f"already taken by {first / 'exists_check.py'}" in message
    assert registry.check_types["fixture_exists"].origin == str(
        first / "exists_check.py"
    )


# Entry points


def test_installed_plugin_is_found_through_its_entry_point(tmp_path, install_dist):
    source = (FIXTURES / "entry_point_plugin.py").read_text()
    install_dist("notifier-fixture-plugin", "notifier_fixture_ep", source)

    registry = build_registry([])

    assert registry.check_types["fixture_ep"].origin == "notifier-fixture-plugin 1.0"
    plugin = next(p for p in registry.plugins if p.name == "notifier_fixture_ep")
    assert plugin.source == "entry point"
    check = registry.check_types["fixture_ep"].check_type.create(context(tmp_path))
    assert check.run().summary == "installed plugin ran"


def test_installed_plugin_failing_to_import_names_its_distribution(install_dist):
    install_dist("notifier-broken", "notifier_broken_ep", "import no_such_module\n")

    registry = build_registry([])

    message = failure_for(registry, "notifier-broken 1.0")
    assert "entry point 'notifier_broken_ep'" in message
    assert "ModuleNotFoundError: No module named 'no_such_module'" in message


def test_entry_points_can_be_left_out(install_dist):
    source = (FIXTURES / "entry_point_plugin.py").read_text()
    install_dist("notifier-fixture-plugin", "notifier_fixture_ep", source)

    registry = build_registry([], load_entry_points=False)

    assert "fixture_ep" not in registry.check_types


def test_entry_point_and_dropin_claiming_one_type_name_both(tmp_path, install_dist):
    source = (FIXTURES / "entry_point_plugin.py").read_text()
    install_dist("notifier-fixture-plugin", "notifier_fixture_ep", source)
    folder = make_plugin_dir(tmp_path)
    clash = folder / "clash.py"
    clash.write_text(source)
    clash.chmod(0o644)

    with pytest.raises(PluginError) as raised:
        build_registry([folder])

    assert "notifier-fixture-plugin 1.0" in str(raised.value)
    assert str(clash) in str(raised.value)


# Built-ins


def test_every_builtin_module_registers_with_builtin_origin():
    registry = build_registry([], load_entry_points=False)

    builtins = {p.name: p for p in registry.plugins if p.source == "built-in"}
    # Other built-in modules (transports) may register too; every check must.
    assert set(BUILTIN_CHECK_MODULES) <= set(builtins)
    assert all(p.origin == BUILTIN_ORIGIN for p in builtins.values())
    assert registry.failures == ()
    for name in BUILTIN_CHECK_MODULES:
        assert "notifier_check_types" in builtins[name].hooks
        module = registry.manager.get_plugin(name)
        for check_type in module.notifier_check_types():
            assert registry.check_types[check_type.name].origin == BUILTIN_ORIGIN


# Environment variables


def test_disable_list_blocks_dropins_without_running_them(tmp_path, monkeypatch):
    folder = make_plugin_dir(
        tmp_path, "raises_at_import.py", "exists_check.py", "other_check.py"
    )
    monkeypatch.setenv(DISABLE_ENV, " raises_at_import, exists_check ")

    registry = build_registry([folder], load_entry_points=False)

    assert registry.failures == ()
    assert set(registry.disabled) == {"raises_at_import", "exists_check"}
    assert "fixture_exists" not in registry.check_types
    assert "fixture_other" in registry.check_types
    assert registry.manager.is_blocked("exists_check")


def test_disable_list_blocks_an_entry_point(monkeypatch, install_dist):
    source = (FIXTURES / "entry_point_plugin.py").read_text()
    install_dist("notifier-fixture-plugin", "notifier_fixture_ep", source)
    monkeypatch.setenv(DISABLE_ENV, "notifier_fixture_ep")

    registry = build_registry([])

    assert "fixture_ep" not in registry.check_types
    assert registry.disabled == ("notifier_fixture_ep",)


@pytest.mark.skipif(not BUILTIN_CHECK_MODULES, reason="no built-in checks yet")
def test_disable_list_blocks_a_builtin(monkeypatch):
    module_name = BUILTIN_CHECK_MODULES[0]
    monkeypatch.setenv(DISABLE_ENV, module_name)

    registry = build_registry([], load_entry_points=False)

    assert module_name not in {p.name for p in registry.plugins}
    assert registry.disabled == (module_name,)


def test_disable_list_naming_no_plugin_is_warned(monkeypatch, caplog):
    monkeypatch.setenv(DISABLE_ENV, "no_such_plugin")

    with caplog.at_level(logging.WARNING, logger="notifier.plugins"):
        build_registry([], load_entry_points=False)

    assert "'no_such_plugin', which is no plugin" in caplog.text


def test_trace_variable_logs_hook_calls_at_debug(tmp_path, monkeypatch, caplog):
    folder = make_plugin_dir(tmp_path, "other_check.py")
    monkeypatch.setenv(TRACE_ENV, "1")

    with caplog.at_level(logging.DEBUG, logger="notifier.plugins"):
        build_registry([folder], load_entry_points=False)

    traced = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("trace:")
    ]
    assert any("notifier_check_types" in line for line in traced)
    assert any("fixture_other" in line for line in traced)
    assert all(r.levelno == logging.DEBUG for r in caplog.records if "trace:" in r.msg)


def test_no_trace_without_the_variable(tmp_path, caplog):
    folder = make_plugin_dir(tmp_path, "other_check.py")

    with caplog.at_level(logging.DEBUG, logger="notifier.plugins"):
        build_registry([folder], load_entry_points=False)

    assert "trace:" not in caplog.text


# Plugins that hang: given up on after a time limit the test makes small.

SHORT_LIMIT = 0.3


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("hangs_at_import.py", "took longer than 300ms to import; it was given up on"),
        (
            "hangs_in_hook.py",
            "hook notifier_check_types took longer than 300ms to return; it was "
            "given up on",
        ),
    ],
)
def test_plugin_that_hangs_is_a_failure_and_the_others_load(
    tmp_path, fixture, expected
):
    folder = make_plugin_dir(tmp_path, fixture, "other_check.py")

    registry = build_registry([folder], load_entry_points=False, time_limit=SHORT_LIMIT)

    assert failure_for(registry, folder / fixture) == (
        f"plugin {folder / fixture}: {expected}"
    )
    assert "fixture_other" in registry.check_types
    assert "disk" in registry.check_types
    assert Path(fixture).stem not in {p.name for p in registry.plugins}


def test_installed_plugin_that_hangs_at_import_names_its_distribution(install_dist):
    install_dist(
        "slow-plugin", "fixture_slow_module", "import time\ntime.sleep(3600)\n"
    )

    registry = build_registry([], time_limit=SHORT_LIMIT)

    assert failure_for(registry, "slow-plugin 1.0") == (
        "plugin slow-plugin 1.0: entry point 'fixture_slow_module' "
        "(fixture_slow_module) took longer than 300ms to import; it was given up on"
    )
    assert "disk" in registry.check_types


def test_the_time_limit_is_the_module_constant_unless_given(tmp_path, monkeypatch):
    folder = make_plugin_dir(tmp_path, "hangs_in_hook.py")
    monkeypatch.setattr(plugins, "PLUGIN_TIME_LIMIT", SHORT_LIMIT)

    registry = build_registry([folder], load_entry_points=False)

    assert "took longer than 300ms" in failure_for(
        registry, folder / "hangs_in_hook.py"
    )


# Saying why a check type is unknown


def test_unknown_type_named_like_a_failed_dropin_names_that_plugin(tmp_path):
    folder = make_plugin_dir(tmp_path, "raises_at_import.py", "hook_raises.py")

    registry = build_registry([folder], load_entry_points=False)

    hint = registry.missing_type_hint("raises_at_import")
    assert hint is not None
    assert hint.startswith(
        f"it may come from a plugin that failed to load: plugin "
        f"{folder / 'raises_at_import.py'} failed: failed to import: RuntimeError"
    )
    assert "hook_raises" not in hint


def test_unknown_type_names_every_failure_when_none_matches_by_name(tmp_path):
    folder = make_plugin_dir(tmp_path, "raises_at_import.py")
    refused = make_plugin_dir(tmp_path, "other_check.py", name="open")
    refused.chmod(0o777)

    registry = build_registry([folder, refused], load_entry_points=False)

    hint = registry.missing_type_hint("fixture_other")
    assert hint is not None
    assert f"plugin {folder / 'raises_at_import.py'} failed: " in hint
    assert (
        f"plugin folder {refused} was refused because it is writable by group and "
        f"others (mode 0o777); run chmod go-w {refused}"
    ) in hint


def test_no_hint_about_plugins_when_none_failed(tmp_path):
    folder = make_plugin_dir(tmp_path, "other_check.py")

    registry = build_registry([folder], load_entry_points=False)

    assert registry.missing_type_hint("nosuch") is None


def test_plugin_folder_with_a_nul_character_is_a_failure_not_a_crash(tmp_path):
    odd = Path(f"{tmp_path}/a\0b")

    registry = build_registry([odd], load_entry_points=False)

    assert "NUL character" in failure_for(registry, odd)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("summary=3", "whose summary is a int, not a string"),
        ("validate='no'", "whose validate is neither None nor callable"),
        ("hints=['attach']", "whose hints are not a mapping of option names"),
        ("options=Option('x', 'int')", "whose options are a Option, not a tuple"),
    ],
)
def test_check_type_fields_of_the_wrong_kind_fail_their_plugin(
    tmp_path, field, expected
):
    folder = make_plugin_dir(tmp_path)
    plugin = folder / "odd_fields.py"
    plugin.write_text(
        "from notifier import CheckType, Option, hookimpl\n\n"
        "@hookimpl\n"
        "def notifier_check_types():\n"
        f"    return [CheckType('odd', lambda context: None, {field})]\n"
    )
    plugin.chmod(0o644)

    registry = build_registry([folder], load_entry_points=False)

    assert failure_for(registry, plugin).startswith(
        f"plugin {plugin}: hook notifier_check_types returned check type 'odd' "
        + expected
    )
    assert "odd" not in registry.check_types


TRANSPORT_PLUGIN = '''
"""Test drop-in: a transport named {name!r}{broken}."""
from __future__ import annotations

from notifier import CheckType, Result, Status, TransportType, hookimpl


class _Fine:
    def run(self):
        return Result(Status.OK, "fine")


@hookimpl
def notifier_check_types():
    return [CheckType("{check}", lambda context: _Fine())]


@hookimpl
def notifier_transports():
    {body}
'''


def transport_plugin(folder: Path, stem: str, name: str, *, broken: bool = False):
    body = (
        'raise RuntimeError("transport hook exploded")'
        if broken
        else f'return [TransportType("{name}", lambda config: None)]'
    )
    path = folder / f"{stem}.py"
    path.write_text(
        TRANSPORT_PLUGIN.format(
            name=name,
            broken=", broken" if broken else "",
            check=f"{stem}_check",
            body=body,
        )
    )
    path.chmod(0o644)
    return path


def test_two_plugins_providing_one_transport_name_is_an_error_naming_both(tmp_path):
    folder = make_plugin_dir(tmp_path)
    first = transport_plugin(folder, "pager_a", "pager")
    second = transport_plugin(folder, "pager_b", "pager")

    with pytest.raises(PluginError) as caught:
        build_registry([folder], load_entry_points=False)

    message = str(caught.value)
    assert "transport 'pager' is also provided by" in message
    assert str(first) in message
    assert str(second) in message


def test_a_failing_transport_hook_is_named_and_the_plugin_s_checks_still_load(
    tmp_path,
):
    folder = make_plugin_dir(tmp_path)
    broken = transport_plugin(folder, "flaky", "flaky", broken=True)

    registry = build_registry([folder], load_entry_points=False)

    assert "hook notifier_transports raised RuntimeError: transport hook exploded" in (
        failure_for(registry, broken)
    )
    assert "flaky_check" in registry.check_types
    assert "flaky" not in registry.transports
