"""Where the SMTP password comes from, and keeping it out of sight.

Four sources, of which the configuration may name at most one of the first
three:

1. ``[smtp] password_file``: a file readable by its owner only;
2. ``[smtp] password_env``: an environment variable;
3. ``[smtp] password``: inline, only when the configuration file itself is
   readable by its owner only;
4. otherwise the systemd credential ``$CREDENTIALS_DIRECTORY/smtp-password``
   (``LoadCredential=smtp-password:...`` in the unit).

The password is read when a connection is opened, so a rotated file is
picked up without a restart. It travels as a :class:`Secret`, whose ``repr``
and ``str`` never show it; no error message here quotes it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from notifier.config import SmtpSettings
from notifier.errors import ConfigError, ConfigProblem

CREDENTIAL_NAME: Final = "smtp-password"
_SHARED_READ: Final = stat.S_IRGRP | stat.S_IROTH


class Secret:
    """A password that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the password itself; only for handing it to the server."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('<redacted>')"

    def __str__(self) -> str:
        return "<redacted>"


def password_problems(
    smtp: SmtpSettings, config_path: Path | None
) -> list[ConfigProblem]:
    """Return what is wrong with how the password is configured.

    Checks what can be checked without the secret itself: only one source
    named, the password file not readable by group or other, an inline
    password only in a file readable by its owner alone.
    """
    problems: list[ConfigProblem] = []
    named = [
        key
        for key, present in (
            ("password", bool(smtp.password)),
            ("password_file", smtp.password_file is not None),
            ("password_env", bool(smtp.password_env)),
        )
        if present
    ]
    if len(named) > 1:
        problems.append(
            ConfigProblem(
                config_path,
                "smtp",
                named[1],
                "only one password source may be set, but "
                + " and ".join(named)
                + " are",
                "keep password_file and remove the others",
            )
        )
    if smtp.password_file is not None:
        problem = _file_problem(smtp.password_file, config_path)
        if problem is not None:
            problems.append(problem)
    if smtp.password and config_path is not None:
        problem = _inline_problem(config_path)
        if problem is not None:
            problems.append(problem)
    return problems


def _mode_of(path: Path) -> int | None:
    try:
        return path.stat().st_mode
    except OSError:
        return None


def _file_problem(path: Path, config_path: Path | None) -> ConfigProblem | None:
    mode = _mode_of(path)
    if mode is None:
        # A missing file is reported when the password is needed, with the
        # reason; `config check` may well run before the file is installed.
        return None
    if mode & _SHARED_READ:
        return ConfigProblem(
            config_path,
            "smtp",
            "password_file",
            f"{str(path)!r} is readable by group or other "
            f"(mode {stat.S_IMODE(mode):04o})",
            f"chmod 600 {path}",
        )
    return None


def _inline_problem(config_path: Path) -> ConfigProblem | None:
    mode = _mode_of(config_path)
    if mode is None or not mode & _SHARED_READ:
        return None
    return ConfigProblem(
        config_path,
        "smtp",
        "password",
        "an inline password needs a configuration file readable by its owner "
        f"only, but this one is mode {stat.S_IMODE(mode):04o}",
        f"chmod 600 {config_path}, or move the password to password_file",
    )


def resolve_password(
    smtp: SmtpSettings,
    config_path: Path | None,
    environ: Mapping[str, str] | None = None,
) -> Secret | None:
    """Return the SMTP password from the configured source, or ``None``.

    ``None`` means no source is configured and no systemd credential exists.

    :param environ: the environment to read (``os.environ`` by default).
    :raises ConfigError: when a source is unsafe (readable by others) or
        named but unusable (missing file, unset variable); the message names
        the source, never the password.
    """
    env = os.environ if environ is None else environ
    problems = password_problems(smtp, config_path)
    if problems:
        raise ConfigError(problems)

    if smtp.password_file is not None:
        return Secret(
            _read_secret_file(smtp.password_file, config_path, "password_file")
        )
    if smtp.password_env:
        value = env.get(smtp.password_env)
        if not value:
            raise ConfigError.single(
                config_path,
                "smtp",
                "password_env",
                f"the environment variable {smtp.password_env!r} is not set or empty",
                "set it in the service's environment, or use password_file",
            )
        if not _is_utf8(value):
            # Bytes that are not UTF-8 arrive as lone surrogates and could
            # not be sent; the error names the variable, never the value.
            raise ConfigError.single(
                config_path,
                "smtp",
                "password_env",
                f"the environment variable {smtp.password_env!r} is not UTF-8 text",
                "set it to the password encoded as UTF-8",
            )
        return Secret(value)
    if smtp.password:
        return Secret(smtp.password)
    directory = env.get("CREDENTIALS_DIRECTORY")
    if directory:
        credential = Path(directory) / CREDENTIAL_NAME
        if credential.exists():
            return Secret(_read_secret_file(credential, config_path, None))
    return None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_secret_file(path: Path, config_path: Path | None, key: str | None) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError.single(
            config_path,
            "smtp",
            key,
            f"cannot read the password from {str(path)!r}: {reason or exc}",
            "the file must exist and be readable by the daemon's user",
        ) from None

    # One trailing newline is how editors and `echo` write files; it is
    # not part of the password.
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise ConfigError.single(
            config_path, "smtp", key, f"the password file {str(path)!r} is empty"
        )
    return text
