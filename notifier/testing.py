"""Helpers for testing a check plugin with pytest, the way the daemon runs it.

A plugin author's test gives a check type (or the plugin module that
provides it) and the options a ``[[check]]`` entry would hold; the helper
validates them against the type's declaration exactly like the config layer
(so a wrong key fails the test with the same one-line error a user would
see), builds a :class:`notifier.CheckContext` with a private state folder
under pytest's ``tmp_path``, and runs the check through the same guarded
runner the daemon uses: an exception, a run past the timeout or a wrong
return type comes back as an UNKNOWN result carrying the reason. Example::

    from notifier.testing import run_check_type
    import my_plugin

    def test_ok_when_the_file_is_fresh(tmp_path):
        (tmp_path / "stamp").touch()
        result = run_check_type(my_plugin, {"path": str(tmp_path / "stamp")},
                                tmp_path=tmp_path)
        assert result.status is Status.OK

Nothing here is used by the daemon itself.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pluggy

from notifier import hookspecs
from notifier.checks.base import Check, CheckContext, CheckType, Result
from notifier.config import COMMON_OPTIONS
from notifier.errors import ConfigError, ConfigProblem, PluginError
from notifier.options import validate_table
from notifier.runner import run_check

DEFAULT_HOSTNAME: Final = "test-host"
_loaded_files = itertools.count(1)


@dataclass(frozen=True)
class CheckHarness:
    """A check created as the daemon would create it, ready to run.

    :param check: the object the check type's ``create`` returned.
    :param context: what it was given; ``context.state_dir`` is its folder.
    :param check_type: the type it was made from.
    """

    check: Check
    context: CheckContext
    check_type: CheckType

    def run(self) -> Result:
        """Run the check once through the daemon's runner and return the result.

        Call it again to test what a check remembers between runs.
        """
        return run_check(self.check, self.context.timeout, self.context.name)


def load_plugin_file(path: Path) -> ModuleType:
    """Import a drop-in plugin file by path and return the module.

    Each call imports the file afresh under a unique module name, so two
    tests never share module state.

    :raises PluginError: when the file cannot be imported; the message names
        the file and the error.
    """
    module_name = f"notifier_test_plugin_{next(_loaded_files)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        msg = "is not a Python file that can be imported"
        raise PluginError(str(path), msg)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        msg = f"failed to import: {type(exc).__name__}: {exc}"
        raise PluginError(str(path), msg) from exc
    return module


def check_type_from(source: object, type_name: str | None = None) -> CheckType:
    """Return the check type ``source`` provides.

    :param source: a :class:`notifier.CheckType`; or a plugin (a module or
        object with hook implementations), registered on a fresh plugin
        manager so that its hooks are validated against the contract; or the
        :class:`~pathlib.Path` of a drop-in ``.py`` file.
    :param type_name: which type, when the plugin provides several.
    :raises PluginError: when the plugin breaks the hook contract or does not
        provide the type asked for.
    """
    if isinstance(source, CheckType):
        return source
    plugin = load_plugin_file(source) if isinstance(source, Path) else source
    origin = str(source) if isinstance(source, Path) else _name_of(plugin)

    # A fresh manager per call: no test sees another test's plugins.
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    try:
        manager.register(plugin)
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(origin, str(exc)) from exc
    provided: list[CheckType] = []
    for returned in manager.hook.notifier_check_types():
        if not isinstance(returned, list):
            msg = f"notifier_check_types returned {type(returned).__name__}, not a list"
            raise PluginError(origin, msg)
        provided.extend(item for item in returned if isinstance(item, CheckType))
    return _pick(provided, type_name, origin)


def _name_of(plugin: object) -> str:
    return str(getattr(plugin, "__name__", None) or type(plugin).__name__)


def _pick(provided: list[CheckType], type_name: str | None, origin: str) -> CheckType:
    names = [check_type.name for check_type in provided]
    if type_name is None and len(provided) == 1:
        return provided[0]
    if type_name is None:
        msg = (
            f"provides {len(provided)} check types ({', '.join(names) or 'none'}); "
            "pass type_name="
        )
        raise PluginError(origin, msg)
    for check_type in provided:
        if check_type.name == type_name:
            return check_type
    msg = f"provides no check type {type_name!r} (it provides {names or 'none'})"
    raise PluginError(origin, msg)


def make_check(
    source: object,
    options: Mapping[str, Any],
    *,
    tmp_path: Path,
    type_name: str | None = None,
    name: str = "test",
    hostname: str = DEFAULT_HOSTNAME,
    timeout: float | None = None,
) -> CheckHarness:
    """Validate ``options`` like a ``[[check]]`` entry and create the check.

    :param source: what :func:`check_type_from` accepts.
    :param options: the keys of the entry besides ``name`` and ``type``, as
        TOML would give them (``"30s"``, not ``30.0``); the options every
        check has (``timeout``, ``every``...) are accepted too.
    :param tmp_path: a folder for the check's ``state_dir`` (pytest's
        ``tmp_path``); the same ``tmp_path`` and ``name`` give the same
        folder, as a restart of the daemon would.
    :param timeout: seconds, overriding the ``timeout`` option.
    :raises ConfigError: with every problem in ``options``, worded as the
        config layer words them.
    :raises PluginError: see :func:`check_type_from`; also when the type
        declares an option that every check already has (``timeout``,
        ``within``...), which the config layer would never pass on.
    """
    check_type = check_type_from(source, type_name)
    _refuse_clashes(check_type)
    values, problems = validate_table(options, (*COMMON_OPTIONS, *check_type.options))
    location = f'[[check]] "{name}"'
    if problems:
        raise ConfigError(
            [ConfigProblem(None, location, p.key, p.message, p.hint) for p in problems]
        )
    own = {option.name: values[option.name] for option in check_type.options}

    # The type's own check of its options, as `notifier config check` runs it.
    if check_type.validate is not None:
        found = check_type.validate(own)
        if found:
            raise ConfigError(
                [ConfigProblem(None, location, k, m, h) for k, m, h in found]
            )

    state_dir = tmp_path / "state" / name
    state_dir.mkdir(parents=True, exist_ok=True)
    context = CheckContext(
        name=name,
        options=own,
        state_dir=state_dir,
        hostname=hostname,
        timeout=timeout if timeout is not None else float(values["timeout"]),
    )
    return CheckHarness(check_type.create(context), context, check_type)


def _refuse_clashes(check_type: CheckType) -> None:
    """Fail when the type declares an option the core already declares.

    The config layer would validate such a key as the common option, so the
    check would never see the value its author meant.
    """
    common = {option.name for option in COMMON_OPTIONS}
    clashes = sorted(common & {option.name for option in check_type.options})
    if clashes:
        msg = (
            f"check type {check_type.name!r} declares {', '.join(map(repr, clashes))}, "
            "which every check already has; rename the option"
        )
        raise PluginError(check_type.name, msg)


def run_check_type(
    source: object,
    options: Mapping[str, Any],
    *,
    tmp_path: Path,
    type_name: str | None = None,
    name: str = "test",
    hostname: str = DEFAULT_HOSTNAME,
    timeout: float | None = None,
) -> Result:
    """Create the check as :func:`make_check` does, run it once, return the result.

    :raises ConfigError: when ``options`` are not valid for the type.
    :raises PluginError: see :func:`check_type_from`.
    """
    harness = make_check(
        source,
        options,
        tmp_path=tmp_path,
        type_name=type_name,
        name=name,
        hostname=hostname,
        timeout=timeout,
    )
    return harness.run()
