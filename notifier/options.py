"""Declared options: what a key may hold, its default, and its help text.

A check type declares its options as a tuple of :class:`Option`; the core's
own tables declare theirs as frozen dataclasses whose fields carry an
:class:`Option` (see :func:`setting`). Both are validated by the same code
here, and the same declaration feeds ``notifier plugins --verbose`` and
``notifier config show``, so the docs, the validator and the printout cannot
disagree.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, get_args

from notifier.units import (
    format_duration,
    format_duration_exact,
    format_size,
    parse_duration,
    parse_size,
)

Kind = Literal[
    "str",
    "int",
    "float",
    "bool",
    "duration",
    "size",
    "path",
    "str_list",
    "path_list",
    "regex",
    "regex_list",
    "choice",
    "clock",
    "cron",
    "runs_or_duration",
    "n_of_m",
    "str_map",
]

_KIND_WORDS: dict[str, str] = {
    "str": "a string",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "duration": "a duration such as '30s' or '5m'",
    "size": "a size such as '512KiB' or '10MB'",
    "path": "an absolute path",
    "str_list": "a string or a list of strings",
    "path_list": "an absolute path or a list of them",
    "regex": "a regular expression",
    "regex_list": "a regular expression or a list of them",
    "choice": "one of the listed words",
    "clock": "a time of day such as '08:00', or '' for off",
    "cron": "a crontab line such as '*/5 * * * *', or '' for none",
    "runs_or_duration": "a number of runs such as 3, or a duration such as '5m'",
    "n_of_m": "a string such as '3 of 5'",
    "str_map": 'a table of strings such as { LANG = "C" }',
}
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_N_OF_M = re.compile(r"\s*(\d+)\s+of\s+(\d+)\s*")
KINDS: Final = frozenset(get_args(Kind))
"""Every kind an :class:`Option` may declare."""
MAX_INT: Final = 2**63 - 1
"""The largest whole number a key takes, the largest a TOML integer holds."""
MAX_N_OF_M_WINDOW: Final = 1000
"""The most runs ``'N of M'`` may look back over; the history kept is M long."""
_PATH_HINT: Final = "write an absolute path, such as /var/log/syslog"


@dataclass(frozen=True)
class RunsOrDuration:
    """How long a condition must hold: a number of runs, or a duration."""

    runs: int = 1
    seconds: float = 0.0

    def __str__(self) -> str:
        return format_duration(self.seconds) if self.seconds else str(self.runs)


@dataclass(frozen=True)
class Option:
    """One key a table or a check type accepts.

    :param name: the key as written in TOML.
    :param kind: what the value must be; decides parsing and printing.
    :param default: the value when the key is absent; ``None`` means "not
        set" (and the key is printed as absent).
    :param help: one sentence for ``notifier plugins --verbose`` and the docs.
    :param minimum: smallest allowed value, for numbers, durations and sizes
        (compared with seconds or bytes), and list lengths.
    :param maximum: largest allowed value, like ``minimum``.
    :param choices: allowed words, for ``kind="choice"``; for ``kind="int"``,
        the allowed numbers written as strings (``("1", "5", "15")``).
    :param required: the key must be present.
    :param secret: the value is never printed or logged.
    """

    name: str
    kind: Kind
    default: Any = None
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    secret: bool = False

    def describe_kind(self) -> str:
        """Return what a valid value looks like, in words."""
        if self.kind == "choice":
            return "one of " + ", ".join(repr(choice) for choice in self.choices)
        if self.kind == "int" and self.choices:
            return "one of " + ", ".join(self.choices)
        return _KIND_WORDS[self.kind]


@dataclass(frozen=True)
class Problem:
    """A key whose value is wrong, before the caller adds file and table."""

    key: str | None
    message: str
    hint: str | None = None


class InvalidValue(ValueError):
    """A value does not fit its option; ``hint`` says what would."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """Return ``did you mean 'x'?`` for the nearest candidate, if any is close."""
    import difflib  # only on the way to an error message

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def coerce(option: Option, value: object) -> Any:
    """Return ``value`` parsed into the Python form of ``option.kind``.

    :raises InvalidValue: when the value does not fit; the message names the
        value and the hint says what a valid one looks like.
    """
    parsed = _parse(option, value)
    _check_bounds(option, parsed)
    return parsed


def _wrong(option: Option, value: object) -> InvalidValue:
    shown = "<hidden>" if option.secret else _short_repr(value)
    return InvalidValue(f"{shown} is not valid", f"expected {option.describe_kind()}")


def _parse(option: Option, value: object) -> Any:
    kind = option.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise _wrong(option, value)
    if isinstance(value, bool):
        raise _wrong(option, value)
    if kind == "str":
        if isinstance(value, str):
            return value
        raise _wrong(option, value)
    if kind == "int":
        return _parse_int(option, value)
    if kind == "float":
        return _parse_float(option, value)
    if kind == "duration":
        return _parse_duration(option, value)
    if kind == "size":
        if isinstance(value, int | str):
            try:
                return parse_size(value)
            except ValueError as exc:
                raise InvalidValue(str(exc)) from exc
        raise _wrong(option, value)
    if kind == "path":
        if isinstance(value, str):
            return _parse_path(value)
        raise _wrong(option, value)
    if kind in ("str_list", "path_list", "regex_list"):
        return _parse_list(option, value)
    if kind == "regex":
        return _parse_regex(option, value)
    if kind == "choice":
        if isinstance(value, str) and value in option.choices:
            return value
        hint = suggest(value, option.choices) if isinstance(value, str) else None
        error = _wrong(option, value)
        raise InvalidValue(error.message, hint or error.hint)
    if kind == "clock":
        match = _CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
        if match:
            return f"{int(match.group(1)):02d}:{match.group(2)}"
        if value == "":
            return ""
        raise _wrong(option, value)
    if kind == "cron":
        return _parse_cron(option, value)
    if kind == "runs_or_duration":
        if isinstance(value, int):
            if value > MAX_INT:
                msg = f"{_short_repr(value)} is too large"
                raise InvalidValue(msg, f"a count of runs is at most {MAX_INT}")
            if value < 1:
                msg = f"{value} is not valid"
                raise InvalidValue(msg, "a count of runs is >= 1")
            return RunsOrDuration(runs=value)
        return RunsOrDuration(runs=1, seconds=_parse_duration(option, value))
    if kind == "n_of_m":
        return _parse_n_of_m(option, value)
    if kind == "str_map":
        if isinstance(value, dict) and all(
            isinstance(item, str) for item in value.values()
        ):
            return dict(value)
        raise _wrong(option, value)
    msg = f"unknown option kind {kind!r}"
    raise AssertionError(msg)


def _parse_int(option: Option, value: object) -> int:
    if not isinstance(value, int):
        raise _wrong(option, value)
    if abs(value) > MAX_INT:
        msg = f"{_short_repr(value)} is too large"
        raise InvalidValue(msg, f"a whole number is at most {MAX_INT}")
    if option.choices and str(value) not in option.choices:
        msg = f"{value} is not valid"
        raise InvalidValue(msg, "use one of " + ", ".join(option.choices))
    return value


def _parse_float(option: Option, value: object) -> float:
    if not isinstance(value, int | float):
        raise _wrong(option, value)
    try:
        number = float(value)
    except OverflowError as exc:
        msg = f"{_short_repr(value)} is too large"
        raise InvalidValue(msg, "write a number of at most 308 digits") from exc
    if not math.isfinite(number):
        msg = f"{value!r} is not a finite number"
        raise InvalidValue(msg, "write an ordinary number such as 90 or 2.5")
    return number


def _parse_path(text: str) -> Path:
    """Return ``text`` as a path, which must be absolute: a daemon's working
    folder is nothing a sysadmin should have to think about."""
    if not text:
        msg = "an empty string is not a path"
        raise InvalidValue(msg, _PATH_HINT)
    if "\0" in text:
        msg = f"{_short_repr(text)} holds a NUL character, which no path can"
        raise InvalidValue(msg)
    if not text.startswith("/"):
        msg = f"{_short_repr(text)} is not an absolute path"
        raise InvalidValue(msg, _PATH_HINT)
    return Path(text)


def _short_repr(value: object, limit: int = 60) -> str:
    """Return ``repr(value)``, cut in the middle when longer than ``limit``."""
    text = repr(value) if not isinstance(value, int) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...{text[-limit // 2 :]} ({len(text)} characters)"


def _parse_duration(option: Option, value: object) -> float:
    if isinstance(value, int) and value == 0:
        return 0.0
    if not isinstance(value, str):
        hint = (
            f'write it as a string such as "{value}s"'
            if isinstance(value, int | float)
            else f"expected {option.describe_kind()}"
        )
        msg = f"{value!r} is not a duration"
        raise InvalidValue(msg, hint)
    try:
        return parse_duration(value)
    except ValueError as exc:
        if "longest" in str(exc):
            raise InvalidValue(str(exc)) from exc
        msg = f"{_short_repr(value)} is not a duration"
        raise InvalidValue(msg, _KIND_WORDS["duration"]) from exc


def _parse_cron(option: Option, value: object) -> str:
    if not isinstance(value, str):
        raise _wrong(option, value)
    if not value.strip():
        return ""

    # The scheduler's own parser decides, so what passes here also runs.
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value.strip(), timezone="UTC")
    except (ValueError, OverflowError) as exc:
        msg = f"{value!r} is not a crontab line: {exc}"
        raise InvalidValue(msg, _KIND_WORDS["cron"]) from exc
    return value.strip()


def _parse_list(option: Option, value: object) -> tuple[Any, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise _wrong(option, value)
    if option.kind == "path_list":
        return tuple(_parse_path(item) for item in items)
    if option.kind == "regex_list":
        for item in items:
            _parse_regex(option, item)
    return tuple(items)


def _parse_regex(option: Option, value: object) -> str:
    if not isinstance(value, str):
        raise _wrong(option, value)
    try:
        re.compile(value)
    except (re.error, OverflowError, RecursionError) as exc:
        msg = f"{_short_repr(value)} is not a valid regular expression: {exc}"
        raise InvalidValue(msg) from exc
    return value


def _parse_n_of_m(option: Option, value: object) -> tuple[int, int]:
    match = _N_OF_M.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _wrong(option, value)
    # Compared as text first: int() refuses numbers of 4300 digits and more.
    limit = str(MAX_N_OF_M_WINDOW)
    numbers = [text.lstrip("0") or "0" for text in match.groups()]
    if any((len(text), text) > (len(limit), limit) for text in numbers):
        msg = f"{_short_repr(value)} looks back over more runs than the maximum"
        raise InvalidValue(msg, f"use at most {limit} runs, such as '3 of 5'")
    bad, window = int(numbers[0]), int(numbers[1])
    if not 1 <= bad <= window:
        msg = f"{value!r} is not valid"
        raise InvalidValue(msg, "the first number is between 1 and the second")
    return (bad, window)


def _check_bounds(option: Option, parsed: Any) -> None:
    if option.minimum is None and option.maximum is None:
        return
    if isinstance(parsed, tuple):
        measure: float = len(parsed)
        noun = "entries"
    elif isinstance(parsed, int | float):
        measure = parsed
        noun = ""
    else:
        return

    def show(number: float) -> str:
        if option.kind == "duration":
            return format_duration(number)
        if option.kind == "size":
            return format_size(int(number))
        shown = str(number) if isinstance(number, int) else f"{number:g}"
        return shown + (f" {'entry' if number == 1 else noun}" if noun else "")

    if option.minimum is not None and measure < option.minimum:
        msg = f"{show(measure)} is below the minimum"
        raise InvalidValue(msg, f"use at least {show(option.minimum)}")
    if option.maximum is not None and measure > option.maximum:
        msg = f"{show(measure)} is above the maximum"
        raise InvalidValue(msg, f"use at most {show(option.maximum)}")


_DEFAULT_FORMS: Final[dict[str, tuple[tuple[type, ...], str]]] = {
    "str": ((str,), "a string"),
    "int": ((int,), "an int"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "True or False"),
    "duration": ((int, float), "a number of seconds"),
    "size": ((int,), "an int of bytes"),
    "path": ((Path,), "an absolute pathlib.Path"),
    "str_list": ((tuple, list), "a tuple of strings"),
    "path_list": ((tuple, list), "a tuple of absolute pathlib.Path"),
    "regex": ((str,), "a string"),
    "regex_list": ((tuple, list), "a tuple of strings"),
    "choice": ((str,), "one of its choices"),
    "clock": ((str,), "a string such as '08:00'"),
    "cron": ((str,), "a crontab line"),
    "runs_or_duration": ((RunsOrDuration,), "a notifier.options.RunsOrDuration"),
    "n_of_m": ((tuple,), "a tuple of two ints"),
    "str_map": ((dict,), "a dict of strings"),
}


def declaration_problem(option: object) -> str | None:
    """Return what is wrong with an option a plugin declared, or ``None``.

    A plugin's declaration is code nobody has checked: an unknown ``kind``,
    a bound that is not a number, or a default that is not of the declared
    kind would otherwise break ``config check``, ``config show`` and
    ``plugins --verbose`` far from its cause.

    :returns: a phrase to follow "option", such as ``'x' has kind 'bogus',
        which is not a kind``.
    """
    if not isinstance(option, Option):
        return (
            f"{_short_repr(option)} is a {type(option).__name__}, not a notifier.Option"
        )
    name: object = option.name
    if not isinstance(name, str) or not name:
        return f"{_short_repr(name)} has a name that is not a non-empty string"
    kind: object = option.kind
    if not isinstance(kind, str) or kind not in KINDS:
        hint = suggest(kind, sorted(KINDS)) if isinstance(kind, str) else None
        return f"{name!r} has kind {_short_repr(kind)}, which is not a kind" + (
            f" ({hint})" if hint else "; see notifier.options.Kind"
        )
    choices: object = option.choices
    if not isinstance(choices, tuple) or not all(isinstance(c, str) for c in choices):
        return f"{name!r} has choices that are not a tuple of strings"
    if kind == "choice" and not choices:
        return f"{name!r} is a choice without any choices"
    for word, bound in (("minimum", option.minimum), ("maximum", option.maximum)):
        if bound is not None and (
            isinstance(bound, bool)
            or not isinstance(bound, int | float)
            or not math.isfinite(bound)
        ):
            return f"{name!r} has a {word} of {_short_repr(bound)}, not a number"
    return _default_problem(option)


def _default_problem(option: Option) -> str | None:
    default: object = option.default
    if default is None:
        return None
    types, words = _DEFAULT_FORMS[option.kind]
    fits = isinstance(default, types) and (
        isinstance(default, bool) == (option.kind == "bool")
    )
    if fits and isinstance(default, tuple | list) and option.kind != "n_of_m":
        item_type = Path if option.kind == "path_list" else str
        fits = all(isinstance(item, item_type) for item in default)
    if not fits:
        return (
            f"{option.name!r} has the default {_short_repr(default)}, which is not "
            f"{words} as kind {option.kind!r} needs"
        )

    # The default must be a value a user could have written: `config show`
    # prints it, and the result must read back.
    try:
        coerce(option, present(option, default))
    except (InvalidValue, ValueError, TypeError, AttributeError) as exc:
        reason = exc.message if isinstance(exc, InvalidValue) else str(exc)
        return (
            f"{option.name!r} has the default {_short_repr(default)}, which is not "
            f"valid: {reason}"
        )
    return None


def validate_table(
    raw: Mapping[str, object],
    options: Sequence[Option],
    *,
    defaults: Mapping[str, Any] | None = None,
    extra_known: Iterable[str] = (),
) -> tuple[dict[str, Any], list[Problem]]:
    """Check ``raw`` against ``options`` and return the values and the problems.

    Every problem in the table is collected, none stops the others. Absent
    keys take ``defaults[name]`` when given, otherwise the option's default.

    :param extra_known: keys that are valid here but handled by the caller
        (such as ``name`` and ``type`` of a check); they are neither values nor
        unknown-key problems.
    """
    by_name = {option.name: option for option in options}
    known = set(by_name) | set(extra_known)
    values: dict[str, Any] = {}
    problems: list[Problem] = []

    # Unknown keys first, with the nearest known key as a hint.
    for key in raw:
        if key not in known:
            hint = suggest(key, known)
            problems.append(Problem(key, "is not a known key", hint))

    for option in options:
        if option.name in raw:
            try:
                values[option.name] = coerce(option, raw[option.name])
            except InvalidValue as exc:
                problems.append(Problem(option.name, exc.message, exc.hint))
        elif option.required:
            problems.append(Problem(option.name, "is required but missing"))
        elif defaults is not None and option.name in defaults:
            values[option.name] = defaults[option.name]
        else:
            values[option.name] = option.default
    return values, problems


def setting(
    kind: Kind,
    default: Any = None,
    help: str = "",
    *,
    key: str | None = None,
    **constraints: Any,
) -> Any:
    """Declare a field of a settings dataclass together with its option.

    :param key: the TOML key, when it differs from the field name (``from``
        and ``for`` are Python keywords).
    """
    option_fields = {"kind": kind, "default": default, "help": help, **constraints}
    return dataclasses.field(
        default=default, metadata={"option_fields": option_fields, "key": key}
    )


def options_of(cls: type[Any]) -> tuple[Option, ...]:
    """Return the options declared by the fields of a settings dataclass."""
    declared: list[Option] = []
    for field in dataclasses.fields(cls):
        if "option_fields" not in field.metadata:
            continue
        key = field.metadata["key"] or field.name
        declared.append(Option(name=key, **field.metadata["option_fields"]))
    return tuple(declared)


SettingsT = TypeVar("SettingsT")


def settings_from_values(cls: type[SettingsT], values: Mapping[str, Any]) -> SettingsT:
    """Build a settings dataclass from validated values keyed by TOML key."""
    arguments: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if "option_fields" not in field.metadata:
            continue
        key = field.metadata["key"] or field.name
        if key in values:
            arguments[field.name] = values[key]
    return cls(**arguments)


def settings_to_values(settings: object) -> dict[str, Any]:
    """Return a settings dataclass's values keyed by TOML key."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(settings):  # type: ignore[arg-type]
        if "option_fields" not in field.metadata:
            continue
        key = field.metadata["key"] or field.name
        values[key] = getattr(settings, field.name)
    return values


def present(option: Option, value: Any) -> Any:
    """Return ``value`` as it would be written in TOML (for ``config show``).

    Secrets come back as ``"<redacted>"``; ``None`` means "leave the key out".
    """
    if value is None:
        return None
    if option.secret:
        return "<redacted>" if value else ""
    if option.kind == "duration":
        return format_duration_exact(value)
    if option.kind == "size":
        # "976.6KiB" reads well but would not read back as 1000001 bytes.
        text = format_size(value)
        return text if parse_size(text) == value else value
    if option.kind == "path":
        return str(value)
    if option.kind in ("str_list", "path_list", "regex_list"):
        return [str(item) for item in value]
    if option.kind == "runs_or_duration":
        return value.runs if not value.seconds else format_duration_exact(value.seconds)
    if option.kind == "n_of_m":
        return f"{value[0]} of {value[1]}"
    if option.kind == "str_map":
        return dict(value)
    return value
