"""The ``smtp`` transport's client: implicit TLS, STARTTLS or plain SMTP.

One :meth:`SmtpTransport.session` is one connection: connect, TLS with
``ssl.create_default_context()`` (verification on unless ``verify = false``),
EHLO as the configured host name, one login, then any number of messages,
then QUIT (or a close when QUIT is impossible). Every socket operation has
``[smtp] timeout``. ``smtplib`` exceptions are sorted into the three failure
kinds of :mod:`notifier.transport` with a message saying what went wrong and,
for the classic mistakes (implicit TLS against a STARTTLS port and the
reverse, a certificate for another name or from an unknown CA), what to
change.

A :class:`SmtpObserver` may watch each step; ``notifier test-send`` uses one
to print them. The SMTP dialogue can be followed with the AUTH exchange
masked: smtplib's own debug output would print the base64 credentials.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import smtplib
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final

from notifier.compose import ascii_domain, message_size, shrink_to_fit
from notifier.config import SmtpSettings
from notifier.errors import ConfigError
from notifier.secrets import Secret, resolve_password
from notifier.transport import (
    AuthRefused,
    DeliveryError,
    LoginDeferred,
    MessageRefused,
    Refusal,
    SendOutcome,
    ServerUnavailable,
)
from notifier.transports.smtp_errors import describe_connect_failure, reply_text

log = logging.getLogger(__name__)

DEFAULT_PORTS: Final = {"ssl": 465, "starttls": 587, "none": 25}
_MECHANISMS: Final = ("PLAIN", "LOGIN", "CRAM-MD5")
_LONGEST_DIALOGUE_LINE: Final = 300


@dataclass(frozen=True)
class TlsInfo:
    """The TLS connection as established, for ``test-send`` to show.

    :param not_after: when the server's certificate expires; ``None`` when
        the certificate was not verified (Python then does not decode it).
    """

    version: str
    cipher: str
    subject: str
    issuer: str
    not_after: datetime | None
    verified: bool
    names: tuple[str, ...] = ()


class SmtpObserver:
    """Watches a session's steps; every method does nothing unless overridden."""

    def connecting(self, host: str, port: int, security: str) -> None:
        """Called before the TCP connection (and, for ``ssl``, the handshake)."""

    def connected(self, greeting: str) -> None:
        """Called with the server's 220 greeting."""

    def tls_established(self, info: TlsInfo) -> None:
        """Called once TLS is up (right away for ``ssl``, after STARTTLS)."""

    def ehlo(self, features: dict[str, str]) -> None:
        """Called with the EHLO extensions (lower-case names) the server offers."""

    def logging_in(self, username: str, mechanism: str) -> None:
        """Called before the one login attempt."""

    def logged_in(self, reply: str) -> None:
        """Called with the server's reply to a successful login."""

    def sending(self, sender: str, recipients: Sequence[str], size: int) -> None:
        """Called before a message goes out; ``size`` in bytes."""

    def sent(self, outcome: SendOutcome) -> None:
        """Called with what became of the message."""

    def dialogue(self, line: str) -> None:
        """Called with each line of the SMTP dialogue, AUTH masked, when
        :attr:`wants_dialogue` is true."""

    wants_dialogue: bool = False


class _DialogueMixin(smtplib.SMTP):
    """smtplib with the dialogue routed to a callback and credentials masked."""

    on_dialogue: Callable[[str], None] | None = None
    greeting: str = ""
    last_reply: str = ""
    _in_auth: bool = False

    def _print_debug(self, *args: Any) -> None:
        if self.on_dialogue is None:
            return
        text = " ".join(str(arg) for arg in args)
        if self._in_auth and text.startswith("send:"):
            # Every line sent during AUTH carries the credentials in base64;
            # keep only the command and mechanism name.
            words = text.replace("\\r\\n", " ").split()
            shown = " ".join(words[1:3]).strip("'\"") if len(words) > 1 else ""
            if shown.upper().startswith("AUTH"):
                text = f"send: {shown} <credentials masked>"
            else:
                text = "send: <credentials masked>"
        elif len(text) > _LONGEST_DIALOGUE_LINE:
            text = f"{text[:_LONGEST_DIALOGUE_LINE]}... ({len(text)} characters)"
        self.on_dialogue(text)

    def connect(
        self, host: str = "localhost", port: int = 0, source_address: Any = None
    ) -> tuple[int, bytes]:
        # smtplib reads `_host` for SNI and the certificate's host-name check
        # (SMTP_SSL and starttls); it is set only when the constructor
        # connects, and we connect ourselves to see every step.
        self._host = host
        code, message = super().connect(host, port, source_address)
        self.greeting = message.decode("utf-8", "replace")
        return code, message

    def authenticate(
        self, mechanism: str, username: str, password: str
    ) -> tuple[int, bytes]:
        """Log in with ``mechanism`` (PLAIN, LOGIN or CRAM-MD5), once.

        Credentials go as UTF-8: smtplib's own ``auth`` encodes them as
        ASCII and fails on a password like ``pässwörd``, while RFC 4616
        (PLAIN) asks for UTF-8 and servers read LOGIN the same way.

        :returns: the server's reply to a successful login.
        :raises smtplib.SMTPAuthenticationError: with the server's reply when
            it refuses (or when the exchange had to be cancelled).
        """
        initial, answer = _login_dialogue(mechanism, username, password)
        command = mechanism if initial is None else f"{mechanism} {_utf8_b64(initial)}"
        self._in_auth = True
        try:
            code, reply = self.docmd("AUTH", command)
            challenges = 0
            while code == 334:
                challenges += 1
                response = answer(reply, challenges)
                if response is None:
                    # RFC 4954: a lone "*" cancels the exchange.
                    code, reply = self.docmd("*")
                    break
                code, reply = self.docmd(_utf8_b64(response))
        finally:
            self._in_auth = False
        if code in (235, 503):  # 503: this session is logged in already
            return code, reply
        raise smtplib.SMTPAuthenticationError(code, reply)

    def data(self, msg: Any) -> tuple[int, bytes]:
        code, reply = super().data(msg)
        self.last_reply = f"{code} {reply.decode('utf-8', 'replace')}"
        return code, reply


