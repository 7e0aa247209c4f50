"""The hook contract between notifier and its plugins.

Built-in checks use exactly these hooks, so anything they do a third-party
plugin can do too. Implement a hook with ``from notifier import hookimpl``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from notifier.checks.base import CheckType

PROJECT_NAME = "notifier"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def notifier_check_types() -> list[CheckType]:
    """Return the check types this plugin provides.

    Called once when the plugin manager is built (at start-up, by every
    one-shot command, and again on reload), before the configuration's
    ``[[check]]`` entries are validated: an entry's ``type`` must name one of
    the types returned here by some plugin, and its keys are checked against
    that type's declared options.

    Each :class:`notifier.CheckType` names the type, declares its options
    and gives a ``create`` callable that builds one check from a
    :class:`notifier.CheckContext`. Two plugins returning the same name is
    a configuration error naming both.

    What the daemon guarantees to a check: ``run()`` is called from a worker
    thread, never concurrently for one check; an exception or a run past the
    check's ``timeout`` becomes an UNKNOWN result carrying the reason; the
    folder ``context.state_dir`` is the check's own and survives restarts.

    :returns: a list of check types, empty if the plugin provides none.

    .. versionadded:: 0.1
    """
    raise NotImplementedError
