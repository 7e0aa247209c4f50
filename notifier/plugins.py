"""The plugin manager: where check types come from, and what failed to load.

Every call of :func:`build_registry` makes a fresh :class:`pluggy.PluginManager`
and registers, in this order:

1. the built-in checks, the modules named in
   :data:`notifier.checks.BUILTIN_CHECK_MODULES` (origin ``built-in``);
2. plugins installed under the ``notifier`` entry-point group (origin
   ``<distribution> <version>``);
3. drop-in ``*.py`` files of each folder in ``[notifier] plugin_dirs``, in
   sorted order (origin: the file's path). They are loaded under a private
   module name; their folder is never put on ``sys.path``.

A drop-in runs with the daemon's rights, so a folder or file writable by group
or others, or owned by anyone but root and the daemon's user, is refused, and
so is a symlink whose target is. A plugin that fails to import, implements a
hook that does not exist, or whose hook raises or returns the wrong thing is
logged at ERROR and listed in :attr:`Registry.failures`; the others still
load. So is one whose import, or any one hook call, takes longer than
:data:`PLUGIN_TIME_LIMIT`: it is given up on and left running in a daemon
thread (see :mod:`notifier.timelimit`); the built-ins are not limited. Two
plugins providing the same check type name is a :class:`PluginError` naming
both.

Environment variables:

``NOTIFIER_DISABLE_PLUGINS``
    Comma-separated names of plugins not to load: a built-in's module name
    (``notifier.checks.disk``), an entry point's name, or a drop-in's file
    name without ``.py``. A disabled plugin is neither imported nor read, so
    this also gets a broken plugin out of the way.
``NOTIFIER_TRACE_PLUGINS``
    ``1`` turns on pluggy's tracing: every hook call, its arguments and its
    result are logged at DEBUG by this module's logger.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import pluggy

from notifier import checks, hookspecs, transports
from notifier.checks.base import CheckType
from notifier.dropin import file_problem, folder_problem, import_dropin
from notifier.entrypoints import EntryPoint, entry_points
from notifier.errors import PluginError
from notifier.options import suggest
from notifier.plugincontract import check_types_problem, transports_problem
from notifier.timelimit import TimeLimitExceeded, call_within
from notifier.transport import TransportType
from notifier.units import format_duration

log = logging.getLogger(__name__)

BUILTIN_ORIGIN: Final = "built-in"
ENTRY_POINT_GROUP: Final = "notifier"
DISABLE_ENV: Final = "NOTIFIER_DISABLE_PLUGINS"
TRACE_ENV: Final = "NOTIFIER_TRACE_PLUGINS"
CHECK_TYPES_HOOK: Final = "notifier_check_types"
PLUGIN_TIME_LIMIT: Final = 10.0
"""Seconds a plugin may take to import, and again for each call of a hook."""

_TRUE_WORDS: Final = frozenset({"1", "true", "yes", "on"})

Source = Literal["built-in", "entry point", "drop-in"]
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class CheckTypeInfo:
    """A check type and where it came from, for ``notifier plugins``.

    :param origin: ``built-in``, ``<distribution> <version>`` or a file path.
    """

    check_type: CheckType
    origin: str


@dataclass(frozen=True)
class TransportInfo:
    """A delivery transport and where it came from, for ``notifier plugins``.

    :param origin: ``built-in``, ``<distribution> <version>`` or a file path.
    """

    transport_type: TransportType
    origin: str


@dataclass(frozen=True)
class PluginInfo:
    """One plugin that loaded, for ``notifier plugins``.

    :param name: the name it is registered under, which is also the name
        ``$NOTIFIER_DISABLE_PLUGINS`` takes.
    :param origin: ``built-in``, ``<distribution> <version>`` or a file path.
    :param source: how it was found.
    :param hooks: names of the hooks it implements, sorted.
    """

    name: str
    origin: str
    source: Source
    hooks: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Return how messages name this plugin: its origin, or the module of a
        built-in."""
        if self.source == "built-in":
            return f"{BUILTIN_ORIGIN} {self.name}"
        return self.origin


