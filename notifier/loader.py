"""Loading a configuration together with the plugins it names.

``[notifier] plugin_dirs`` decides which plugins exist, and the plugins decide
which ``[[check]]`` types are valid, so loading is two steps; this module is
the one place that does both in order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from notifier.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    build_config,
    parse_notifier_table,
    read_toml,
)
from notifier.errors import ConfigProblem
from notifier.plugins import Registry, build_registry
from notifier.transport import TransportType


@dataclass(frozen=True)
class Loaded:
    """A validated configuration and the registry it was validated against."""

    config: Config
    registry: Registry


def config_path(explicit: str | None) -> Path:
    """Return the configuration path: ``-c``, else ``$NOTIFIER_CONFIG``, else
    the system default."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("NOTIFIER_CONFIG")
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_PATH


def load(path: Path) -> Loaded:
    """Read ``path``, build the plugins it names, and validate it.

    The selected transport's own checks (an inline password in a file others
    can read, for instance) are reported together with every other problem.

    :raises ConfigError: with every problem in the file.
    :raises PluginError: when plugins conflict.
    """
    raw = read_toml(path)
    notifier_settings = parse_notifier_table(raw, path)
    registry = build_registry(notifier_settings.plugin_dirs)
    transports = registry.transport_map()
    config = build_config(
        raw,
        path,
        registry.check_type_map(),
        tuple(transports),
        validate=lambda config: _transport_problems(config, transports),
        unknown_type_hint=registry.missing_type_hint,
    )
    return Loaded(config, registry)


def _transport_problems(
    config: Config, transport_types: Mapping[str, TransportType]
) -> Sequence[ConfigProblem]:
    transport_type = transport_types.get(config.mail.transport)
    if transport_type is None or transport_type.validate is None:
        return ()
    try:
        return list(transport_type.validate(config))
    except Exception as exc:
        # A transport plugin's bug, reported where it shows rather than as ours.
        message = (
            f"transport {transport_type.name!r} failed to check the configuration: "
            f"{type(exc).__name__}: {exc}"
        )
        return [ConfigProblem(config.path, "mail", "transport", message)]
