"""Turning a failed SMTP connection into words a sysadmin can act on.

The classic mistakes get named with their fix: implicit TLS against a port
that speaks plain SMTP (587, 25), plain SMTP against an implicit-TLS port
(465), a certificate for another host name, one from a CA this machine does
not trust, an expired one. Nothing here holds or prints a secret.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from typing import Final

from notifier.config import SmtpSettings
from notifier.units import format_duration

# OpenSSL verify codes (X509_V_ERR_*) that have a plain-words explanation.
_NAME_MISMATCH: Final = frozenset({62, 64})  # host name, IP address
_EXPIRED: Final = 10
_NOT_YET_VALID: Final = 9
_UNTRUSTED: Final = frozenset({2, 18, 19, 20, 21})

# What a TLS client sees when the other side answers in plain text (the
# "220 ..." greeting read as a TLS record) or hangs up on a ClientHello.
_PLAIN_ANSWER_REASONS: Final = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "UNEXPECTED_EOF_WHILE_READING",
        "HTTP_REQUEST",
        "UNKNOWN_PROTOCOL",
    }
)

STARTTLS_HINT: Final = 'set security = "starttls"'
IMPLICIT_TLS_HINT: Final = 'set security = "ssl"'


def reply_text(reply: bytes | str) -> str:
    """Return a server reply (bytes from smtplib) as text."""
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def plain_port_hint(port: int) -> str:
    """Return the advice for implicit TLS against a plain-SMTP port."""
    if port == 587:
        return f"port 587 expects STARTTLS: {STARTTLS_HINT}"
    return (
        f"port {port} seems to speak plain SMTP, not implicit TLS: "
        f"{STARTTLS_HINT}, or use the server's implicit-TLS port (465)"
    )


def tls_port_hint(port: int) -> str:
    """Return the advice for plain SMTP (STARTTLS) against an implicit-TLS port."""
    if port == 465:
        return f"port 465 expects implicit TLS: {IMPLICIT_TLS_HINT}"
    return (
        f"port {port} may expect implicit TLS ({IMPLICIT_TLS_HINT}), or the "
        "server is overloaded"
    )


def is_plain_answer(exc: BaseException) -> bool:
    """Return whether a TLS handshake failed because the peer is not TLS."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False
    if isinstance(exc, ssl.SSLEOFError):
        return True
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        return reason in _PLAIN_ANSWER_REASONS or any(
            word in str(exc) for word in ("wrong version number", "record layer")
        )
    return False


def describe_certificate_failure(exc: ssl.SSLCertVerificationError, host: str) -> str:
    """Return what is wrong with the server's certificate, and the fix."""
    detail = exc.verify_message or str(exc)
    if exc.verify_code in _NAME_MISMATCH:
        return (
            f"certificate not verified: it does not match the host name "
            f"{host!r} ({detail}); set [smtp] host to a name the certificate "
            "carries"
        )
    if exc.verify_code in _UNTRUSTED:
        return (
            f"certificate not verified: issued by a CA this machine does not "
            f"trust ({detail}); set [smtp] ca_file to that CA's certificate"
        )
    if exc.verify_code == _EXPIRED:
        return f"certificate not verified: it has expired ({detail})"
    if exc.verify_code == _NOT_YET_VALID:
        return (
            f"certificate not verified: not valid yet ({detail}); check this "
            "machine's clock"
        )
    return f"certificate not verified: {detail}"


def describe_connect_failure(exc: BaseException, smtp: SmtpSettings, port: int) -> str:
    """Return why a connection to the server failed, with the fix when known.

    :param exc: what ``smtplib``, ``ssl`` or ``socket`` raised.
    :param port: the port really used (``smtp.port`` or its default).
    """
    host = smtp.host
    if isinstance(exc, ssl.SSLCertVerificationError):
        return describe_certificate_failure(exc, host)
    if isinstance(exc, ssl.SSLError):
        if smtp.security == "ssl" and is_plain_answer(exc):
            return f"TLS handshake failed ({_ssl_reason(exc)}): {plain_port_hint(port)}"
        return f"TLS failed: {_ssl_reason(exc)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        text = reply_text(exc.smtp_error)
        return f"the server answered {exc.smtp_code} {text}"
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(
        exc.__context__, TimeoutError
    ):
        # smtplib reports a read that timed out as a disconnection.
        exc = exc.__context__
    if isinstance(exc, TimeoutError):
        waited = format_duration(smtp.timeout)
        text = f"no answer within {waited} ([smtp] timeout)"
        if smtp.security != "ssl":
            text = f"{text}; {tls_port_hint(port)}"
        return text
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        text = f"the server closed the connection ({exc})"
        if smtp.security != "ssl" and port == 465:
            text = f"{text}; {tls_port_hint(port)}"
        return text
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused: nothing listens on {host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {host!r}: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


def _ssl_reason(exc: ssl.SSLError) -> str:
    reason = exc.reason or ""
    text = str(exc)
    return f"{reason}: {text}" if reason and reason not in text else text