def _utf8_b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _login_dialogue(
    mechanism: str, username: str, password: str
) -> tuple[str | None, Callable[[bytes, int], str | None]]:
    """Return the initial response of a login and how to answer the server's
    challenges (``None``: cancel the exchange)."""
    if mechanism == "PLAIN":
        return f"\0{username}\0{password}", lambda challenge, number: None
    if mechanism == "LOGIN":
        # The username goes with the command; the one challenge asks for
        # the password.
        return username, lambda challenge, number: password if number == 1 else None

    def cram_md5(challenge: bytes, number: int) -> str | None:
        if number != 1:
            return None
        try:
            nonce = base64.b64decode(challenge, validate=True)
        except binascii.Error:
            return None
        digest = hmac.new(password.encode("utf-8"), nonce, "md5").hexdigest()
        return f"{username} {digest}"

    return None, cram_md5


class _PlainClient(_DialogueMixin, smtplib.SMTP):
    """Plain SMTP, upgraded by STARTTLS unless ``security = "none"``."""


class _ImplicitTlsClient(_DialogueMixin, smtplib.SMTP_SSL):
    """SMTP inside TLS from the first byte (``security = "ssl"``)."""


def tls_context(smtp: SmtpSettings) -> ssl.SSLContext:
    """Return the TLS context for ``smtp``: system CAs plus ``ca_file``,
    verification and host-name checks on unless ``verify = false``."""
    cafile = str(smtp.ca_file) if smtp.ca_file is not None else None
    context = ssl.create_default_context(cafile=cafile)
    if not smtp.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _tls_info(client: smtplib.SMTP, verified: bool) -> TlsInfo:
    sock = client.sock
    if not isinstance(sock, ssl.SSLSocket):
        msg = "TLS information asked of a connection without TLS"
        raise TypeError(msg)
    cert = sock.getpeercert() or {}
    cipher = sock.cipher()
    not_after_text = cert.get("notAfter")
    not_after = None
    if isinstance(not_after_text, str):
        seconds = ssl.cert_time_to_seconds(not_after_text)
        not_after = datetime.fromtimestamp(seconds, tz=UTC)
    return TlsInfo(
        version=sock.version() or "?",
        cipher=cipher[0] if cipher else "?",
        subject=_name_of(cert.get("subject")),
        issuer=_name_of(cert.get("issuer")),
        not_after=not_after,
        verified=verified,
        names=_alt_names(cert.get("subjectAltName")),
    )


def _alt_names(entries: Any) -> tuple[str, ...]:
    if not isinstance(entries, tuple):
        return ()
    return tuple(str(entry[1]) for entry in entries if len(entry) == 2)


def _name_of(rdns: Any) -> str:
    if not rdns:
        return "?"
    parts = [f"{key}={value}" for rdn in rdns for key, value in rdn]
    return ", ".join(parts)


