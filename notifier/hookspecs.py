"""The hook contract between notifier and its plugins.

Built-in checks use exactly these hooks, so anything they do a third-party
plugin can do too. Implement a hook with ``from notifier import hookimpl``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from notifier.checks.base import CheckType
    from notifier.transport import TransportType

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
    :class:`notifier.CheckContext`, plus an optional ``validate`` callable
    returning the problems of an entry's options as ``(key, message,
    hint)`` tuples, reported by ``notifier config check``. Two plugins
    returning the same name is a configuration error naming both. Importing
    the plugin and this call must each end within 10 seconds, or the plugin
    is reported as failed and the others load.

    What the daemon guarantees to a check: ``run()`` is called from a worker
    thread, never concurrently for one check; an exception or a run past the
    check's ``timeout`` becomes an UNKNOWN result carrying the reason; the
    folder ``context.state_dir`` is the check's own and survives restarts.

    :returns: a list of check types, empty if the plugin provides none.

    .. versionadded:: 0.1
    """
    raise NotImplementedError


@hookspec
def notifier_transports() -> list[TransportType]:
    """Return the delivery transports this plugin provides.

    Called once when the plugin manager is built (at start-up, by every
    one-shot command, and again on reload), before the configuration is
    validated: ``[mail] transport`` must name one of the transports returned
    here by some plugin. The built-in ``smtp`` and ``file`` transports are
    provided through this same hook.

    Each :class:`notifier.TransportType` names the transport and gives a
    ``create`` callable that builds it from the whole validated
    :class:`notifier.config.Config` (plugins usually read their own settings
    from a file or the environment), plus an optional ``validate`` callable
    returning configuration problems for ``notifier config check``. The
    transport opens a ``session()`` per batch of messages; its
    ``send(message, recipients)`` returns a :class:`notifier.SendOutcome`
    and raises :class:`notifier.ServerUnavailable` (the whole transport
    backs off), :class:`notifier.AuthRefused` (likewise), or
    :class:`notifier.MessageRefused` (this message only). Two plugins
    returning the same name is an error naming both.

    What the core guarantees to a transport: every message was written to
    the outbox first; ``session()`` and ``send`` are called from the
    delivery thread only, never concurrently; a message is retried with
    exponential backoff until ``[mail] max_age``, and dead-lettered on a
    permanent refusal.

    :returns: a list of transport types, empty if the plugin provides none.

    .. versionadded:: 0.1
    """
    raise NotImplementedError
