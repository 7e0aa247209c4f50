"""What a plugin's hooks must return, checked before anything is used.

The dataclasses a plugin returns do not enforce their annotations, and a
plugin's option declarations are code nobody has reviewed; each problem found
here becomes a failure of that one plugin, with a message naming what is
wrong, instead of a crash of ``config check`` or ``plugins --verbose`` later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from notifier.checks.base import CheckType
from notifier.config import COMMON_OPTIONS
from notifier.options import declaration_problem
from notifier.transport import TransportType

_COMMON_NAMES: Final = frozenset(option.name for option in COMMON_OPTIONS)
_TYPE_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def check_types_problem(returned: object) -> str | None:
    """Return how ``notifier_check_types`` broke its contract, or ``None``.

    :returns: a phrase following "hook notifier_check_types", such as
        ``returned dict, expected a list of notifier.CheckType``.
    """
    expected = "expected a list of notifier.CheckType"
    if not isinstance(returned, list):
        return f"returned {type(returned).__name__}, {expected}"
    names: set[str] = set()
    for index, item in enumerate(returned):
        if not isinstance(item, CheckType):
            return (
                f"returned a list holding {type(item).__name__} at index {index}, "
                f"{expected}"
            )
        # The dataclass does not enforce its annotations; a plugin may not either.
        name: object = item.name
        create: object = item.create
        if not isinstance(name, str) or not _TYPE_NAME.fullmatch(name):
            return (
                f"returned a check type named {name!r}; a name is a letter "
                "then letters, digits, '_', '.' or '-'"
            )
        if name in names:
            return f"returned check type {name!r} twice"
        if not callable(create):
            return f"returned check type {name!r} whose create is not callable"
        declared = _declaration_problem(item)
        if declared is not None:
            return f"returned check type {name!r} {declared}"
        # The config layer reads such a key as the common option, so the check
        # would never see the value its author meant.
        clashes = sorted(_COMMON_NAMES & {option.name for option in item.options})
        if clashes:
            return (
                f"returned check type {name!r} declaring "
                f"{', '.join(map(repr, clashes))}, which every check already has; "
                "rename the option"
            )
        names.add(name)
    return None


def _declaration_problem(check_type: CheckType) -> str | None:
    """Return what is wrong in a check type's summary, options, validate or
    hints, as a phrase following its name, or ``None``."""
    summary: object = check_type.summary
    validate: object = check_type.validate
    options: object = check_type.options
    hints: object = check_type.hints
    if not isinstance(summary, str):
        return f"whose summary is a {type(summary).__name__}, not a string"
    if validate is not None and not callable(validate):
        return "whose validate is neither None nor callable"
    if not isinstance(hints, Mapping) or not all(isinstance(k, str) for k in hints):
        return "whose hints are not a mapping of option names to advice"
    common_defaults: object = check_type.common_defaults
    if not isinstance(common_defaults, Mapping):
        return "whose common_defaults are not a mapping"
    unknown = sorted(str(key) for key in common_defaults if key not in _COMMON_NAMES)
    if unknown:
        named = ", ".join(map(repr, unknown))
        return f"whose common_defaults name {named}, not options every check has"
    if not isinstance(options, tuple | list):
        return f"whose options are a {type(options).__name__}, not a tuple of Option"
    seen: set[str] = set()
    for option in options:
        problem = declaration_problem(option)
        if problem is not None:
            return f"whose option {problem}"
        if option.name in seen:
            return f"declaring option {option.name!r} twice"
        seen.add(option.name)
    return None


def transports_problem(returned: object) -> str | None:
    """Return how ``notifier_transports`` broke its contract, or ``None``.

    :returns: a phrase following "hook notifier_transports".
    """
    expected = "expected a list of notifier.TransportType"
    if not isinstance(returned, list):
        return f"returned {type(returned).__name__}, {expected}"
    for index, item in enumerate(returned):
        if not isinstance(item, TransportType):
            return (
                f"returned a list holding {type(item).__name__} at index {index}, "
                f"{expected}"
            )
        name: object = item.name
        if not isinstance(name, str) or not _TYPE_NAME.fullmatch(name):
            return f"returned a transport named {name!r}"
        create: object = item.create
        if not callable(create):
            return f"returned transport {name!r} whose create is not callable"
    return None
