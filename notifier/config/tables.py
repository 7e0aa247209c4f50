"""The configuration's tables: each key, its kind, default and help, declared once.

Frozen dataclasses, one per table (``[notifier]``, ``[mail]``, ``[smtp]``,
``[file]``, and :class:`CheckCommon` for ``[defaults]`` and the keys every
``[[check]]`` has), whose fields carry their :class:`~notifier.options.Option`
declaration; plus :class:`CheckSpec` and :class:`Config`, what a validated
file becomes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from notifier.options import RunsOrDuration, options_of, setting

DEFAULT_CONFIG_PATH: Final = Path("/etc/notifier/notifier.toml")
CHECK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")


@dataclass(frozen=True)
class NotifierSettings:
    """``[notifier]``: the daemon itself."""

    hostname: str = setting(
        "str", "", "Name this host is called in alerts; empty means the system's."
    )
    state_dir: Path = setting(
        "path",
        Path("/var/lib/notifier"),
        "Folder for alert state, log offsets and the outbox; must survive reboots.",
    )
    plugin_dirs: tuple[Path, ...] = setting(
        "path_list",
        (),
        "Folders of drop-in .py plugins; each must be writable only by root or "
        "the daemon's user.",
    )
    log_level: str = setting(
        "choice",
        "info",
        "Least severe log messages shown.",
        choices=("debug", "info", "warning", "error"),
    )
    group_wait: float = setting(
        "duration",
        10.0,
        "Alerts for the same recipients within this window go out as one email.",
        minimum=0,
        maximum=3600,
    )
    workers: int = setting(
        "int",
        4,
        "Scheduler threads that start check runs; each run then has a thread of "
        "its own, so a hung check never waits for a free one.",
        minimum=1,
        maximum=64,
    )


@dataclass(frozen=True)
class MailSettings:
    """``[mail]``: who gets alerts, what they look like, how hard we retry."""

    transport: str = setting(
        "str", "smtp", "How mail leaves: 'smtp', 'file', or a plugin's transport."
    )
    sender: str = setting(
        "str",
        "",
        "From address; empty means notifier@ the host name.",
        key="from",
    )
    to: tuple[str, ...] = setting(
        "str_list", (), "Recipients of every alert unless a check says otherwise."
    )
    to_warning: tuple[str, ...] = setting(
        "str_list", (), "Extra recipients of WARNING alerts."
    )
    to_critical: tuple[str, ...] = setting(
        "str_list", (), "Extra recipients of CRITICAL and UNKNOWN alerts."
    )
    subject_prefix: str = setting("str", "[notifier]", "Start of every subject line.")
    attach_max_bytes: int = setting(
        "size",
        512 * 1024,
        "Largest tail of a log file attached to one alert.",
        minimum=0,
    )
    compress_above: int = setting(
        "size",
        64 * 1024,
        "Attachments larger than this are gzip-compressed.",
        minimum=0,
    )
    redact: tuple[str, ...] = setting(
        "regex_list",
        (),
        "Extra regexes whose matches are masked in log text before it is sent.",
    )
    max_age: float = setting(
        "duration",
        3 * 86400.0,
        "A message still undelivered after this long moves to outbox/failed.",
        minimum=60,
    )
    max_per_hour: int = setting(
        "int",
        30,
        "Most alert emails sent in one hour; the rest are summarised, not lost. "
        "0 means no limit.",
        minimum=0,
    )
    retry_initial: float = setting(
        "duration", 60.0, "First wait after a failed delivery.", minimum=0.1
    )
    retry_max: float = setting(
        "duration", 3600.0, "Longest wait between delivery attempts.", minimum=0.1
    )
    digest: str = setting(
        "clock",
        "",
        "Time of day ('08:00', local time) for a daily summary of every check; "
        "empty is off.",
    )


@dataclass(frozen=True)
class SmtpSettings:
    """``[smtp]``: the mail server for the ``smtp`` transport."""

    host: str = setting("str", "localhost", "Mail server host name.")
    port: int = setting(
        "int",
        0,
        "Server port; 0 means 465 for ssl, 587 for starttls, 25 for none.",
        minimum=0,
        maximum=65535,
    )
    security: str = setting(
        "choice",
        "ssl",
        "'ssl' is implicit TLS; 'starttls' upgrades or fails; 'none' only on loopback.",
        choices=("ssl", "starttls", "none"),
    )
    username: str = setting("str", "", "Login name; empty means no login.")
    password: str = setting(
        "str",
        "",
        "Login password; only allowed when this file is not readable by others. "
        "Prefer password_file.",
        secret=True,
    )
    password_file: Path | None = setting(
        "path", None, "File holding the password; must not be readable by others."
    )
    password_env: str = setting("str", "", "Environment variable holding the password.")
    ca_file: Path | None = setting(
        "path", None, "Extra CA certificates (PEM) to trust for the server."
    )
    verify: bool = setting(
        "bool", True, "Verify the server's certificate and host name."
    )
    timeout: float = setting(
        "duration",
        30.0,
        "Limit on every network operation with the server.",
        minimum=0.1,
        maximum=600,
    )


@dataclass(frozen=True)
class FileSettings:
    """``[file]``: the ``file`` transport, which writes each message as .eml."""

    directory: Path | None = setting(
        "path",
        None,
        "Folder for .eml files; unset means 'mail' inside state_dir.",
    )


@dataclass(frozen=True)
class CheckCommon:
    """Options every check has, whatever its type; also the ``[defaults]`` table."""

    every: float = setting("duration", 60.0, "How often the check runs.", minimum=0.1)
    cron: str = setting(
        "cron", "", "Crontab expression ('*/5 * * * *'); when set, replaces 'every'."
    )
    timeout: float = setting(
        "duration",
        30.0,
        "A run taking longer is abandoned and reported as UNKNOWN.",
        minimum=0.1,
    )
    attach: tuple[Path, ...] = setting(
        "path_list", (), "Files whose tails go with this check's alerts."
    )
    for_: RunsOrDuration = setting(
        "runs_or_duration",
        RunsOrDuration(),
        "Consecutive bad runs (3) or how long it must stay bad ('5m') before "
        "a PROBLEM is sent.",
        key="for",
    )
    within: tuple[int, int] | None = setting(
        "n_of_m",
        None,
        "Alert when this many of the last runs were bad ('3 of 5'), instead of 'for'.",
    )
    repeat: float = setting(
        "duration", 4 * 3600.0, "Reminder interval while bad; '0' turns it off."
    )
    recovery: bool = setting("bool", True, "Send a RECOVERY when it is OK again.")
    flap_changes: int = setting(
        "int",
        5,
        "State changes within flap_window runs that count as flapping; 0 is off.",
        minimum=0,
    )
    flap_window: int = setting(
        "int", 10, "Runs looked at for flapping.", minimum=2, maximum=1000
    )
    clear_below: float | None = setting(
        "float",
        None,
        "Once bad, stay bad until the value drops below this (hysteresis).",
    )
    clear_above: float | None = setting(
        "float",
        None,
        "Once bad, stay bad until the value rises above this (hysteresis).",
    )
    to: tuple[str, ...] = setting(
        "str_list", (), "Recipients for this check instead of [mail] to."
    )
    enabled: bool = setting("bool", True, "false keeps the entry but never runs it.")


@dataclass(frozen=True)
class CheckSpec:
    """One ``[[check]]`` entry, validated against its type's declaration."""

    name: str
    type: str
    common: CheckCommon
    options: Mapping[str, Any]
    index: int

    @property
    def location(self) -> str:
        """Return how errors name this entry: ``[[check]] "root-disk"``."""
        return f'[[check]] "{self.name}"'


@dataclass(frozen=True)
class Config:
    """The whole validated configuration of one file."""

    path: Path | None
    notifier: NotifierSettings
    mail: MailSettings
    smtp: SmtpSettings
    file: FileSettings
    defaults: CheckCommon
    checks: tuple[CheckSpec, ...] = field(default=())

    def check(self, name: str) -> CheckSpec:
        """Return the check called ``name``.

        :raises KeyError: when there is none.
        """
        for spec in self.checks:
            if spec.name == name:
                return spec
        raise KeyError(name)


COMMON_OPTIONS: Final = options_of(CheckCommon)
