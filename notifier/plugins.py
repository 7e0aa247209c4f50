"""The plugin manager: where check types (and transports) come from.

Built-in checks are registered first from a tuple of module names, then
plugins installed under the ``notifier`` entry-point group, then drop-in
``.py`` files from ``[notifier] plugin_dirs``. Everything is registered on the
same manager and contributes through the same hooks.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pluggy

from notifier import hookspecs
from notifier.checks import BUILTIN_CHECK_MODULES
from notifier.checks.base import CheckType
from notifier.errors import PluginError

log = logging.getLogger(__name__)

BUILTIN_ORIGIN = "built-in"


@dataclass(frozen=True)
class CheckTypeInfo:
    """A check type and where it came from, for ``notifier plugins``.

    :param origin: ``built-in``, ``<distribution> <version>`` or a file path.
    """

    check_type: CheckType
    origin: str


@dataclass(frozen=True)
class Registry:
    """Everything the plugins contributed, plus what failed to load."""

    manager: pluggy.PluginManager
    check_types: dict[str, CheckTypeInfo] = field(default_factory=dict)
    failures: tuple[PluginError, ...] = ()

    def check_type_map(self) -> dict[str, CheckType]:
        """Return the check types by name, as the config layer wants them."""
        return {name: info.check_type for name, info in self.check_types.items()}


def build_registry(plugin_dirs: Sequence[Path] = ()) -> Registry:
    """Build a fresh plugin manager and collect what every plugin provides.

    A plugin that fails to load is reported in ``failures`` and the others
    still load.

    :raises PluginError: when two plugins claim the same check type name.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    origins: dict[object, str] = {}
    for module_name in BUILTIN_CHECK_MODULES:
        module = importlib.import_module(module_name)
        manager.register(module, name=module_name)
        origins[module] = BUILTIN_ORIGIN
    manager.check_pending()

    check_types: dict[str, CheckTypeInfo] = {}
    for impl in manager.hook.notifier_check_types.get_hookimpls():
        origin = origins.get(impl.plugin, impl.plugin_name)
        returned = impl.function()
        if not isinstance(returned, list):
            continue
        for check_type in returned:
            if isinstance(check_type, CheckType):
                check_types[check_type.name] = CheckTypeInfo(check_type, origin)
    return Registry(manager, check_types)