@dataclass(frozen=True)
class Registry:
    """Everything the plugins contributed, plus what failed to load.

    :param manager: the plugin manager, every loaded plugin registered on it.
    :param check_types: the check types by name.
    :param failures: one error per plugin (or folder) that could not be used.
    :param plugins: the plugins that loaded, in registration order.
    :param disabled: names skipped because ``$NOTIFIER_DISABLE_PLUGINS`` lists
        them.
    :param refused_folders: the drop-in folders among the failures' origins.
    """

    manager: pluggy.PluginManager
    check_types: dict[str, CheckTypeInfo] = field(default_factory=dict)
    failures: tuple[PluginError, ...] = ()
    plugins: tuple[PluginInfo, ...] = ()
    disabled: tuple[str, ...] = ()
    transports: dict[str, TransportInfo] = field(default_factory=dict)
    refused_folders: tuple[str, ...] = ()

    def missing_type_hint(self, type_name: str) -> str | None:
        """Return which failed plugins may be why ``type_name`` is unknown.

        A failed drop-in whose file is named after the type comes first and
        alone; otherwise every failure is named, since any of them might
        have provided it. ``None`` when no plugin failed.
        """
        named = [f for f in self.failures if Path(f.origin).stem == type_name]
        suspects = named or list(self.failures)
        if not suspects:
            return None
        described = [self._failure_text(failure) for failure in suspects[:3]]
        if len(suspects) > 3:
            described.append(f"and {len(suspects) - 3} more")
        return "it may come from a plugin that failed to load: " + "; ".join(described)

    def _failure_text(self, failure: PluginError) -> str:
        reason = str(failure).removeprefix(f"plugin {failure.origin}: ")
        if failure.origin in self.refused_folders:
            reason = reason.removeprefix("plugin folder ")
            return f"plugin folder {failure.origin} was refused because it {reason}"
        return f"plugin {failure.origin} failed: {reason}"

    def check_type_map(self) -> dict[str, CheckType]:
        """Return the check types by name, as the config layer wants them."""
        return {name: info.check_type for name, info in self.check_types.items()}

    def transport_map(self) -> dict[str, TransportType]:
        """Return the delivery transports by name (``[mail] transport``)."""
        return {name: info.transport_type for name, info in self.transports.items()}


@dataclass
class _Loading:
    """The state of one :func:`build_registry` call while plugins register."""

    manager: pluggy.PluginManager
    blocked: frozenset[str]
    time_limit: float = PLUGIN_TIME_LIMIT
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    failures: list[PluginError] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    refused_folders: list[str] = field(default_factory=list)

    def fail(self, origin: str, message: str) -> None:
        failure = PluginError(origin, message)
        log.error("%s; skipped, the other plugins still load", failure)
        self.failures.append(failure)

    def skip_blocked(self, name: str) -> bool:
        if name in self.blocked:
            log.info("plugin %r disabled by $%s; not loaded", name, DISABLE_ENV)
            self.disabled.append(name)
            return True
        return False

    def register(self, plugin: object, info: PluginInfo) -> None:
        taken = self.plugins.get(info.name)
        if taken is not None:
            self.fail(
                info.label,
                f"the plugin name {info.name!r} is already taken by {taken.label}; "
                "rename one of them",
            )
            return

        try:
            self.manager.register(plugin, name=info.name)
        except pluggy.PluginValidationError as exc:
            self.fail(info.label, _one_line(str(exc)))
            return
        except ValueError:
            self.fail(info.label, "is the same object as a plugin already loaded")
            return

        unmarked = _unmarked_hooks(self.manager, plugin)
        if unmarked:
            self.manager.unregister(plugin)
            self.fail(
                info.label,
                f"function {unmarked[0]} is not marked as a hook; decorate it with "
                "@hookimpl (from notifier import hookimpl)",
            )
            return
        self.plugins[info.name] = info
        log.debug("plugin %r registered from %s", info.name, info.origin)

    def drop(self, name: str) -> None:
        self.manager.unregister(name=name)
        del self.plugins[name]

    def run_limited(
        self, work: Callable[[], ResultT], what: str, source: Source
    ) -> ResultT:
        """Return ``work()``, a plugin's own code, if it ends in time.

        The built-ins are this project's code and run as they are: starting a
        thread for each would cost every command and reload for nothing.

        :param what: what ``work`` does, for the thread's name.
        :param source: how the plugin was found.
        :raises TimeLimitExceeded: when it takes longer than ``time_limit``.
        """
        if source == "built-in":
            return work()
        return call_within(self.time_limit, work, f"notifier-plugin {what}")

    def too_long(self, doing: str) -> str:
        """Return the failure message of a plugin that took too long."""
        return (
            f"took longer than {format_duration(self.time_limit)} {doing}; it was "
            "given up on"
        )


