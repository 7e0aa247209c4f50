"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, with real TLS.

Every test that sends mail talks to an :class:`SmtpServer`: aiosmtpd running
in a thread of its own on 127.0.0.1, on a port the kernel picks (port 0), with
certificates from a trustme CA. It can speak:

- implicit TLS (``tls="implicit"``, what ``security = "ssl"`` expects),
- plain SMTP offering STARTTLS (``tls="starttls"``),
- plain SMTP without STARTTLS (``tls="none"``).

AUTH PLAIN and LOGIN are offered (over TLS only, unless ``auth_in_clear``) and
judged by a :class:`ScriptedAuthenticator` that refuses the first N attempts
and then accepts the right username and password (the refusal reply is
scriptable too: ``454 4.7.0`` for a server that cannot check logins right
now). The server records every
message (:attr:`SmtpServer.messages`), every login attempt
(:attr:`SmtpServer.logins`) and every connection
(:attr:`SmtpServer.connections`), and can be told to refuse a recipient
(``rcpt_replies``), to answer DATA with a scripted reply (``data_replies``),
or to hold a DATA command until released (``hold_data``).

Fixtures (made available to every test by ``tests/conftest.py``):

- ``tls_ca``: a trustme CA for the whole session;
- ``ca_file``: that CA's certificate as a PEM file, for ``[smtp] ca_file``;
- ``smtp_server``: a factory, ``smtp_server(tls="implicit", ...)``, returning
  a started :class:`SmtpServer` that is stopped when the test ends;
- ``hanging_server``: a factory of :class:`HangingServer` s, which accept a
  connection and never say a word (a mail server that hangs).

Example::

    def test_something(smtp_server, ca_file):
        server = smtp_server(tls="implicit", refuse_logins=2)
        ...  # send to server.host, server.port, trusting ca_file
        assert len(server.logins) == 3
        assert server.messages[0].message()["Subject"] == "hello"
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hmac
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

TlsMode = Literal["implicit", "starttls", "none"]

# aiosmtpd logs every connection at INFO and warns on each successful login
# (a deprecation inside aiosmtpd itself); neither is about the code under test.
logging.getLogger("mail.log").setLevel(logging.ERROR)

USERNAME = "alerts@example.test"
PASSWORD = "correct horse battery staple"  # noqa: S105 - the test server's


@dataclass(frozen=True)
class LoginAttempt:
    """One AUTH attempt as the server saw it."""

    mechanism: str
    login: str
    password: str
    accepted: bool


