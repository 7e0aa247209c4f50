"""The smtp and file transports against a real aiosmtpd server over real TLS,
and where the password comes from."""

from __future__ import annotations

import base64
import email.policy
import logging
import os
from email.message import EmailMessage
from pathlib import Path

import pytest
import tomli_w
from smtp_server import PASSWORD, USERNAME

from notifier.config import render_config
from notifier.errors import ConfigError
from notifier.loader import load
from notifier.secrets import resolve_password
from notifier.transport import (
    AuthRefused,
    FailureKind,
    MessageRefused,
    ServerUnavailable,
    create_transport,
    is_loopback,
)
from notifier.transports.smtp_client import SmtpObserver, SmtpTransport

SENDER = "notifier@web-1.example.test"


def make_message(
    subject: str = "disk full", to: str = "ops@example.test"
) -> EmailMessage:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = SENDER
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@web-1.example.test>"
    message.set_content(f"{subject}\n")
    return message


def write_config(tmp_path: Path, mode: int = 0o600, **tables: dict) -> Path:
    """Write a configuration file with ``tables`` and return its path."""
    document = {
        "notifier": {
            "hostname": "web-1.example.test",
            "state_dir": str(tmp_path / "state"),
        }
    }
    for name, values in tables.items():
        document.setdefault(name, {}).update(values)
    path = tmp_path / "notifier.toml"
    path.write_text(tomli_w.dumps(document))
    path.chmod(mode)
    return path


def password_file(tmp_path: Path, text: str = PASSWORD, mode: int = 0o600) -> Path:
    path = tmp_path / "smtp-password"
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def smtp_table(server, ca_file: Path | None, tmp_path: Path, **extra) -> dict:
    table = {
        "host": server.host,
        "port": server.port,
        "security": "ssl" if server.tls == "implicit" else server.tls,
        "username": USERNAME,
        "password_file": str(password_file(tmp_path)),
        "timeout": "5s",
    }
    if ca_file is not None:
        table["ca_file"] = str(ca_file)
    table.update(extra)
    return {key: value for key, value in table.items() if value is not None}


def transport_for(path: Path, observer: SmtpObserver | None = None):
    loaded = load(path)
    transport = create_transport(loaded.config, loaded.registry.transport_map())
    if observer is not None:
        assert isinstance(transport, SmtpTransport)
        transport.observer = observer
    return transport


def send_one(
    transport, message: EmailMessage | None = None, recipients=("ops@example.test",)
):
    with transport.session() as session:
        return session.send(message or make_message(), list(recipients))


def test_implicit_tls_delivers_with_login_and_configured_ehlo_name(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="implicit")
    transport = transport_for(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    )

    outcome = send_one(transport)

    assert outcome.delivered == ("ops@example.test",)
    assert outcome.reply.startswith("250")
    [received] = server.messages
    assert received.message()["Subject"] == "disk full"
    assert received.helo == "web-1.example.test"
    assert [(a.login, a.accepted) for a in server.logins] == [(USERNAME, True)]


def test_one_session_carries_a_batch_over_one_connection(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="implicit")
    transport = transport_for(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    )

    with transport.session() as session:
        for number in range(5):
            session.send(make_message(f"alert {number}"), ["ops@example.test"])

    assert len(server.messages) == 5
    assert server.connections == 1
    assert len(server.logins) == 1


def test_starttls_upgrades_before_login(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="starttls")
    transport = transport_for(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    )

    send_one(transport)

    assert len(server.messages) == 1
    assert server.logins[0].accepted


def test_untrusted_certificate_is_refused_by_default(smtp_server, tmp_path):
    server = smtp_server(tls="implicit")
    transport = transport_for(
        write_config(tmp_path, smtp=smtp_table(server, None, tmp_path))
    )

    with pytest.raises(ServerUnavailable) as caught:
        send_one(transport)

    assert "certificate not verified" in str(caught.value)
    assert "ca_file" in str(caught.value)
    assert server.messages == []
    assert server.logins == []


