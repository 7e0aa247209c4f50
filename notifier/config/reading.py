"""Reading a configuration file and validating it into a :class:`Config`.

Every problem in a file is collected and reported at once, each naming the
file, the table or check and the key; nothing falls back to a default.
"""

from __future__ import annotations

import dataclasses
import socket
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from notifier.checks.base import CheckType
from notifier.config.tables import (
    CHECK_NAME,
    COMMON_OPTIONS,
    CheckCommon,
    CheckSpec,
    Config,
    FileSettings,
    MailSettings,
    NotifierSettings,
    SmtpSettings,
)
from notifier.errors import ConfigError, ConfigProblem
from notifier.options import (
    Problem,
    options_of,
    settings_from_values,
    settings_to_values,
    suggest,
    validate_table,
)

_TABLES: Final = ("notifier", "mail", "smtp", "file", "defaults", "check")
_BOM: Final = "\ufeff"

ConfigValidator = Callable[[Config], Sequence[ConfigProblem]]
"""Checks a whole configuration and returns its problems (a transport's)."""


def read_toml(path: Path) -> dict[str, Any]:
    """Return the parsed TOML of ``path``.

    A UTF-8 byte-order mark at the start, which some Windows editors write,
    is skipped.

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
        return tomllib.loads(text.removeprefix(_BOM))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError.single(path, "", None, f"invalid TOML: {exc}") from exc
    except ValueError as exc:
        # tomllib lets int()'s refusal of 4300+ digit numbers through.
        raise ConfigError.single(
            path, "", None, f"invalid TOML: {exc}", "write numbers of sane length"
        ) from exc


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
    *,
    validate: ConfigValidator | None = None,
    unknown_type_hint: Callable[[str], str | None] | None = None,
) -> Config:
    """Validate the parsed TOML ``raw`` and return the configuration.

    :param check_types: every check type the plugins provide, by name.
    :param transports: the names ``[mail] transport`` may take.
    :param validate: more checks of the whole configuration (the selected
        transport's). It runs even when other problems were found, on the
        configuration with each wrong value left at its default, so that
        every problem in the file is reported in one go.
    :param unknown_type_hint: given a ``type`` no plugin provides, returns
        why it may be missing (a plugin that failed to load), or ``None``.
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

    # The name goes into the SMTP greeting and mail headers: no spaces or
    # control characters (non-ASCII letters are fine, sent in IDNA form).
    if any(not char.isprintable() or char.isspace() for char in notifier.hostname):
        problems.append(
            ConfigProblem(
                path,
                "notifier",
                "hostname",
                f"{notifier.hostname!r} is not a host name",
                "no spaces or control characters, such as 'web-1.example.org'",
            )
        )
        notifier = _replace(notifier, hostname="")

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
    raw_defaults = raw.get("defaults", {})
    checks = _build_checks(
        raw_checks if _is_table_array(raw_checks) else [],
        defaults,
        set(raw_defaults) if isinstance(raw_defaults, dict) else set(),
        _TypeLookup(check_types, unknown_type_hint),
        path,
        problems,
    )
    config = Config(path, notifier, mail, smtp, file, defaults, tuple(checks))
    if validate is not None:
        problems.extend(validate(config))
    if problems:
        raise ConfigError(problems)
    return config


@dataclasses.dataclass(frozen=True)
class _TypeLookup:
    """The check types, and what to say about a ``type`` none provides."""

    types: Mapping[str, CheckType]
    unknown_hint: Callable[[str], str | None] | None


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


def _with_type_hints(
    found: list[Problem], check_type: CheckType | None
) -> list[Problem]:
    """Return ``found`` with the check type's advice on a key
    (:attr:`CheckType.hints`) added to the problems with that key."""
    hints = check_type.hints if check_type is not None else {}
    hinted: list[Problem] = []
    for problem in found:
        advice = hints.get(problem.key) if problem.key is not None else None
        hint = "; ".join(filter(None, (problem.hint, advice and str(advice))))
        hinted.append(dataclasses.replace(problem, hint=hint) if advice else problem)
    return hinted


def _build_checks(
    entries: Sequence[Mapping[str, Any]],
    defaults: CheckCommon,
    explicit_defaults: set[str],
    check_types: _TypeLookup,
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
        # A type's own defaults for the common options give way to what the
        # sysadmin wrote in [defaults].
        type_defaults = {
            key: value
            for key, value in (check_type.common_defaults if check_type else {}).items()
            if key not in explicit_defaults
        }
        values, found = validate_table(
            entry,
            options,
            defaults={**default_values, **type_defaults},
            extra_known=known_extra,
        )
        found = _with_type_hints(found, check_type)
        problems.extend(_locate(found, path, location))
        if name is None or check_type is None or found:
            continue

        common_values = {o.name: values[o.name] for o in COMMON_OPTIONS}
        own_values = {o.name: values[o.name] for o in type_options}
        type_problems = _type_problems(check_type, own_values, location, path)
        problems.extend(type_problems)
        if type_problems:
            continue
        common = settings_from_values(CheckCommon, common_values)
        checks.append(CheckSpec(name, check_type.name, common, own_values, index))
    return checks


def _type_problems(
    check_type: CheckType,
    values: Mapping[str, Any],
    location: str,
    path: Path | None,
) -> list[ConfigProblem]:
    """Return what the check type's own ``validate`` finds in ``values``.

    A plugin's validator is code nobody has checked: if it raises or returns
    something else than problems, that is reported at the entry, naming the
    type, rather than ending the command.
    """
    if check_type.validate is None:
        return []
    try:
        found = list(check_type.validate(values))
        return [
            ConfigProblem(
                path,
                location,
                str(key),
                str(message),
                None if hint is None else str(hint),
            )
            for key, message, hint in found
        ]
    except Exception as exc:
        # A bug in the plugin, reported where it shows rather than as ours.
        return [
            ConfigProblem(
                path,
                location,
                "type",
                f"check type {check_type.name!r} failed to validate this entry: "
                f"{type(exc).__name__}: {exc}",
                "report it to the plugin's author",
            )
        ]


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
    lookup: _TypeLookup,
    location: str,
    path: Path | None,
    problems: list[ConfigProblem],
) -> CheckType | None:
    check_types = lookup.types
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
        hint = hint or "`notifier plugins` lists the types; one of " + ", ".join(
            sorted(check_types)
        )
        if isinstance(type_name, str) and lookup.unknown_hint is not None:
            missing = lookup.unknown_hint(type_name)
            hint = f"{missing}; {hint}" if missing else hint
        problems.append(
            ConfigProblem(
                path,
                location,
                "type",
                f"{type_name!r} is not a known check type",
                hint,
            )
        )
        return None
    return check_types[type_name]
