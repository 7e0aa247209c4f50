"""The contract every delivery transport keeps, and how failures are sorted.

A transport moves composed messages somewhere (an SMTP server, a folder, a
plugin's webhook). It is contributed through the ``notifier_transports`` hook
as a :class:`TransportType`; the outbox and the sender use any transport the
same way:

    with transport.session() as session:      # one connection per batch
        outcome = session.send(message, recipients)

Failures are exceptions sorted into three kinds (:class:`FailureKind`) that
decide what the outbox does next: retry later with backoff (transient), back
off the whole transport (auth), or dead-letter the message (permanent). This
module knows nothing of SMTP itself; see ``notifier.transports``.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from notifier.errors import (
    EX_NOPERM,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    ConfigError,
    ConfigProblem,
    NotifierError,
)

if TYPE_CHECKING:
    from email.message import EmailMessage

    from notifier.config import Config


class FailureKind(enum.StrEnum):
    """How a delivery failed, which decides what happens to the message."""

    TRANSIENT = "transient"
    """Connection, TLS, timeout or a 4xx reply: try again after a backoff."""
    AUTH = "auth"
    """The login was refused: the whole transport backs off."""
    PERMANENT = "permanent"
    """A 5xx refusal of the message: retrying will not help."""


class DeliveryError(NotifierError):
    """A delivery failed; ``kind`` says how, ``reply`` is the server's answer.

    :param message: what went wrong, in words, never holding a secret.
    :param code: the server's reply code, when there was one.
    :param reply: the server's reply text, when there was one.
    """

    kind: FailureKind = FailureKind.TRANSIENT
    exit_code = EX_UNAVAILABLE

    def __init__(
        self, message: str, *, code: int | None = None, reply: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply


class ServerUnavailable(DeliveryError):
    """The transport as a whole cannot deliver now: connection refused, TLS or
    certificate failure, timeout, STARTTLS missing, the server closing (421).

    Every queued message waits; the transport backs off.
    """

    kind = FailureKind.TRANSIENT
    exit_code = EX_UNAVAILABLE


class LoginDeferred(ServerUnavailable):
    """The server could not check the login right now (a 4xx reply to AUTH,
    such as ``454 4.7.0``): the transport backs off and tries again; the
    password is not known to be wrong."""

    kind = FailureKind.TRANSIENT
    exit_code = EX_TEMPFAIL


class AuthRefused(DeliveryError):
    """The server refused the login; one attempt per backoff step, not per
    message."""

    kind = FailureKind.AUTH
    exit_code = EX_NOPERM


class MessageRefused(DeliveryError):
    """The server refused this one message (MAIL FROM or DATA, or every
    recipient); the connection still serves the others.

    ``kind`` is PERMANENT for a 5xx reply and TRANSIENT for a 4xx one;
    ``permanent`` decides when there is no reply code.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        reply: str = "",
        permanent: bool | None = None,
    ) -> None:
        super().__init__(message, code=code, reply=reply)
        if permanent is None:
            permanent = code is not None and code >= 500
        self.kind = FailureKind.PERMANENT if permanent else FailureKind.TRANSIENT
        self.exit_code = EX_UNAVAILABLE if permanent else EX_TEMPFAIL


@dataclass(frozen=True)
class Refusal:
    """A recipient the server would not take, with its reply."""

    code: int
    reply: str

    @property
    def permanent(self) -> bool:
        """Return whether retrying this recipient is pointless (a 5xx reply)."""
        return self.code >= 500

    def __str__(self) -> str:
        return f"{self.code} {self.reply}".strip()


@dataclass(frozen=True)
class SendOutcome:
    """What became of one message handed to :meth:`Session.send`.

    :param delivered: the recipients the transport took responsibility for.
    :param refused: the recipients it would not take, each with the reply.
    :param reply: the server's final reply to the message, for people.
    """

    delivered: tuple[str, ...]
    refused: Mapping[str, Refusal] = field(default_factory=dict)
    reply: str = ""


class Session(Protocol):
    """One open connection (or its equivalent) serving a batch of messages."""

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> SendOutcome:
        """Deliver ``message`` to ``recipients`` (the envelope, not the headers).

        :returns: who got it and who was refused; a recipient refused alone
            does not raise.
        :raises MessageRefused: when the message itself is refused (the
            session stays usable for the next one).
        :raises ServerUnavailable: when the connection is lost or the
            server stops taking mail (the batch ends here).
        """
        ...


class Transport(Protocol):
    """A configured way of delivering mail; created once per configuration."""

    def describe(self) -> str:
        """Return where mail goes, for logs: ``smtp mail.example.com:465 (ssl)``."""
        ...

    def session(self) -> AbstractContextManager[Session]:
        """Open a session (connect, TLS, login) for a batch of messages.

        :raises ServerUnavailable: when it cannot be opened now.
        :raises AuthRefused: when the login is refused.
        :raises ConfigError: when the configuration cannot work (a password
            file readable by others, for example).
        """
        ...


@dataclass(frozen=True)
class TransportType:
    """A kind of transport that ``[mail] transport`` can name.

    :param name: the value of ``[mail] transport`` (``smtp``, ``file``).
    :param create: builds the transport from the whole validated
        configuration; called once per configuration (and after a reload).
    :param summary: one line for ``notifier plugins``.
    :param validate: optional; returns the problems of the configuration for
        this transport (a ``security = "none"`` towards another host, for
        example), so that ``notifier config check`` reports them.
    """

    name: str
    create: Callable[[Config], Transport]
    summary: str = ""
    validate: Callable[[Config], Sequence[ConfigProblem]] | None = None


def check_transport(
    config: Config, transport_types: Mapping[str, TransportType]
) -> None:
    """Validate the configuration against the transport it selects.

    :raises ConfigError: with every problem the transport found.
    """
    transport_type = transport_types.get(config.mail.transport)
    if transport_type is None or transport_type.validate is None:
        return
    problems = transport_type.validate(config)
    if problems:
        raise ConfigError(problems)


def create_transport(
    config: Config, transport_types: Mapping[str, TransportType]
) -> Transport:
    """Return the transport ``[mail] transport`` names, built from ``config``.

    :raises ConfigError: when no plugin provides it, or its configuration is
        wrong.
    """
    name = config.mail.transport
    transport_type = transport_types.get(name)
    if transport_type is None:
        known = ", ".join(repr(known) for known in sorted(transport_types))
        raise ConfigError.single(
            config.path,
            "mail",
            "transport",
            f"{name!r} is not a known transport",
            f"one of {known}",
        )
    check_transport(config, transport_types)
    return transport_type.create(config)


def is_loopback(host: str) -> bool:
    """Return whether ``host`` names this machine: 127.0.0.0/8, ::1, localhost."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