def test_verify_false_accepts_an_untrusted_certificate_and_warns(
    smtp_server, tmp_path, caplog
):
    server = smtp_server(tls="implicit")
    path = write_config(tmp_path, smtp=smtp_table(server, None, tmp_path, verify=False))

    with caplog.at_level(logging.WARNING):
        transport = transport_for(path)
        send_one(transport)

    assert len(server.messages) == 1
    assert "certificate verification is OFF" in caplog.text


def test_certificate_for_another_name_is_refused_with_the_reason(
    smtp_server, tls_ca, ca_file, tmp_path
):
    other = tls_ca.issue_cert("mail.example.test")
    server = smtp_server(tls="implicit", cert=other)
    transport = transport_for(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    )

    with pytest.raises(ServerUnavailable) as caught:
        send_one(transport)

    assert "does not match the host name '127.0.0.1'" in str(caught.value)
    assert server.logins == []


def test_starttls_not_offered_never_falls_back_to_clear_text(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="none", auth_in_clear=True)
    table = smtp_table(server, ca_file, tmp_path, security="starttls")
    transport = transport_for(write_config(tmp_path, smtp=table))

    with pytest.raises(ServerUnavailable) as caught:
        send_one(transport)

    assert "does not offer STARTTLS" in str(caught.value)
    assert server.logins == []
    assert server.messages == []


def test_security_none_on_loopback_sends_without_any_login(smtp_server, tmp_path):
    server = smtp_server(tls="none", auth_in_clear=True)
    table = {"host": "127.0.0.1", "port": server.port, "security": "none"}
    transport = transport_for(write_config(tmp_path, smtp=table))

    send_one(transport)

    assert len(server.messages) == 1
    assert server.logins == []


def test_security_none_with_a_login_is_a_config_error(tmp_path):
    table = {
        "host": "127.0.0.1",
        "security": "none",
        "username": "u",
        "password_env": "X",
    }

    with pytest.raises(ConfigError) as caught:
        load(write_config(tmp_path, smtp=table))

    assert "never sent in clear text" in str(caught.value)