class SmtpTransport:
    """Delivers through one SMTP server as ``[smtp]`` describes it.

    :param smtp: the ``[smtp]`` settings.
    :param hostname: the name to greet with in EHLO (``[notifier] hostname``),
        so sending never depends on a reverse DNS lookup.
    :param config_path: the configuration file, for error messages and the
        inline-password permission check.
    :param observer: watches each step (``notifier test-send``).
    """

    def __init__(
        self,
        smtp: SmtpSettings,
        hostname: str,
        config_path: Path | None = None,
        observer: SmtpObserver | None = None,
    ) -> None:
        self.settings = smtp
        self.hostname = hostname
        self.config_path = config_path
        self.observer = observer or SmtpObserver()
        self.port = smtp.port or DEFAULT_PORTS[smtp.security]
        if not smtp.verify:
            log.warning(
                "smtp %s:%d: certificate verification is OFF ([smtp] verify = "
                "false); anyone on the network path can read the mail and the "
                "password",
                smtp.host,
                self.port,
            )

    def describe(self) -> str:
        """Return ``smtp HOST:PORT (SECURITY)``."""
        return f"smtp {self.settings.host}:{self.port} ({self.settings.security})"

    @contextmanager
    def session(self) -> Iterator[SmtpSession]:
        """Connect, secure, log in; yield a session; QUIT (or close) after.

        :raises ServerUnavailable: when the server cannot be reached, TLS or
            the certificate fails, or STARTTLS is not offered.
        :raises AuthRefused: when the login is refused.
        :raises ConfigError: when a login is configured but the password
            cannot be read safely.
        """
        client = self._new_client()
        try:
            size_limit = self._open(client)
            yield SmtpSession(self, client, size_limit)
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()

    def _new_client(self) -> _DialogueMixin:
        settings = self.settings
        # EHLO takes an ASCII domain; a host name like "hôst-ü.example" goes
        # in its IDNA form (smtplib would fail to encode it otherwise).
        ehlo_name = ascii_domain(self.hostname)
        client: _DialogueMixin
        if settings.security == "ssl":
            client = _ImplicitTlsClient(
                local_hostname=ehlo_name,
                timeout=settings.timeout,
                context=tls_context(settings),
            )
        else:
            client = _PlainClient(local_hostname=ehlo_name, timeout=settings.timeout)
        if self.observer.wants_dialogue or log.isEnabledFor(logging.DEBUG):
            client.on_dialogue = self._dialogue
            client.set_debuglevel(1)
        return client

    def _dialogue(self, line: str) -> None:
        if self.observer.wants_dialogue:
            self.observer.dialogue(line)
        else:
            log.debug("smtp %s:%d: %s", self.settings.host, self.port, line)

    def _open(self, client: _DialogueMixin) -> int | None:
        settings = self.settings
        self.observer.connecting(settings.host, self.port, settings.security)
        try:
            self._connect(client)
            if settings.username:
                self._login(client)
        except DeliveryError:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            reason = describe_connect_failure(exc, settings, self.port)
            code = getattr(exc, "smtp_code", None)
            msg = f"smtp {settings.host}:{self.port}: {reason}"
            raise ServerUnavailable(msg, code=code) from exc
        size = client.esmtp_features.get("size", "").strip()
        return int(size) if size.isdigit() and int(size) > 0 else None

    def _connect(self, client: _DialogueMixin) -> None:
        settings = self.settings
        code, _ = client.connect(settings.host, self.port)
        if code != 220:
            msg = (
                f"smtp {settings.host}:{self.port}: greeted with {code} "
                f"{client.greeting}"
            )
            raise ServerUnavailable(msg, code=code, reply=client.greeting)
        self.observer.connected(f"{code} {client.greeting}")
        if settings.security == "ssl":
            self.observer.tls_established(_tls_info(client, settings.verify))
        self._ehlo(client)

        if settings.security == "starttls":
            if not client.has_extn("starttls"):
                msg = (
                    f"smtp {settings.host}:{self.port}: the server does not offer "
                    "STARTTLS; refusing to continue in clear text (if this port "
                    'speaks implicit TLS, set security = "ssl")'
                )
                raise ServerUnavailable(msg)
            client.starttls(context=tls_context(settings))
            self.observer.tls_established(_tls_info(client, settings.verify))
            self._ehlo(client)

    def _ehlo(self, client: _DialogueMixin) -> None:
        code, reply = client.ehlo()
        if code != 250:
            text = reply.decode("utf-8", "replace")
            msg = f"smtp {self.settings.host}:{self.port}: EHLO refused: {code} {text}"
            raise ServerUnavailable(msg, code=code, reply=text)
        self.observer.ehlo(dict(client.esmtp_features))

    def _login(self, client: _DialogueMixin) -> None:
        settings = self.settings
        where = f"smtp {settings.host}:{self.port}"
        if settings.security == "none" or not isinstance(client.sock, ssl.SSLSocket):
            msg = f"{where}: a login is never sent without TLS"
            raise ConfigError.single(
                self.config_path,
                "smtp",
                "username",
                msg,
                'use security = "ssl" or "starttls", or remove username',
            )
        password = resolve_password(settings, self.config_path)
        if password is None:
            raise ConfigError.single(
                self.config_path,
                "smtp",
                "username",
                f"is {settings.username!r} but no password is configured",
                "set password_file (or password_env, or the systemd credential "
                "smtp-password)",
            )
        offered = client.esmtp_features.get("auth", "").upper().split()
        mechanism = next((m for m in _MECHANISMS if m in offered), None)
        if mechanism is None:
            shown = " ".join(offered) or "none"
            msg = (
                f"{where}: the server offers no login method we speak "
                f"(AUTH mechanisms offered: {shown}); check host and port, or "
                "remove username if this server needs no login"
            )
            raise AuthRefused(msg)
        self._authenticate(client, mechanism, password)

    def _authenticate(
        self, client: _DialogueMixin, mechanism: str, password: Secret
    ) -> None:
        # One mechanism, one attempt: smtplib's login() would try every
        # mechanism in turn, and a refused password then costs several
        # attempts, which servers count towards locking the account.
        settings = self.settings
        where = f"smtp {settings.host}:{self.port}"
        self.observer.logging_in(settings.username, mechanism)
        try:
            code, reply = client.authenticate(
                mechanism, settings.username, password.reveal()
            )
        except smtplib.SMTPAuthenticationError as exc:
            text = reply_text(exc.smtp_error)
            if 400 <= exc.smtp_code < 500:
                msg = (
                    f"{where}: the server could not check the login right now: "
                    f"{exc.smtp_code} {text}; it will be tried again later"
                )
                raise LoginDeferred(msg, code=exc.smtp_code, reply=text) from None
            msg = (
                f"{where}: login as {settings.username!r} refused: "
                f"{exc.smtp_code} {text}; check username and password_file"
            )
            raise AuthRefused(msg, code=exc.smtp_code, reply=text) from None
        except (smtplib.SMTPException, OSError):
            raise
        except Exception as exc:
            # Whatever else broke here may quote the credentials in its text
            # (an encoding error names the character and its position), so
            # only its type goes on, never its message or its chain.
            msg = (
                f"{where}: the login failed with an unexpected "
                f"{type(exc).__name__}; its message is not shown, as it may "
                "hold the password"
            )
            raise ServerUnavailable(msg) from None
        self.observer.logged_in(f"{code} {reply.decode('utf-8', 'replace')}")


