"""The configuration: one TOML file read into frozen, validated objects.

This package owns the tables (``[notifier]``, ``[mail]``, ``[smtp]``,
``[file]``, ``[defaults]``, ``[[check]]``), their defaults and their
validation (:mod:`.tables`), reading and validating a file (:mod:`.reading`)
and printing it back (:mod:`.show`). It reports every problem in a file at
once, each naming the file, the table or check and the key. It has no
run-time behaviour: nothing here connects, schedules or reads a secret.
"""

from __future__ import annotations

from notifier.config.reading import build_config, parse_notifier_table, read_toml
from notifier.config.show import render_config
from notifier.config.tables import (
    CHECK_NAME,
    COMMON_OPTIONS,
    DEFAULT_CONFIG_PATH,
    CheckCommon,
    CheckSpec,
    Config,
    FileSettings,
    MailSettings,
    NotifierSettings,
    SmtpSettings,
)

__all__ = [
    "CHECK_NAME",
    "COMMON_OPTIONS",
    "DEFAULT_CONFIG_PATH",
    "CheckCommon",
    "CheckSpec",
    "Config",
    "FileSettings",
    "MailSettings",
    "NotifierSettings",
    "SmtpSettings",
    "build_config",
    "parse_notifier_table",
    "read_toml",
    "render_config",
]
