"""The work of ``notifier test-send`` (its command line is in
:mod:`notifier.cli.test_send_cmd`): compose, send at once, print each step.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import stat
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from notifier import __version__
from notifier.cli.output import load_reserved
from notifier.compose import compose_test_message
from notifier.config import Config
from notifier.errors import EX_OK, EX_UNAVAILABLE, ConfigError, UsageError
from notifier.loader import config_path
from notifier.transport import (
    AuthRefused,
    DeliveryError,
    SendOutcome,
    ServerUnavailable,
    Transport,
    create_transport,
)
from notifier.transports.smtp_client import SmtpObserver, SmtpTransport, TlsInfo
from notifier.transports.smtp_errors import (
    IMPLICIT_TLS_HINT,
    is_plain_answer,
    plain_port_hint,
)

EXPIRY_WARNING_DAYS: Final = 14
_SECURITY_WORDS: Final = {
    "ssl": "implicit TLS",
    "starttls": "STARTTLS",
    "none": "no TLS",
}


def _say(step: str, text: str) -> None:
    print(f"{step:<9} {text}", flush=True)


class StepPrinter(SmtpObserver):
    """Prints each step of an SMTP session as it happens."""

    def __init__(self, debug: bool) -> None:
        self.wants_dialogue = debug
        self.warnings: list[str] = []
        self.now = datetime.now(tz=UTC)

    def connecting(self, host: str, port: int, security: str) -> None:
        _say("connect", f"{host}:{port} ({_SECURITY_WORDS.get(security, security)})")

    def connected(self, greeting: str) -> None:
        _say("", f"server: {' '.join(greeting.split())}")

    def tls_established(self, info: TlsInfo) -> None:
        _say("TLS", f"{info.version}, cipher {info.cipher}")
        if not info.verified:
            warning = "certificate NOT verified ([smtp] verify = false)"
            _say("cert", warning)
            self.warnings.append(warning)
            return
        expires = "?"
        if info.not_after is not None:
            days = (info.not_after - self.now).days
            expires = f"{info.not_after:%Y-%m-%d %H:%M} UTC ({days} days from now)"
            if days < EXPIRY_WARNING_DAYS:
                warning = (
                    f"the server's certificate expires in {days} days "
                    f"({info.not_after:%Y-%m-%d}); renew it before mail stops"
                )
                self.warnings.append(warning)
        _say("cert", f"subject {info.subject}")
        if info.names:
            _say("", f"names {', '.join(info.names)}")
        _say("", f"issuer {info.issuer}")
        _say("", f"expires {expires}")

    def ehlo(self, features: dict[str, str]) -> None:
        shown = [
            " ".join(f"{name.upper()} {value}".split())
            for name, value in features.items()
        ]
        _say("EHLO", ", ".join(shown) or "(no extensions)")
        auth = features.get("auth", "").split()
        if "starttls" not in features or auth:
            _say("", f"AUTH mechanisms: {' '.join(auth) or 'none offered'}")

    def logging_in(self, username: str, mechanism: str) -> None:
        _say("login", f"as {username!r} with {mechanism}")

    def logged_in(self, reply: str) -> None:
        _say("", f"server: {reply}")

    def sending(self, sender: str, recipients: Sequence[str], size: int) -> None:
        _say("send", f"from {sender} to {', '.join(recipients)} ({size} bytes)")

    def sent(self, outcome: SendOutcome) -> None:
        if outcome.reply:
            _say("", f"server: {outcome.reply}")

    def dialogue(self, line: str) -> None:
        print(f"  | {line}", flush=True)


def _recipients(config: Config, given: Sequence[str] | None) -> list[str]:
    recipients = list(given or config.mail.to)
    if not recipients:
        raise ConfigError.single(
            config.path,
            "mail",
            "to",
            "is empty and no --to was given",
            "pass --to ADDR or set [mail] to",
        )
    return recipients


def _check_readable(path: Path) -> None:
    """Make sure ``--attach`` names a regular file this user can read.

    :raises UsageError: when it does not (exit 64): a test message sent
        without the file asked for would prove nothing.
    """
    try:
        # O_NONBLOCK: a FIFO given by mistake must not hang the command.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        msg = f"--attach {path}: {exc.strerror or exc}; give a file this user can read"
        raise UsageError(msg) from None
    try:
        regular = stat.S_ISREG(os.fstat(descriptor).st_mode)
    finally:
        os.close(descriptor)
    if not regular:
        msg = f"--attach {path}: not a regular file; give a log file"
        raise UsageError(msg)


def send_test(args: argparse.Namespace) -> int:
    """Send the test message now; return the exit status of the outcome.

    :raises ConfigError: when the configuration is wrong (exit 78).
    :raises UsageError: when ``--attach`` names a file that cannot be read
        (exit 64).
    """
    path = config_path(args.config)
    loaded = load_reserved(path)
    config = loaded.config
    recipients = _recipients(config, args.to)
    if args.attach is not None:
        _check_readable(args.attach)
    message = compose_test_message(
        config.mail,
        hostname=config.notifier.hostname,
        recipients=recipients,
        version=__version__,
        config_path=path,
        now=datetime.now(tz=UTC),
        attach=args.attach,
    )

    printer = StepPrinter(args.debug)
    if config.mail.transport == "smtp":
        transport: Transport = SmtpTransport(
            config.smtp, config.notifier.hostname, config.path, observer=printer
        )
    else:
        transport = create_transport(config, loaded.registry.transport_map())
        _say("transport", transport.describe())

    try:
        with transport.session() as session:
            outcome = session.send(message, recipients)
    except AuthRefused as exc:
        return _fail(f"login refused: {exc}", exc.exit_code)
    except ServerUnavailable as exc:
        return _fail(_with_probe(config, transport, exc), exc.exit_code)
    except DeliveryError as exc:
        return _fail(f"message refused: {exc}", exc.exit_code)
    return _verdict(outcome, printer, transport.describe())


def _verdict(outcome: SendOutcome, printer: StepPrinter, where: str) -> int:
    for warning in printer.warnings:
        print(f"notifier: warning: {warning}", file=sys.stderr)
    if outcome.refused:
        for address, refusal in outcome.refused.items():
            _say("refused", f"{address}: {refusal}")
        taken = ", ".join(outcome.delivered) or "nobody"
        return _fail(
            f"some recipients were refused; delivered to {taken} only", EX_UNAVAILABLE
        )
    _say("verdict", f"OK: the test message was accepted via {where}")
    return EX_OK


def _fail(reason: str, status: int) -> int:
    _say("verdict", "FAILED")
    print(f"notifier: test-send failed: {reason}", file=sys.stderr)
    return status


def _with_probe(config: Config, transport: Transport, exc: ServerUnavailable) -> str:
    """Return the failure, confirmed by a second look when a port mix-up is
    suspected: is the port really plain SMTP, or really TLS?"""
    text = str(exc)
    if not isinstance(transport, SmtpTransport):
        return text
    host, port, timeout = config.smtp.host, transport.port, config.smtp.timeout
    cause = exc.__cause__
    if config.smtp.security == "ssl" and cause is not None and is_plain_answer(cause):
        banner = _plain_banner(host, port, timeout)
        if banner:
            return (
                f"{text}\nthe port answers in plain text ({banner!r}): "
                f"{plain_port_hint(port)}"
            )
    if config.smtp.security != "ssl" and "no answer within" in text:
        version = _tls_handshake(host, port, timeout)
        if version:
            return (
                f"{text}\nthe port completed a {version} handshake, so it speaks "
                f"implicit TLS: {IMPLICIT_TLS_HINT}"
            )
    return text


def _plain_banner(host: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            banner = sock.recv(512).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return banner if banner.startswith("220") else ""


def _tls_handshake(host: str, port: int, timeout: float) -> str:
    # Only asks whether the port speaks TLS at all; nothing is sent over it,
    # so the certificate does not matter here.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            return tls.version() or "TLS"
    except OSError:
        return ""