@dataclass(frozen=True)
class CramMd5Response:
    """What a client answered to a CRAM-MD5 challenge."""

    login: bytes
    digest: str
    nonce: bytes


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted (replied 250 to its DATA)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    helo: str = ""

    def message(self) -> EmailMessage:
        """Return the message parsed, as a mail client would read it."""
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class ScriptedAuthenticator:
    """Refuses the first ``refuse`` login attempts, then checks the password.

    Set :attr:`refuse` again at any time to script another outage.
    """

    def __init__(
        self, username: str = USERNAME, password: str = PASSWORD, refuse: int = 0
    ) -> None:
        self.username = username
        self.password = password
        self.refuse = refuse
        self.refusal_reply: str | None = None
        """The reply to a refused attempt; ``None``: aiosmtpd's usual 535."""
        self.attempts: list[LoginAttempt] = []

    def __call__(
        self,
        server: SMTP,
        session: Any,
        envelope: Any,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        login = password = ""
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
        elif isinstance(auth_data, CramMd5Response):
            login = auth_data.login.decode("utf-8", "replace")
            expected = hmac.new(self.password.encode(), auth_data.nonce, "md5")
            # Only a digest of the right password matches; record it as such.
            if hmac.compare_digest(auth_data.digest, expected.hexdigest()):
                password = self.password
        accepted = (
            self.refuse <= 0 and login == self.username and password == self.password
        )
        if self.refuse > 0:
            self.refuse -= 1
        self.attempts.append(LoginAttempt(mechanism, login, password, accepted))
        # handled=False: let aiosmtpd send the reply (its usual 535 unless
        # one was scripted).
        reply = None if accepted else self.refusal_reply
        return AuthResult(success=accepted, handled=False, message=reply)


@dataclass
class RecordingHandler:
    """The aiosmtpd handler: records messages, answers as scripted.

    :param rcpt_replies: recipient address -> reply to RCPT TO for it (for
        example ``"550 5.1.1 no such user"``); others get 250.
    :param data_replies: replies to the next DATA commands, used up in order;
        when empty, DATA is accepted and the message recorded.
    """

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    messages: list[ReceivedMessage] = field(default_factory=list)
    hold_data: bool = False
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Any,
        envelope: Any,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        if self.hold_data:
            # Stall mid-transaction (the client has sent the message but not
            # had its 250) until the test releases us; used to kill a sender
            # at the worst moment.
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
            return "451 4.3.0 aborted by the test"
        if self.data_replies:
            return self.data_replies.pop(0)
        content = envelope.original_content or envelope.content
        self.messages.append(
            ReceivedMessage(
                envelope.mail_from,
                tuple(envelope.rcpt_tos),
                content,
                session.host_name or "",
            )
        )
        return "250 2.0.0 OK queued as test"


class _CountingSMTP(SMTP):
    """aiosmtpd's protocol, counting connections for the owning server."""

    def __init__(self, owner: SmtpServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        # aiosmtpd has no CRAM-MD5 of its own; the name maps to "CRAM-MD5".
        nonce = b"<1896.697170952@mail.example.test>"
        answer = await self.challenge_auth(nonce)
        if not isinstance(answer, bytes):
            return AuthResult(success=False, handled=True)
        login, _, digest = answer.rpartition(b" ")
        response = CramMd5Response(login, digest.decode("ascii", "replace"), nonce)
        return self._authenticate("CRAM-MD5", response)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        if first:
            self._owner.connections += 1
        super().connection_made(transport)
        if first and transport.get_extra_info("ssl_object") is not None:
            # Implicit TLS: aiosmtpd only notices TLS that came by STARTTLS,
            # and would refuse AUTH as "not encrypted". Tell it the truth.
            self._tls_protocol = transport  # type: ignore[assignment]
            self.session.ssl = {"ssl_object": transport.get_extra_info("ssl_object")}


class SmtpServer:
    """aiosmtpd in a background thread on 127.0.0.1; see the module docstring.

    :param tls: ``implicit``, ``starttls`` or ``none``.
    :param cert: the server's certificate (trustme leaf); required with TLS.
    :param port: 0 lets the kernel choose; give a port to come back up on
        the same one after :meth:`stop`.
    :param refuse_logins: how many login attempts to refuse before accepting.
    :param auth_in_clear: offer AUTH without TLS too (a badly set-up server).
    :param data_size_limit: the SIZE the server advertises and enforces.
    :param auth_exclude: AUTH mechanisms not to offer; CRAM-MD5 by default
        (``("PLAIN", "LOGIN")`` leaves CRAM-MD5 only).
    """

    def __init__(
        self,
        *,
        tls: TlsMode = "implicit",
        cert: trustme.LeafCert | None = None,
        port: int = 0,
        refuse_logins: int = 0,
        username: str = USERNAME,
        password: str = PASSWORD,
        auth_in_clear: bool = False,
        data_size_limit: int = 10 * 1024 * 1024,
        auth_exclude: tuple[str, ...] = ("CRAM-MD5",),
    ) -> None:
        if tls != "none" and cert is None:
            msg = "a TLS server needs a certificate"
            raise ValueError(msg)
        self.tls: TlsMode = tls
        self.host = "127.0.0.1"
        self.port = port
        self.handler = RecordingHandler()
        self.authenticator = ScriptedAuthenticator(username, password, refuse_logins)
        self.connections = 0
        self._cert = cert
        self._auth_in_clear = auth_in_clear
        self._data_size_limit = data_size_limit
        self._auth_exclude = auth_exclude
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Every message accepted so far, oldest first."""
        return self.handler.messages

    @property
    def logins(self) -> list[LoginAttempt]:
        """Every AUTH attempt so far, oldest first."""
        return self.authenticator.attempts

    def _tls_context(self) -> ssl.SSLContext:
        assert self._cert is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(context)
        return context

    def _protocol(self) -> SMTP:
        return _CountingSMTP(
            self,
            self.handler,
            hostname="mail.example.test",
            tls_context=self._tls_context() if self.tls == "starttls" else None,
            authenticator=self.authenticator,
            auth_require_tls=not self._auth_in_clear,
            data_size_limit=self._data_size_limit,
            auth_exclude_mechanism=list(self._auth_exclude),
            loop=self._loop,
        )

    def start(self) -> SmtpServer:
        """Start listening; returns once connections are accepted."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            implicit = self._tls_context() if self.tls == "implicit" else None
            assert self._loop is not None
            self._server = await self._loop.create_server(
                self._protocol, host=self.host, port=self.port, ssl=implicit
            )
            self.port = self._server.sockets[0].getsockname()[1]

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(serve())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="smtp-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection; the port is freed."""
        loop, server, thread = self._loop, self._server, self._thread
        if loop is None or thread is None:
            return
        self.handler.release.set()

        async def shutdown() -> None:
            if server is not None:
                server.close()
            tasks = [
                task
                for task in asyncio.all_tasks()
                if task is not asyncio.current_task()
            ]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if server is not None:
                await server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._server = self._thread = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class HangingServer:
    """Accepts connections on 127.0.0.1 and never answers: a hung mail server.

    Connections are held until :meth:`release` (or the end of the test)
    closes them; the client then sees the connection closed.

    :param on_accept: called in the server's thread right after each
        connection is accepted (a test advances its clock there).
    :param hold: keep connections open until released; ``False`` closes each
        right after ``on_accept``, a server that hangs up without a word.
    """

    def __init__(
        self, on_accept: Callable[[], None] | None = None, hold: bool = True
    ) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.host = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self.accepted = threading.Event()
        self.connections = 0
        self._on_accept = on_accept
        self._hold = hold
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(
            target=self._serve, name="hanging-server", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            self.connections += 1
            if self._on_accept is not None:
                self._on_accept()
            if self._hold:
                self._held.append(connection)
            else:
                connection.close()
            self.accepted.set()

    def release(self) -> None:
        """Close every connection held so far."""
        while self._held:
            self._held.pop().close()

    def stop(self) -> None:
        """Stop accepting and close everything."""
        # close() alone does not wake a thread blocked in accept(); a
        # shutdown does (accept then fails and the thread ends).
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(10)
        self.release()


def reserve_port() -> socket.socket:
    """Return a socket bound to a free 127.0.0.1 port but not listening.

    Connecting to that port is refused: a mail server that is down. Close the
    socket and start an :class:`SmtpServer` with ``port=`` the same number to
    bring it up.
    """
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    return holder


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A certificate authority for the whole test session."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(tls_ca: trustme.CA) -> trustme.LeafCert:
    """A certificate for 127.0.0.1 and localhost, signed by ``tls_ca``."""
    return tls_ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture
def ca_file(tls_ca: trustme.CA, tmp_path: Path) -> Path:
    """``tls_ca``'s certificate as a PEM file, for ``[smtp] ca_file``."""
    path = tmp_path / "test-ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def smtp_server(
    server_cert: trustme.LeafCert,
) -> Iterator[Callable[..., SmtpServer]]:
    """Factory of started :class:`SmtpServer` s, all stopped after the test.

    Takes the keyword arguments of :class:`SmtpServer`; ``cert`` defaults to
    ``server_cert``.
    """
    started: list[SmtpServer] = []

    def make(**kwargs: Any) -> SmtpServer:
        kwargs.setdefault("cert", server_cert)
        server = SmtpServer(**kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def hanging_server() -> Iterator[Callable[..., HangingServer]]:
    """Factory of :class:`HangingServer` s, all stopped after the test."""
    started: list[HangingServer] = []

    def make(**kwargs: Any) -> HangingServer:
        server = HangingServer(**kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
