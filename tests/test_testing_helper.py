"""notifier.testing: the helper plugin authors use in their own pytest tests."""

from __future__ import annotations

import textwrap

import pytest

from notifier import CheckContext, CheckType, Option, Result, Status
from notifier.checks import logscan
from notifier.config import build_config
from notifier.errors import ConfigError, PluginError
from notifier.testing import (
    check_type_from,
    load_plugin_file,
    make_check,
    run_check_type,
)

PLUGIN = """\
from __future__ import annotations

from notifier import CheckType, Option, Result, Status, hookimpl


class Echo:
    def __init__(self, context):
        self.context = context

    def run(self):
        counter = self.context.state_dir / "runs"
        runs = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(runs))
        word = self.context.options["word"]
        return Result(Status[self.context.options["status"]], f"{word} #{runs}")


OPTIONS = (
    Option("word", "str", required=True),
    Option("status", "choice", "OK", choices=("OK", "WARNING", "CRITICAL")),
    Option("limit", "duration", 30.0, minimum=1),
)


@hookimpl
def notifier_check_types():
    return [CheckType("echo", Echo, OPTIONS)]
"""


def write_plugin(tmp_path, text=PLUGIN, name="echo_plugin.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_runs_a_plugin_file_with_defaults_filled_in(tmp_path):
    result = run_check_type(write_plugin(tmp_path), {"word": "hi"}, tmp_path=tmp_path)

    assert result == Result(Status.OK, "hi #1")


def test_runs_a_plugin_module_and_a_check_type_alike(tmp_path):
    module = load_plugin_file(write_plugin(tmp_path))
    check_type = check_type_from(module)

    from_module = run_check_type(
        module, {"word": "a", "status": "CRITICAL"}, tmp_path=tmp_path, name="one"
    )
    from_type = run_check_type(
        check_type, {"word": "b", "status": "WARNING"}, tmp_path=tmp_path, name="two"
    )

    assert check_type.name == "echo"
    assert from_module == Result(Status.CRITICAL, "a #1")
    assert from_type == Result(Status.WARNING, "b #1")


def test_state_dir_is_private_to_the_name_and_kept_between_runs(tmp_path):
    plugin = write_plugin(tmp_path)
    harness = make_check(plugin, {"word": "x"}, tmp_path=tmp_path, name="kept")

    first, second = harness.run(), harness.run()
    again = run_check_type(plugin, {"word": "x"}, tmp_path=tmp_path, name="kept")
    other = run_check_type(plugin, {"word": "x"}, tmp_path=tmp_path, name="other")

    assert [r.summary for r in (first, second, again, other)] == [
        "x #1",
        "x #2",
        "x #3",
        "x #1",
    ]
    assert harness.context.state_dir == tmp_path / "state" / "kept"


def test_common_options_are_accepted_and_timeout_can_be_overridden(tmp_path):
    plugin = write_plugin(tmp_path)

    from_option = make_check(plugin, {"word": "x", "timeout": "2s"}, tmp_path=tmp_path)
    overridden = make_check(
        plugin, {"word": "x", "timeout": "2s"}, tmp_path=tmp_path, timeout=0.5
    )
    default = make_check(plugin, {"word": "x"}, tmp_path=tmp_path)

    assert from_option.context.timeout == 2.0
    assert overridden.context.timeout == 0.5
    assert default.context.timeout == 30.0
    assert "timeout" not in from_option.context.options
    assert from_option.context.hostname == "test-host"


def test_bad_options_fail_exactly_as_the_config_layer_reports_them(tmp_path):
    module = load_plugin_file(write_plugin(tmp_path))
    check_type = check_type_from(module)
    entry = {"wrod": "x", "status": "ok", "limit": "0s", "every": "soon"}

    with pytest.raises(ConfigError) as from_helper:
        run_check_type(module, entry, tmp_path=tmp_path)
    with pytest.raises(ConfigError) as from_config:
        build_config(
            {"check": [{"name": "test", "type": "echo", **entry}]},
            None,
            {"echo": check_type},
        )

    helper_lines = sorted(p.render() for p in from_helper.value.problems)
    config_lines = sorted(p.render() for p in from_config.value.problems)
    assert helper_lines == config_lines
    assert len(helper_lines) == 5  # wrod, word, status, limit, every


def test_plugin_with_several_types_needs_type_name(tmp_path):
    two_types = PLUGIN.replace(
        'return [CheckType("echo", Echo, OPTIONS)]',
        'return [CheckType("echo", Echo, OPTIONS), CheckType("echo2", Echo, OPTIONS)]',
    )
    plugin = write_plugin(tmp_path, two_types)

    with pytest.raises(PluginError) as caught:
        run_check_type(plugin, {"word": "x"}, tmp_path=tmp_path)
    picked = run_check_type(plugin, {"word": "y"}, tmp_path=tmp_path, type_name="echo2")

    assert "provides 2 check types (echo, echo2); pass type_name=" in str(caught.value)
    assert picked.summary == "y #1"


def test_asking_for_a_type_the_plugin_lacks_names_what_it_has(tmp_path):
    with pytest.raises(PluginError) as caught:
        check_type_from(write_plugin(tmp_path), "ehco")

    assert "provides no check type 'ehco' (it provides ['echo'])" in str(caught.value)


def test_misspelt_hook_is_a_plugin_error_naming_the_file(tmp_path):
    misspelt = PLUGIN.replace("def notifier_check_types", "def notifier_check_type")
    plugin = write_plugin(tmp_path, misspelt)

    with pytest.raises(PluginError) as caught:
        check_type_from(plugin)

    assert str(caught.value).startswith(f"plugin {plugin}: ")
    assert "notifier_check_type" in str(caught.value)


def test_hook_returning_something_else_than_a_list_is_a_plugin_error(tmp_path):
    plugin = write_plugin(
        tmp_path,
        PLUGIN.replace(
            'return [CheckType("echo", Echo, OPTIONS)]',
            'return CheckType("echo", Echo, OPTIONS)',
        ),
    )

    with pytest.raises(PluginError) as caught:
        check_type_from(plugin)

    assert "notifier_check_types returned CheckType, not a list" in str(caught.value)


def test_file_that_fails_to_import_is_a_plugin_error(tmp_path):
    plugin = write_plugin(tmp_path, "import not_a_module_anywhere\n")

    with pytest.raises(PluginError) as caught:
        load_plugin_file(plugin)

    assert str(caught.value) == (
        f"plugin {plugin}: failed to import: ModuleNotFoundError: "
        "No module named 'not_a_module_anywhere'"
    )


def test_run_goes_through_the_daemons_runner(tmp_path):
    class Broken:
        def __init__(self, context: CheckContext) -> None:
            pass

        def run(self) -> Result:
            raise OSError("no such device")

    broken = CheckType("broken", Broken, (Option("x", "int", 1),))

    result = run_check_type(broken, {}, tmp_path=tmp_path)

    assert result == Result(Status.UNKNOWN, "check raised OSError: no such device")


def test_option_clashing_with_a_common_option_is_a_plugin_error(tmp_path):
    clashing = CheckType("clash", lambda context: None, (Option("within", "str"),))

    with pytest.raises(PluginError) as caught:
        run_check_type(clashing, {}, tmp_path=tmp_path)

    assert str(caught.value) == (
        "plugin clash: check type 'clash' declares 'within', which every check "
        "already has; rename the option"
    )


def test_the_type_s_own_validation_runs_as_config_check_runs_it(tmp_path):
    with pytest.raises(ConfigError) as caught:
        run_check_type(
            logscan,
            {"path": str(tmp_path / "x.log"), "pattern": "E", "encoding": "nosuch"},
            tmp_path=tmp_path,
        )

    assert '[[check]] "test" encoding' in str(caught.value)
