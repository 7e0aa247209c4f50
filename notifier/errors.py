"""The one hierarchy of errors the user can see, each with its exit status.

Exit statuses follow sysexits(3), as the design's user contract says. Only the
CLI turns these into text and an exit code; everything below it raises.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

EX_OK: Final = 0
EX_USAGE: Final = 64
EX_DATAERR: Final = 65
EX_UNAVAILABLE: Final = 69
EX_SOFTWARE: Final = 70
EX_TEMPFAIL: Final = 75
EX_NOPERM: Final = 77
EX_CONFIG: Final = 78

_PLAIN_NAME: Final = re.compile(r"[\w.@-]+")


class NotifierError(Exception):
    """Base of every error meant for a person; ``exit_code`` is the status."""

    exit_code: int = EX_SOFTWARE


class UsageError(NotifierError):
    """The command line itself is wrong."""

    exit_code = EX_USAGE


class DataError(NotifierError):
    """An input file other than the configuration is malformed."""

    exit_code = EX_DATAERR


class UnavailableError(NotifierError):
    """A service we need (the mail server, a socket) cannot be reached."""

    exit_code = EX_UNAVAILABLE


class TemporaryError(NotifierError):
    """A failure that may go away by itself; try again later."""

    exit_code = EX_TEMPFAIL


class PermissionRefusedError(NotifierError):
    """Permission or authentication was refused."""

    exit_code = EX_NOPERM


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a configuration file.

    ``location`` names the table or entry (``smtp``, ``[[check]] "root-disk"``)
    and ``key`` the key inside it, when there is one.
    """

    path: Path | None
    location: str
    key: str | None
    message: str
    hint: str | None = None

    def render(self) -> str:
        """Return the problem as one line a sysadmin can act on."""
        where = str(self.path) if self.path is not None else "<config>"
        place = self.location
        if place and not place.startswith("["):
            place = f"[{_printable(place)}]"
        if self.key is not None:
            key = _printable(self.key)
            place = f"{place} {key}" if place else key
        if place:
            where = f"{where}: {place}"
        text = f"{where}: {self.message}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


def _printable(name: str) -> str:
    """Return a key as written, or quoted when it holds odd characters.

    A TOML key may contain anything, even a newline; quoting keeps every
    problem on one line.
    """
    return name if _PLAIN_NAME.fullmatch(name) else repr(name)


class ConfigError(NotifierError):
    """The configuration is wrong; carries every problem found, not just one."""

    exit_code = EX_CONFIG

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problem.render() for problem in self.problems))

    @classmethod
    def single(
        cls,
        path: Path | None,
        location: str,
        key: str | None,
        message: str,
        hint: str | None = None,
    ) -> ConfigError:
        """Build an error holding exactly one problem."""
        return cls([ConfigProblem(path, location, key, message, hint)])


class PluginError(NotifierError):
    """A plugin could not be loaded or broke the hook contract.

    ``origin`` names the plugin's file or distribution, so the message says
    whose code is at fault.
    """

    exit_code = EX_CONFIG

    def __init__(self, origin: str, message: str) -> None:
        self.origin = origin
        super().__init__(f"plugin {origin}: {message}")
