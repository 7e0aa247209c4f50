"""The configuration: one TOML file read into frozen, validated objects.

This module owns the tables (``[notifier]``, ``[mail]``, ``[smtp]``,
``[file]``, ``[defaults]``, ``[[check]]``), their defaults and their
validation. It reports every problem in a file at once, each naming the file,
the table or check and the key. It has no run-time behaviour: nothing here
connects, schedules or reads a secret.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import tomli_w

from notifier.checks.base import CheckType
from notifier.errors import ConfigError, ConfigProblem
from notifier.options import (
    Option,
    Problem,
    RunsOrDuration,
    options_of,
    present,
    setting,
    settings_from_values,
    settings_to_values,
    suggest,
    validate_table,
)

DEFAULT_CONFIG_PATH: Final = Path("/etc/notifier/notifier.toml")
CHECK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")
_TABLES: Final = ("notifier", "mail", "smtp", "file", "defaults", "check")


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
        "int", 4, "Threads that run checks at the same time.", minimum=1, maximum=64
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


def read_toml(path: Path) -> dict[str, Any]:
    """Return the parsed TOML of ``path``.

    :raises ConfigError: when the file cannot be read or is not valid TOML.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError.single(
            path, "", None, "file not found", "create it, or pass -c PATH"
        ) from exc
    except PermissionError as exc:
        raise ConfigError.single(
            path, "", None, "permission denied", "run as a user who can read it"
        ) from exc
    except IsADirectoryError as exc:
        raise ConfigError.single(
            path, "", None, "is a folder", "pass the TOML file itself"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError.single(
            path, "", None, f"is not UTF-8 text ({exc.reason})"
        ) from exc
    except OSError as exc:
        raise ConfigError.single(path, "", None, exc.strerror or str(exc)) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError.single(path, "", None, f"invalid TOML: {exc}") from exc


def parse_notifier_table(raw: Mapping[str, Any], path: Path | None) -> NotifierSettings:
    """Return ``[notifier]`` alone, needed before plugins can be loaded.

    Invalid keys take their defaults here and are reported by
    :func:`build_config`, so that every problem in the file shows up in one
    report.
    """
    problems: list[ConfigProblem] = []
    settings: NotifierSettings = _build_table(
        raw, "notifier", NotifierSettings, path, problems
    )
    return settings


def build_config(
    raw: Mapping[str, Any],
    path: Path | None,
    check_types: Mapping[str, CheckType],
    transports: Sequence[str] = ("smtp", "file"),
) -> Config:
    """Validate the parsed TOML ``raw`` and return the configuration.

    :param check_types: every check type the plugins provide, by name.
    :param transports: the names ``[mail] transport`` may take.
    :raises ConfigError: with every problem in the file, not just the first.
    """
    problems: list[ConfigProblem] = []

    # Top-level keys: only the known tables, each of the right shape.
    for key, value in raw.items():
        if key not in _TABLES:
            hint = suggest(key, _TABLES)
            problems.append(ConfigProblem(path, "", key, "is not a known table", hint))
        elif key == "check" and not _is_table_array(value):
            problems.append(
                ConfigProblem(path, "", key, "must be an array of tables", "[[check]]")
            )
        elif key != "check" and not isinstance(value, dict):
            problems.append(ConfigProblem(path, "", key, "must be a table", f"[{key}]"))

    notifier = _build_table(raw, "notifier", NotifierSettings, path, problems)
    mail = _build_table(raw, "mail", MailSettings, path, problems)
    smtp = _build_table(raw, "smtp", SmtpSettings, path, problems)
    file = _build_table(raw, "file", FileSettings, path, problems)
    defaults = _build_table(raw, "defaults", CheckCommon, path, problems)

    # Derived values, filled in so `config show` prints what is really used.
    hostname = notifier.hostname or socket.gethostname()
    notifier = _replace(notifier, hostname=hostname)
    if not mail.sender:
        mail = _replace(mail, sender=f"notifier@{hostname}")
    if file.directory is None:
        file = _replace(file, directory=notifier.state_dir / "mail")
    if mail.transport not in transports:
        problems.append(
            ConfigProblem(
                path,
                "mail",
                "transport",
                f"{mail.transport!r} is not a known transport",
                suggest(mail.transport, transports)
                or "one of " + ", ".join(repr(name) for name in transports),
            )
        )

    raw_checks = raw.get("check", [])
    checks = _build_checks(
        raw_checks if _is_table_array(raw_checks) else [],
        defaults,
        check_types,
        path,
        problems,
    )
    if problems:
        raise ConfigError(problems)
    return Config(path, notifier, mail, smtp, file, defaults, tuple(checks))


def _is_table_array(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _replace(settings: Any, **changes: Any) -> Any:
    return dataclasses.replace(settings, **changes)


def _build_table(
    raw: Mapping[str, Any],
    table: str,
    cls: type[Any],
    path: Path | None,
    problems: list[ConfigProblem],
) -> Any:
    section = raw.get(table, {})
    if not isinstance(section, dict):
        section = {}
    values, found = validate_table(section, options_of(cls))
    problems.extend(_locate(found, path, table))
    clean = {key: value for key, value in values.items() if key not in _keys(found)}
    return settings_from_values(cls, clean)


def _keys(found: Sequence[Problem]) -> set[str | None]:
    return {problem.key for problem in found}


def _locate(
    found: Sequence[Problem], path: Path | None, location: str
) -> list[ConfigProblem]:
    return [
        ConfigProblem(path, location, problem.key, problem.message, problem.hint)
        for problem in found
    ]


def _build_checks(
    entries: Sequence[Mapping[str, Any]],
    defaults: CheckCommon,
    check_types: Mapping[str, CheckType],
    path: Path | None,
    problems: list[ConfigProblem],
) -> list[CheckSpec]:
    checks: list[CheckSpec] = []
    seen: dict[str, int] = {}
    default_values = settings_to_values(defaults)

    for index, entry in enumerate(entries):
        name, location = _check_identity(entry, index, path, problems)

        # Duplicate names would make alert state and `notifier check NAME`
        # ambiguous.
        if name is not None and name in seen:
            problems.append(
                ConfigProblem(
                    path,
                    location,
                    "name",
                    f"{name!r} is used by [[check]] number {seen[name] + 1} too",
                    "give every check its own name",
                )
            )
        elif name is not None:
            seen[name] = index

        type_name = entry.get("type")
        check_type = _check_type_of(type_name, check_types, location, path, problems)
        type_options = check_type.options if check_type else ()
        options = (*COMMON_OPTIONS, *type_options)
        known_extra: tuple[str, ...] = ("name", "type")
        if check_type is None:
            # Without a type we cannot tell its keys from unknown ones.
            known_extra = ("name", "type", *entry.keys())
        values, found = validate_table(
            entry, options, defaults=default_values, extra_known=known_extra
        )
        problems.extend(_locate(found, path, location))
        if name is None or check_type is None or found:
            continue

        common_values = {o.name: values[o.name] for o in COMMON_OPTIONS}
        own_values = {o.name: values[o.name] for o in type_options}
        common = settings_from_values(CheckCommon, common_values)
        checks.append(CheckSpec(name, check_type.name, common, own_values, index))
    return checks


def _check_identity(
    entry: Mapping[str, Any],
    index: int,
    path: Path | None,
    problems: list[ConfigProblem],
) -> tuple[str | None, str]:
    name = entry.get("name")
    if isinstance(name, str) and CHECK_NAME.fullmatch(name):
        return name, f'[[check]] "{name}"'
    location = f"[[check]] number {index + 1}"
    if name is None:
        problems.append(
            ConfigProblem(path, location, "name", "is required but missing")
        )
    else:
        problems.append(
            ConfigProblem(
                path,
                location,
                "name",
                f"{name!r} is not a valid check name",
                "use letters, digits, '-', '_', '.', '@'",
            )
        )
    return None, location


def _check_type_of(
    type_name: object,
    check_types: Mapping[str, CheckType],
    location: str,
    path: Path | None,
    problems: list[ConfigProblem],
) -> CheckType | None:
    if type_name is None:
        problems.append(
            ConfigProblem(
                path,
                location,
                "type",
                "is required but missing",
                "one of " + ", ".join(sorted(check_types)),
            )
        )
        return None
    if not isinstance(type_name, str) or type_name not in check_types:
        hint = suggest(type_name, check_types) if isinstance(type_name, str) else None
        problems.append(
            ConfigProblem(
                path,
                location,
                "type",
                f"{type_name!r} is not a known check type",
                hint
                or "`notifier plugins` lists the types; one of "
                + ", ".join(sorted(check_types)),
            )
        )
        return None
    return check_types[type_name]


def load_config(
    path: Path, check_types: Mapping[str, CheckType], transports: Sequence[str]
) -> Config:
    """Read and validate ``path`` in one step (for callers with plugins built).

    :raises ConfigError: with every problem in the file.
    """
    return build_config(read_toml(path), path, check_types, transports)


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
