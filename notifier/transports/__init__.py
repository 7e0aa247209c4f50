"""The built-in delivery transports, each registered through the public
``notifier_transports`` hook exactly as a plugin's transport would be."""

from __future__ import annotations

from typing import Final

BUILTIN_TRANSPORT_MODULES: Final[tuple[str, ...]] = (
    "notifier.transports.smtp",
    "notifier.transports.file",
)
