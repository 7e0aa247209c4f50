"""notifier: watches a Linux server and emails a person when something is wrong.

The names exported here are the public interface for plugin authors.
"""

from __future__ import annotations

import pluggy

from notifier.checks.base import (
    Check,
    CheckContext,
    CheckType,
    Result,
    Status,
    threshold_status,
)
from notifier.hookspecs import PROJECT_NAME
from notifier.options import Option
from notifier.transport import (
    AuthRefused,
    MessageRefused,
    Refusal,
    SendOutcome,
    ServerUnavailable,
    TransportType,
)

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = [
    "AuthRefused",
    "Check",
    "CheckContext",
    "CheckType",
    "MessageRefused",
    "Option",
    "Refusal",
    "Result",
    "SendOutcome",
    "ServerUnavailable",
    "Status",
    "TransportType",
    "__version__",
    "hookimpl",
    "threshold_status",
]
