"""``config show``: the configuration in force, printed back as TOML.

Defaults are filled in and secrets redacted; the output is itself a valid
configuration file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tomli_w

from notifier.checks.base import CheckType
from notifier.config.tables import (
    CheckCommon,
    Config,
    FileSettings,
    MailSettings,
    NotifierSettings,
    SmtpSettings,
)
from notifier.options import Option, options_of, present, settings_to_values


def _table_to_toml(settings: object, cls: type[Any]) -> dict[str, Any]:
    values = settings_to_values(settings)
    shown: dict[str, Any] = {}
    for option in options_of(cls):
        rendered = present(option, values[option.name])
        if rendered is not None:
            shown[option.name] = rendered
    return shown


def _options_to_toml(
    options: Sequence[Option], values: Mapping[str, Any]
) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for option in options:
        rendered = present(option, values.get(option.name))
        if rendered is not None:
            shown[option.name] = rendered
    return shown


def render_config(config: Config, check_types: Mapping[str, CheckType]) -> str:
    """Return the effective configuration as TOML, secrets redacted.

    Every key is shown with the value in force, defaults filled in, so the
    output is itself a valid configuration file.
    """
    document: dict[str, Any] = {
        "notifier": _table_to_toml(config.notifier, NotifierSettings),
        "mail": _table_to_toml(config.mail, MailSettings),
        "smtp": _table_to_toml(config.smtp, SmtpSettings),
        "file": _table_to_toml(config.file, FileSettings),
        "defaults": _table_to_toml(config.defaults, CheckCommon),
    }
    entries: list[dict[str, Any]] = []
    for spec in config.checks:
        entry: dict[str, Any] = {"name": spec.name, "type": spec.type}
        entry.update(_table_to_toml(spec.common, CheckCommon))
        check_type = check_types.get(spec.type)
        if check_type is not None:
            entry.update(_options_to_toml(check_type.options, spec.options))
        entries.append(entry)
    if entries:
        document["check"] = entries
    return tomli_w.dumps(document)
