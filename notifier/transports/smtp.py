"""The ``smtp`` transport, as a plugin: its checks of ``[smtp]`` and its maker.

The client itself (:mod:`notifier.transports.smtp_client`) is imported when
the transport is made: ``smtplib`` brings ``ssl`` and OpenSSL, about 5 MiB
resident, which a daemon that delivers by another transport never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifier import hookimpl
from notifier.config import Config
from notifier.errors import ConfigProblem
from notifier.secrets import password_problems
from notifier.transport import TransportType, is_loopback

if TYPE_CHECKING:
    from notifier.transports.smtp_client import SmtpTransport


def validate(config: Config) -> list[ConfigProblem]:
    """Return the problems of ``[smtp]`` that no connection attempt is needed
    to see: clear text to another host, a login without TLS, unsafe
    password sources."""
    smtp = config.smtp
    problems: list[ConfigProblem] = []
    if smtp.security == "none" and not is_loopback(smtp.host):
        problems.append(
            ConfigProblem(
                config.path,
                "smtp",
                "security",
                f'"none" (clear text) is only allowed towards this machine, '
                f"not {smtp.host!r}",
                'use "ssl" (port 465) or "starttls" (port 587)',
            )
        )
    if smtp.security == "none" and smtp.username:
        problems.append(
            ConfigProblem(
                config.path,
                "smtp",
                "username",
                'a login is never sent in clear text (security = "none")',
                'remove username, or use security = "ssl" or "starttls"',
            )
        )
    if smtp.username:
        problems.extend(password_problems(smtp, config.path))
    return problems


def create(config: Config) -> SmtpTransport:
    """Build the ``smtp`` transport from the configuration."""
    from notifier.transports.smtp_client import SmtpTransport

    return SmtpTransport(config.smtp, config.notifier.hostname, config.path)


@hookimpl
def notifier_transports() -> list[TransportType]:
    """Provide the built-in ``smtp`` transport."""
    return [
        TransportType(
            name="smtp",
            create=create,
            summary="SMTP over implicit TLS (465), STARTTLS (587) or, on "
            "loopback only, plain",
            validate=validate,
        )
    ]
