"""``notifier plugins``: which check types exist, where each came from, and
(with ``--verbose``) every option each one takes.

The option listing is generated from the same :class:`notifier.Option`
declarations the config layer validates against, so it cannot disagree with
what ``notifier config check`` accepts.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import tomli_w

from notifier.cli import add_config_argument
from notifier.cli.output import reserved_stdout
from notifier.config import (
    COMMON_OPTIONS,
    NotifierSettings,
    parse_notifier_table,
    read_toml,
)
from notifier.errors import EX_OK, ConfigProblem
from notifier.loader import config_path
from notifier.options import InvalidValue, Option, coerce, options_of, present
from notifier.plugins import (
    DISABLE_ENV,
    Registry,
    build_registry,
    tracing_requested,
)
from notifier.units import format_duration, format_size

_LIST_KINDS: Final = ("str_list", "path_list", "regex_list")
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def register(subparsers: Any) -> None:
    """Add the ``plugins`` command."""
    parser = subparsers.add_parser(
        "plugins", help="list check types and the plugin each comes from"
    )
    add_config_argument(parser)
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print every option of every check type, and each plugin's hooks",
    )
    parser.set_defaults(handler=run_plugins)


def run_plugins(args: argparse.Namespace) -> int:
    """List the check types; the status stays 0 when plugins failed to load
    (the loader's log reports each on stderr).

    A duplicate check type name raises PluginError (exit 78).
    """
    plugin_dirs = _plugin_dirs(config_path(args.config))
    with _plugin_trace_on_stderr(), reserved_stdout():
        registry = build_registry(plugin_dirs)

    sys.stdout.write(render_types(registry))
    sys.stdout.write(render_transports(registry))
    if args.verbose:
        sys.stdout.write(render_options(registry))
        sys.stdout.write(render_plugins(registry))
    if registry.disabled:
        disabled = ", ".join(registry.disabled)
        print(f"notifier: disabled by ${DISABLE_ENV}: {disabled}", file=sys.stderr)
    return EX_OK


def _plugin_dirs(path: Path) -> tuple[Path, ...]:
    """Return the configuration's plugin folders; none when it does not exist.

    Without a file, built-in and installed plugins are still worth listing
    (a first look before writing the configuration).
    """
    if not path.exists() and not path.is_symlink():
        print(
            f"notifier: no configuration file at {path}; drop-in plugin folders "
            "are not searched (pass -c PATH to use one)",
            file=sys.stderr,
        )
        return ()
    raw = read_toml(path)
    _warn_of_unusable_plugin_dirs(raw, path)
    return parse_notifier_table(raw, path).plugin_dirs


def _warn_of_unusable_plugin_dirs(raw: dict[str, Any], path: Path) -> None:
    """Say on stderr why ``[notifier] plugin_dirs`` is not used, when it is
    invalid (``config check`` reports it too; here it explains why drop-ins
    are missing from the listing)."""
    table = raw.get("notifier")
    written = table.get("plugin_dirs") if isinstance(table, dict) else None
    if written is None:
        return
    option = next(o for o in options_of(NotifierSettings) if o.name == "plugin_dirs")
    try:
        coerce(option, written)
    except InvalidValue as exc:
        problem = ConfigProblem(path, "notifier", "plugin_dirs", exc.message, exc.hint)
        print(
            f"notifier: {problem.render()}; drop-in plugin folders are not searched",
            file=sys.stderr,
        )


@contextlib.contextmanager
def _plugin_trace_on_stderr() -> Iterator[None]:
    """Show the plugin loader's hook call trace on stderr when
    ``$NOTIFIER_TRACE_PLUGINS`` asks for it.

    Warnings and errors (a plugin that failed to load) reach stderr through
    the logging every one-shot command has; this adds the DEBUG records below
    them.
    """
    if not tracing_requested():
        yield
        return
    logger = logging.getLogger("notifier.plugins")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("notifier: %(message)s"))
    handler.addFilter(lambda record: record.levelno < logging.WARNING)
    previous_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def render_types(registry: Registry) -> str:
    """Return the table of check types: type, origin, summary."""
    rows = [
        (name, info.origin, info.check_type.summary)
        for name, info in sorted(registry.check_types.items())
    ]
    if not rows:
        return "no check types are available\n"
    return _table(("TYPE", "ORIGIN", "SUMMARY"), rows)


def render_transports(registry: Registry) -> str:
    """Return the table of delivery transports ``[mail] transport`` can name."""
    rows = [
        (name, info.origin, info.transport_type.summary)
        for name, info in sorted(registry.transports.items())
    ]
    if not rows:
        return "\nno transports are available\n"
    return "\n" + _table(("TRANSPORT", "ORIGIN", "SUMMARY"), rows)


def render_options(registry: Registry) -> str:
    """Return every option of every check type, then the common ones once."""
    blocks: list[str] = []
    for name, info in sorted(registry.check_types.items()):
        lines = [f"{name} ({info.origin})"]
        if info.check_type.summary:
            lines.append(f"  {info.check_type.summary}")
        if info.check_type.options:
            lines.extend(_option_lines(info.check_type.options))
        else:
            lines.append("  (no options of its own)")
        blocks.append("\n".join(lines))
    common = ["options every check has (set per check, or for all in [defaults]):"]
    common.extend(_option_lines(COMMON_OPTIONS))
    blocks.append("\n".join(common))
    return "\n" + "\n\n".join(blocks) + "\n"


def render_plugins(registry: Registry) -> str:
    """Return the loaded plugins: name (for $NOTIFIER_DISABLE_PLUGINS), origin,
    hooks."""
    rows = [
        (info.name, info.origin, ", ".join(info.hooks) or "-")
        for info in registry.plugins
    ]
    if not rows:
        return "\nno plugins loaded\n"
    return "\nplugins:\n" + _table(("NAME", "ORIGIN", "HOOKS"), rows, indent="  ")


def _option_lines(options: Sequence[Option]) -> list[str]:
    lines: list[str] = []
    for option in options:
        facts = [option.describe_kind()]
        if option.required:
            facts.append("required")
        else:
            facts.append(f"default {_default_text(option)}")
        facts.extend(_bounds(option))
        if option.secret:
            facts.append("secret, never printed")
        lines.append(f"  {option.name}: {'; '.join(facts)}")
        if option.help:
            lines.append(f"      {option.help}")
    return lines


def _default_text(option: Option) -> str:
    """Return the default as it would be written in TOML, or 'not set'."""
    shown = present(option, option.default)
    if shown is None:
        return "not set"
    return _toml_value(shown)


def _toml_value(value: Any) -> str:
    """Return ``value`` as TOML on one line; tables come out inline."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        pairs = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()]
        return "{ " + ", ".join(pairs) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_value(key)


def _bounds(option: Option) -> list[str]:
    described: list[str] = []
    for word, limit in (("at least", option.minimum), ("at most", option.maximum)):
        if limit is not None:
            described.append(f"{word} {_limit_text(option, limit)}")
    return described


def _limit_text(option: Option, limit: float) -> str:
    if option.kind == "duration":
        return format_duration(limit)
    if option.kind == "size":
        return format_size(int(limit))
    if option.kind in _LIST_KINDS:
        return f"{limit:g} entr{'y' if limit == 1 else 'ies'}"
    return f"{limit:g}"


def _table(
    header: tuple[str, ...], rows: Iterable[tuple[str, ...]], indent: str = ""
) -> str:
    """Return rows in left-aligned columns; the last column is not padded."""
    every = [header, *rows]
    widths = [max(len(row[i]) for row in every) for i in range(len(header) - 1)]
    lines = []
    for row in every:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append(indent + "  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"