def test_security_none_towards_another_host_is_a_config_error(tmp_path):
    path = write_config(
        tmp_path, smtp={"host": "mail.example.test", "security": "none"}
    )

    with pytest.raises(ConfigError) as caught:
        load(path)

    assert str(caught.value).startswith(f"{path}: [smtp] security:")
    assert "only allowed towards this machine" in str(caught.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("203.0.113.7", False),  # only parsed, never contacted
        ("mail.example.test", False),
        ("localhost.example.test", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_refused_login_costs_exactly_one_attempt(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit", refuse_logins=5)
    transport = transport_for(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    )

    with pytest.raises(AuthRefused) as caught:
        send_one(transport)

    assert caught.value.kind is FailureKind.AUTH
    assert "535" in str(caught.value)
    assert "check username and password_file" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert len(server.logins) == 1


def test_one_refused_recipient_does_not_stop_the_other(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit")
    server.handler.rcpt_replies["gone@example.test"] = "550 5.1.1 no such user"
    transport = transport_for(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    )

    outcome = send_one(transport, recipients=("ops@example.test", "gone@example.test"))

    assert outcome.delivered == ("ops@example.test",)
    assert outcome.refused["gone@example.test"].permanent
    assert "no such user" in str(outcome.refused["gone@example.test"])
    assert [m.rcpt_tos for m in server.messages] == [("ops@example.test",)]


def test_size_refusal_is_permanent_and_the_session_goes_on(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="implicit")
    server.handler.data_replies.append("552 5.3.4 message too big")
    transport = transport_for(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    )

    with transport.session() as session:
        with pytest.raises(MessageRefused) as caught:
            session.send(make_message("first"), ["ops@example.test"])
        session.send(make_message("second"), ["ops@example.test"])

    assert caught.value.kind is FailureKind.PERMANENT
    assert caught.value.code == 552
    assert [m.message()["Subject"] for m in server.messages] == ["second"]


def test_temporary_refusal_is_transient(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit")
    server.handler.data_replies.append("451 4.3.0 try later")
    transport = transport_for(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    )

    with pytest.raises(MessageRefused) as caught:
        send_one(transport)

    assert caught.value.kind is FailureKind.TRANSIENT


def test_implicit_tls_against_a_plain_port_names_the_fix(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="starttls")
    table = smtp_table(server, ca_file, tmp_path, security="ssl")
    transport = transport_for(write_config(tmp_path, smtp=table))

    with pytest.raises(ServerUnavailable) as caught:
        send_one(transport)

    assert 'set security = "starttls"' in str(caught.value)


def test_starttls_against_an_implicit_tls_port_times_out_and_says_so(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="implicit")
    table = smtp_table(server, ca_file, tmp_path, security="starttls", timeout="500ms")
    transport = transport_for(write_config(tmp_path, smtp=table))

    with pytest.raises(ServerUnavailable) as caught:
        send_one(transport)

    assert "no answer within 500ms" in str(caught.value)
    assert 'set security = "ssl"' in str(caught.value)


def test_nothing_listening_is_unavailable(tmp_path, ca_file):
    from smtp_server import reserve_port

    with reserve_port() as holder:
        port = holder.getsockname()[1]
        table = {
            "host": "127.0.0.1",
            "port": port,
            "security": "ssl",
            "ca_file": str(ca_file),
        }
        transport = transport_for(write_config(tmp_path, smtp=table))
        with pytest.raises(ServerUnavailable) as caught:
            send_one(transport)

    assert f"nothing listens on 127.0.0.1:{port}" in str(caught.value)


class Recorder(SmtpObserver):
    wants_dialogue = True

    def __init__(self):
        self.lines: list[str] = []

    def dialogue(self, line: str) -> None:
        self.lines.append(line)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_dialogue_masks_the_credentials(smtp_server, ca_file, tmp_path, mechanism):
    server = smtp_server(tls="implicit")
    recorder = Recorder()
    transport = transport_for(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path)), recorder
    )
    if mechanism == "LOGIN":
        # Make the server offer LOGIN only, so that path is the one taken.
        import smtp_server as module

        original = module.SmtpServer._protocol

        def login_only(self):
            protocol = original(self)
            protocol._auth_methods.pop("PLAIN")
            return protocol

        module.SmtpServer._protocol = login_only
        try:
            server.stop()
            server.start()
            send_one(transport)
        finally:
            module.SmtpServer._protocol = original
    else:
        send_one(transport)

    text = "\n".join(recorder.lines)
    assert server.logins[-1].mechanism == mechanism
    assert f"AUTH {mechanism} <credentials masked>" in text
    secrets = [
        PASSWORD,
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode(),
    ]
    for secret in secrets:
        assert secret not in text
    assert "250" in text


def test_file_transport_writes_private_eml_files(tmp_path):
    folder = tmp_path / "mail"
    path = write_config(
        tmp_path, mail={"transport": "file"}, file={"directory": str(folder)}
    )
    transport = transport_for(path)

    outcome = send_one(transport, make_message("to a file"))

    [written] = folder.glob("*.eml")
    assert outcome.delivered == ("ops@example.test",)
    assert (folder.stat().st_mode & 0o777) == 0o700
    assert b"Subject: to a file" in written.read_bytes()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_builtin_transports_register_through_the_hook(tmp_path):
    loaded = load(write_config(tmp_path))

    assert {"smtp", "file"} <= set(loaded.registry.transports)
    assert loaded.registry.transports["smtp"].origin == "built-in"


def test_a_plugin_transport_becomes_a_valid_mail_transport(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir(mode=0o755)
    (plugins / "pigeon.py").write_text(
        "from notifier import TransportType, hookimpl\n"
        "@hookimpl\n"
        "def notifier_transports():\n"
        "    return [TransportType('pigeon', create=lambda config: None)]\n"
    )
    path = write_config(tmp_path, mail={"transport": "pigeon"})
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert "'pigeon' is not a known transport" in str(caught.value)

    path = write_config(
        tmp_path, mail={"transport": "pigeon"}, notifier={"plugin_dirs": [str(plugins)]}
    )
    loaded = load(path)

    assert loaded.config.mail.transport == "pigeon"
    assert loaded.registry.transports["pigeon"].origin == str(plugins / "pigeon.py")


# Secrets ---------------------------------------------------------------


def smtp_with(tmp_path: Path, config_mode: int = 0o600, **smtp) -> tuple:
    path = write_config(
        tmp_path, config_mode, smtp={"host": "127.0.0.1", "username": USERNAME, **smtp}
    )
    return path


def test_password_file_readable_by_others_is_refused(tmp_path):
    secret = password_file(tmp_path, mode=0o644)

    with pytest.raises(ConfigError) as caught:
        load(smtp_with(tmp_path, password_file=str(secret)))

    assert "readable by group or other" in str(caught.value)
    assert f"chmod 600 {secret}" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_password_file_drops_one_trailing_newline(tmp_path):
    secret = password_file(tmp_path, text="p4ss word ")
    config = load(smtp_with(tmp_path, password_file=str(secret))).config

    password = resolve_password(config.smtp, config.path)

    assert password is not None
    assert password.reveal() == "p4ss word "
    assert "p4ss" not in repr(password) + str(password)


def test_password_env_and_credentials_directory(tmp_path):
    config = load(smtp_with(tmp_path, password_env="SMTP_PW")).config  # noqa: S106
    assert (
        resolve_password(config.smtp, config.path, {"SMTP_PW": "from-env"}).reveal()
        == "from-env"
    )
    with pytest.raises(ConfigError) as caught:
        resolve_password(config.smtp, config.path, {})
    assert "'SMTP_PW' is not set" in str(caught.value)

    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "smtp-password").write_text("from-systemd\n")
    config = load(smtp_with(tmp_path)).config
    environ = {"CREDENTIALS_DIRECTORY": str(credentials)}
    assert (
        resolve_password(config.smtp, config.path, environ).reveal() == "from-systemd"
    )
    assert resolve_password(config.smtp, config.path, {}) is None


def test_inline_password_needs_a_private_config_file(tmp_path):
    loaded = load(smtp_with(tmp_path, 0o600, password="inline-secret"))  # noqa: S106
    assert (
        resolve_password(loaded.config.smtp, loaded.config.path).reveal()
        == "inline-secret"
    )
    assert "inline-secret" not in render_config(loaded.config, {})

    with pytest.raises(ConfigError) as caught:
        load(smtp_with(tmp_path, 0o644, password="inline-secret"))  # noqa: S106

    assert "[smtp] password: an inline password needs" in str(caught.value)
    assert "inline-secret" not in str(caught.value)


def test_only_one_password_source(tmp_path):
    secret = password_file(tmp_path)

    with pytest.raises(ConfigError) as caught:
        load(smtp_with(tmp_path, password_file=str(secret), password_env="X"))  # noqa: S106

    assert "only one password source" in str(caught.value)


def test_login_without_any_password_is_a_config_error(
    smtp_server, ca_file, tmp_path, monkeypatch
):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    server = smtp_server(tls="implicit")
    table = smtp_table(server, ca_file, tmp_path, password_file=None)
    transport = transport_for(write_config(tmp_path, smtp=table))

    with pytest.raises(ConfigError) as caught:
        send_one(transport)

    assert "no password is configured" in str(caught.value)
    assert server.logins == []
    assert os.environ.get("CREDENTIALS_DIRECTORY") is None


def test_message_over_the_advertised_size_is_shrunk_not_refused(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="implicit", data_size_limit=40_000)
    transport = transport_for(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    )
    message = make_message("big log")
    log_text = "".join(f"line {number} of a noisy log\n" for number in range(10_000))
    message.add_attachment(log_text, filename="app.log")

    outcome = send_one(transport, message)

    assert outcome.delivered == ("ops@example.test",)
    [received] = server.messages
    assert len(received.content) <= 40_000
    body = received.message().get_body(("plain",)).get_content()
    assert "Too large for the mail server" in body


@pytest.mark.parametrize(
    ("security", "port"), [("ssl", 465), ("starttls", 587), ("none", 25)]
)
def test_port_zero_means_the_usual_port_of_the_security_mode(security, port):
    from notifier.config import SmtpSettings

    transport = SmtpTransport(SmtpSettings(security=security), "web-1")

    assert transport.describe() == f"smtp localhost:{port} ({security})"


# Found by the audit -----------------------------------------------------


def test_non_ascii_hostname_greets_with_its_idna_form(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit")
    path = write_config(
        tmp_path,
        notifier={"hostname": "hôst-ü.example"},
        smtp=smtp_table(server, ca_file, tmp_path),
    )

    outcome = send_one(transport_for(path))

    assert outcome.delivered == ("ops@example.test",)
    [received] = server.messages
    assert received.helo == "hôst-ü.example".encode("idna").decode("ascii")
    assert received.helo.startswith("xn--")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_non_ascii_password_logs_in_as_utf8(smtp_server, ca_file, tmp_path, mechanism):
    password = "pässwörd"  # noqa: S105 - the test server's
    excluded = tuple({"PLAIN", "LOGIN", "CRAM-MD5"} - {mechanism})
    server = smtp_server(tls="implicit", password=password, auth_exclude=excluded)
    recorder = Recorder()
    table = smtp_table(server, ca_file, tmp_path)
    password_file(tmp_path, text=password)  # over the one smtp_table wrote
    transport = transport_for(write_config(tmp_path, smtp=table), recorder)

    send_one(transport)

    [login] = server.logins
    assert (login.mechanism, login.password, login.accepted) == (
        mechanism,
        password,
        True,
    )
    assert len(server.messages) == 1
    text = "\n".join(recorder.lines)
    assert f"AUTH {mechanism} <credentials masked>" in text
    for secret in (
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(f"\0{USERNAME}\0{password}".encode()).decode(),
    ):
        assert secret not in text


def test_login_the_server_cannot_check_now_is_transient(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit", refuse_logins=1)
    server.authenticator.refusal_reply = "454 4.7.0 Temporary authentication failure"
    transport = transport_for(
        write_config(tmp_path, smtp=smtp_table(server, ca_file, tmp_path))
    )

    with pytest.raises(ServerUnavailable) as caught:
        send_one(transport)

    assert caught.value.kind is FailureKind.TRANSIENT
    assert caught.value.exit_code == 75
    assert caught.value.code == 454
    assert "could not check the login right now" in str(caught.value)
    assert "454 4.7.0 Temporary authentication failure" in str(caught.value)
    assert "password_file" not in str(caught.value)

    send_one(transport)

    assert len(server.messages) == 1


def test_password_env_that_is_not_utf8_is_a_config_error(tmp_path):
    config = load(smtp_with(tmp_path, password_env="SMTP_PW")).config  # noqa: S106
    # How os.environ shows bytes that are not UTF-8 ("p\xe4ss" in Latin-1).
    environ = {"SMTP_PW": b"p\xe4ss".decode("utf-8", "surrogateescape")}

    with pytest.raises(ConfigError) as caught:
        resolve_password(config.smtp, config.path, environ)

    assert "'SMTP_PW' is not UTF-8 text" in str(caught.value)
    assert "p\udce4ss" not in str(caught.value)
    assert "\\udce4" not in str(caught.value)
