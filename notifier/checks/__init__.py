"""Built-in checks, each registered through the same hooks a third party uses."""

from __future__ import annotations

BUILTIN_CHECK_MODULES: tuple[str, ...] = (
    "notifier.checks.disk",
    "notifier.checks.cpu",
    "notifier.checks.memory",
    "notifier.checks.load",
    "notifier.checks.command",
    "notifier.checks.logscan",
)