class SmtpSession:
    """One open, logged-in SMTP connection; see :class:`notifier.transport.Session`."""

    def __init__(
        self, transport: SmtpTransport, client: _DialogueMixin, size_limit: int | None
    ) -> None:
        self._transport = transport
        self._client = client
        self.size_limit = size_limit

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> SendOutcome:
        """Send ``message`` to ``recipients``; see the protocol for errors.

        A message larger than the server's advertised SIZE is first shrunk
        (attachments cut or dropped, the body saying so) rather than sent to
        be refused.
        """
        client = self._client
        transport = self._transport
        where = f"smtp {transport.settings.host}:{transport.port}"
        message, size = self._fit(message)
        sender = message.get("From", "")
        transport.observer.sending(str(sender), recipients, size)

        try:
            refused = client.send_message(message, to_addrs=list(recipients))
        except smtplib.SMTPRecipientsRefused as exc:
            if client.sock is None:
                raise _closed(where, exc.recipients) from exc
            refused = exc.recipients
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            text = reply_text(exc.smtp_error)
            if client.sock is None:
                msg = (
                    f"{where}: the server closed the connection: {exc.smtp_code} {text}"
                )
                raise ServerUnavailable(msg, code=exc.smtp_code, reply=text) from exc
            msg = f"{where}: message refused: {exc.smtp_code} {text}"
            raise MessageRefused(msg, code=exc.smtp_code, reply=text) from exc
        except smtplib.SMTPNotSupportedError as exc:
            msg = f"{where}: {exc}"
            raise MessageRefused(msg, permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            reason = describe_connect_failure(exc, transport.settings, transport.port)
            msg = f"{where}: {reason}"
            raise ServerUnavailable(msg) from exc

        refusals = {
            address: Refusal(code, reply.decode("utf-8", "replace"))
            for address, (code, reply) in refused.items()
        }
        delivered = tuple(r for r in recipients if r not in refusals)
        reply = client.last_reply if delivered else ""
        outcome = SendOutcome(delivered, refusals, reply)
        transport.observer.sent(outcome)
        return outcome

    def _fit(self, message: EmailMessage) -> tuple[EmailMessage, int]:
        size = message_size(message)
        if self.size_limit is None or size <= self.size_limit:
            return message, size
        shrunk = shrink_to_fit(message, self.size_limit)
        return shrunk, message_size(shrunk)


def _closed(where: str, refused: dict[str, tuple[int, bytes]]) -> ServerUnavailable:
    code, reply = next(iter(refused.values()), (421, b""))
    text = reply.decode("utf-8", "replace")
    msg = f"{where}: the server closed the connection: {code} {text}"
    return ServerUnavailable(msg, code=code, reply=text)