def build_registry(
    plugin_dirs: Sequence[Path] = (),
    *,
    daemon_uid: int | None = None,
    load_entry_points: bool = True,
    time_limit: float | None = None,
) -> Registry:
    """Build a fresh plugin manager and collect what every plugin provides.

    Cheap enough to call on every command: it imports the plugins and calls
    their hooks once, nothing more. A plugin that fails to load is logged at
    ERROR and reported in ``failures``; the others still load.

    :param plugin_dirs: folders of drop-in ``*.py`` plugins.
    :param daemon_uid: the user besides root allowed to own drop-in folders
        and files; defaults to the effective user of this process.
    :param load_entry_points: look for installed plugins in the ``notifier``
        entry-point group.
    :param time_limit: seconds a plugin's import, and each of its hook calls,
        may take before that plugin is a failure; ``None`` means
        :data:`PLUGIN_TIME_LIMIT` as it is at the time of the call.
    :returns: the registry, with a manager no other call shares.
    :raises PluginError: when two plugins provide the same check type name.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    if tracing_requested():
        manager.trace.root.setwriter(_write_trace)
        manager.enable_tracing()
    blocked = frozenset(_disabled_names())
    for name in blocked:
        manager.set_blocked(name)
    limit = PLUGIN_TIME_LIMIT if time_limit is None else time_limit
    loading = _Loading(manager, blocked, limit)

    _register_builtins(loading)
    if load_entry_points:
        _register_entry_points(loading)
    uid = os.geteuid() if daemon_uid is None else daemon_uid
    for folder in plugin_dirs:
        _register_dropins(loading, Path(folder), uid)
    _reject_unknown_hooks(loading)
    check_types = _collect_check_types(loading)
    transport_types = _collect_transports(loading)

    for name in sorted(blocked - set(loading.disabled)):
        log.warning("$%s names %r, which is no plugin; ignored", DISABLE_ENV, name)
    plugins = tuple(
        PluginInfo(info.name, info.origin, info.source, _hooks_of(manager, info.name))
        for info in loading.plugins.values()
    )
    return Registry(
        manager,
        check_types,
        tuple(loading.failures),
        plugins,
        tuple(loading.disabled),
        transport_types,
        tuple(loading.refused_folders),
    )


def tracing_requested() -> bool:
    """Return whether ``$NOTIFIER_TRACE_PLUGINS`` asks for hook call tracing."""
    return os.environ.get(TRACE_ENV, "").strip().lower() in _TRUE_WORDS


def _disabled_names() -> list[str]:
    text = os.environ.get(DISABLE_ENV, "")
    return [name.strip() for name in text.split(",") if name.strip()]


def _write_trace(text: str) -> None:
    for line in text.rstrip("\n").splitlines():
        log.debug("trace: %s", line)


def _register_builtins(loading: _Loading) -> None:
    builtins = (*checks.BUILTIN_CHECK_MODULES, *transports.BUILTIN_TRANSPORT_MODULES)
    for module_name in builtins:
        if loading.skip_blocked(module_name):
            continue
        info = PluginInfo(module_name, BUILTIN_ORIGIN, "built-in")
        try:
            module = loading.run_limited(
                functools.partial(importlib.import_module, module_name),
                module_name,
                info.source,
            )
        except TimeLimitExceeded:
            loading.fail(info.label, loading.too_long("to import"))
            continue
        except (Exception, SystemExit) as exc:
            loading.fail(info.label, f"failed to import: {_describe(exc)}")
            continue
        loading.register(module, info)


def _register_entry_points(loading: _Loading) -> None:
    found = entry_points(ENTRY_POINT_GROUP)
    for entry_point in sorted(found, key=lambda ep: (_origin_of(ep), ep.name)):
        if loading.skip_blocked(entry_point.name):
            continue
        info = PluginInfo(entry_point.name, _origin_of(entry_point), "entry point")
        try:
            plugin = loading.run_limited(
                entry_point.load, entry_point.name, info.source
            )
        except TimeLimitExceeded:
            loading.fail(
                info.origin,
                f"entry point {entry_point.name!r} ({entry_point.value}) "
                + loading.too_long("to import"),
            )
            continue
        except (Exception, SystemExit) as exc:
            loading.fail(
                info.origin,
                f"entry point {entry_point.name!r} ({entry_point.value}) failed to "
                f"import: {_describe(exc)}",
            )
            continue
        loading.register(plugin, info)


def _origin_of(entry_point: EntryPoint) -> str:
    return f"{entry_point.distribution} {entry_point.version}".strip()


def _register_dropins(loading: _Loading, folder: Path, daemon_uid: int) -> None:
    problem = folder_problem(folder, daemon_uid)
    if problem is not None:
        loading.fail(str(folder), problem)
        loading.refused_folders.append(str(folder))
        return

    # Dot files are editor leftovers (emacs's .#name.py lock links), not plugins.
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith(".") or loading.skip_blocked(path.stem):
            continue
        problem = file_problem(path, daemon_uid)
        if problem is not None:
            loading.fail(str(path), problem)
            continue
        info = PluginInfo(path.stem, str(path), "drop-in")
        taken = loading.plugins.get(info.name)
        if taken is not None:
            loading.fail(
                info.origin,
                f"the plugin name {info.name!r} is already taken by {taken.label}; "
                "rename the file",
            )
            continue
        try:
            module = loading.run_limited(
                functools.partial(import_dropin, path), path.name, info.source
            )
        except TimeLimitExceeded:
            loading.fail(info.origin, loading.too_long("to import"))
            continue
        except (Exception, SystemExit) as exc:
            loading.fail(info.origin, f"failed to import: {_describe(exc)}")
            continue
        loading.register(module, info)


def _unmarked_hooks(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    """Return names of the plugin's own ``notifier_*`` functions lacking
    ``@hookimpl``, which pluggy would silently ignore."""
    module_name = getattr(plugin, "__name__", None)
    unmarked: list[str] = []
    for attr in dir(plugin):
        if not attr.startswith(f"{hookspecs.PROJECT_NAME}_"):
            continue
        value = getattr(plugin, attr, None)
        if not callable(value) or getattr(value, "__module__", None) != module_name:
            continue
        if manager.parse_hookimpl_opts(plugin, attr) is None:
            unmarked.append(attr)
    return unmarked


def _reject_unknown_hooks(loading: _Loading) -> None:
    """Unregister each plugin implementing a hook no spec declares.

    ``check_pending`` names one offender at a time, so it runs until clean.
    """
    known = [name for name in dir(hookspecs) if name.startswith("notifier_")]
    while True:
        try:
            loading.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            name = loading.manager.get_name(exc.plugin)
            if name is None:
                raise
            callers = loading.manager.get_hookcallers(exc.plugin) or []
            unknown = [caller.name for caller in callers if not caller.has_spec()]
            hints = [suggest(hook, known) for hook in unknown]
            described = ", ".join(
                f"{hook!r}" + (f" ({hint})" if hint else "")
                for hook, hint in zip(unknown, hints, strict=True)
            )
            label = loading.plugins[name].label
            loading.drop(name)
            loading.fail(label, f"implements unknown hook {described}")
        else:
            return


def _collect_check_types(loading: _Loading) -> dict[str, CheckTypeInfo]:
    """Return every check type the loaded plugins provide, by name.

    :raises PluginError: when two plugins provide the same type name.
    """
    provided = _provided(
        loading, CHECK_TYPES_HOOK, check_types_problem, "check type", drop=True
    )
    return {
        item.name: CheckTypeInfo(item, info.origin)
        for info, item in provided
        if isinstance(item, CheckType)
    }


def _provided(
    loading: _Loading,
    hook_name: str,
    problem_of: Callable[[object], str | None],
    noun: str,
    *,
    drop: bool,
) -> list[tuple[PluginInfo, Any]]:
    """Call each plugin's ``hook_name`` apart from the others, so a failure is
    pinned on the plugin that caused it, and return what each provided.

    :param problem_of: says how a return value breaks the hook's contract.
    :param noun: what the hook provides, for the duplicate-name error.
    :param drop: unregister a plugin whose hook fails.
    :raises PluginError: when two plugins provide the same name.
    """
    provided: list[tuple[PluginInfo, Any]] = []
    found_by: dict[str, PluginInfo] = {}
    for info in list(loading.plugins.values()):
        returned = _call_alone(loading, info, hook_name, problem_of, drop=drop)
        for item in returned or ():
            earlier = found_by.get(item.name)
            if earlier is not None:
                msg = (
                    f"{noun} {item.name!r} is also provided by {earlier.label}; "
                    f"rename one, or disable one plugin with {DISABLE_ENV}={info.name}"
                )
                raise PluginError(info.label, msg)
            found_by[item.name] = info
            provided.append((info, item))
    return provided


def _call_alone(
    loading: _Loading,
    info: PluginInfo,
    hook_name: str,
    problem_of: Callable[[object], str | None],
    *,
    drop: bool,
) -> list[Any] | None:
    """Return what one plugin's ``hook_name`` returned, or None (and a
    failure) if it did not implement it, raised, or broke the contract."""
    manager = loading.manager
    plugin = manager.get_plugin(info.name)
    hook = getattr(manager.hook, hook_name)
    own = [
        impl
        for impl in hook.get_hookimpls()
        if impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper)
    ]
    if not own:
        return None

    log.debug("plugin %r: calling %s", info.name, hook_name)
    others = manager.get_plugins() - {plugin}
    problem: str | None
    try:
        results = loading.run_limited(
            manager.subset_hook_caller(hook_name, others),
            info.name,
            info.source,
        )
    except TimeLimitExceeded:
        problem = loading.too_long("to return")
    except (Exception, SystemExit) as exc:
        problem = f"raised {_describe(exc)}"
    else:
        returned = results[0] if results else None
        problem = problem_of(returned)
        if problem is None and isinstance(returned, list):
            return returned
    if drop:
        loading.drop(info.name)
    loading.fail(info.label, f"hook {hook_name} {problem}")
    return None


def _hooks_of(manager: pluggy.PluginManager, name: str) -> tuple[str, ...]:
    plugin = manager.get_plugin(name)
    callers = manager.get_hookcallers(plugin) or []
    return tuple(sorted({caller.name for caller in callers}))


def _describe(exc: BaseException) -> str:
    """Return an exception as one line, with where it was raised."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else f"{exc.lineno}"
        return f"{type(exc).__name__}: {exc.msg} (at {where})"
    text = _one_line(str(exc))
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen ")
    ]
    if frames:
        described = f"{described} (at {frames[-1].filename}:{frames[-1].lineno})"
    return described


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


# Delivery transports (notifier_transports): collected like check types, one
# plugin at a time, so a broken one is named and the others still count.
TRANSPORTS_HOOK: Final = "notifier_transports"


def _collect_transports(loading: _Loading) -> dict[str, TransportInfo]:
    """Return every transport the loaded plugins provide, by name.

    A plugin whose transport hook fails stays registered: its check types,
    collected before, still count.

    :raises PluginError: when two plugins provide the same transport name.
    """
    provided = _provided(
        loading, TRANSPORTS_HOOK, transports_problem, "transport", drop=False
    )
    return {
        item.name: TransportInfo(item, info.origin)
        for info, item in provided
        if isinstance(item, TransportType)
    }
