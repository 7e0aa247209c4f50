"""``notifier test-send`` as a user runs it: a subprocess against the real
aiosmtpd server over real TLS, judged by its output and exit status."""

from __future__ import annotations

import base64
import datetime
import subprocess
import sys

import pytest
from smtp_server import PASSWORD, USERNAME, reserve_port
from test_transport import password_file, smtp_table, write_config

pytestmark = pytest.mark.slow


def test_send(path, *extra):
    return subprocess.run(
        [sys.executable, "-m", "notifier", "test-send", "-c", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


test_send.__test__ = False  # a helper, not a test


def config_for(server, ca_file, tmp_path, **extra):
    table = smtp_table(server, ca_file, tmp_path, **extra)
    return write_config(tmp_path, smtp=table, mail={"to": ["ops@example.test"]})


def test_success_prints_every_step_and_exits_0(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit")

    result = test_send(config_for(server, ca_file, tmp_path))

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"connect   127.0.0.1:{server.port} (implicit TLS)" in out
    assert "TLSv1.3, cipher" in out
    assert "cert      subject organizationName=trustme" in out
    assert "names 127.0.0.1" in out
    assert "expires 3000-01-01" in out  # trustme's default
    assert "AUTH mechanisms: LOGIN PLAIN" in out
    assert f"login     as {USERNAME!r} with PLAIN" in out
    assert "235" in out
    assert "server: 250 2.0.0 OK queued as test" in out
    assert "verdict   OK" in out
    [received] = server.messages
    assert "test message" in received.message()["Subject"]
    assert received.rcpt_tos == ("ops@example.test",)


def test_attachment_and_explicit_recipient(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="starttls")
    log = tmp_path / "app.log"
    log.write_text("line one\nline two\n")

    result = test_send(
        config_for(server, ca_file, tmp_path),
        "--to",
        "someone@example.test",
        "--attach",
        str(log),
    )

    assert result.returncode == 0, result.stderr
    assert "(STARTTLS)" in result.stdout
    [received] = server.messages
    assert received.rcpt_tos == ("someone@example.test",)
    names = [part.get_filename() for part in received.message().iter_attachments()]
    assert any(name and name.startswith("app.log") for name in names)


def test_wrong_password_exits_77_with_the_servers_answer(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="implicit", password="something else")  # noqa: S106

    result = test_send(config_for(server, ca_file, tmp_path))

    assert result.returncode == 77
    assert "login refused" in result.stderr
    assert "535 5.7.8 Authentication credentials invalid" in result.stderr
    assert "check username and password_file" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert len(server.logins) == 1


def test_nothing_listening_exits_69(tmp_path, ca_file):
    with reserve_port() as holder:
        port = holder.getsockname()[1]
        table = {"host": "127.0.0.1", "port": port, "ca_file": str(ca_file)}
        path = write_config(tmp_path, smtp=table, mail={"to": ["ops@example.test"]})
        result = test_send(path)

    assert result.returncode == 69
    assert f"connection refused: nothing listens on 127.0.0.1:{port}" in result.stderr


def test_untrusted_certificate_exits_69(smtp_server, tmp_path):
    server = smtp_server(tls="implicit")

    result = test_send(config_for(server, None, tmp_path))

    assert result.returncode == 69
    assert "certificate not verified" in result.stderr
    assert "set [smtp] ca_file" in result.stderr
    assert server.logins == []


def test_certificate_for_another_host_exits_69(smtp_server, tls_ca, ca_file, tmp_path):
    server = smtp_server(tls="implicit", cert=tls_ca.issue_cert("mail.example.test"))

    result = test_send(config_for(server, ca_file, tmp_path))

    assert result.returncode == 69
    assert "does not match the host name '127.0.0.1'" in result.stderr


def test_certificate_about_to_expire_is_a_warning(
    smtp_server, tls_ca, ca_file, tmp_path
):
    soon = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(days=5, hours=1)
    server = smtp_server(
        tls="implicit", cert=tls_ca.issue_cert("127.0.0.1", not_after=soon)
    )

    result = test_send(config_for(server, ca_file, tmp_path))

    assert result.returncode == 0, result.stderr
    assert "certificate expires in 5 days" in result.stderr


def test_implicit_tls_against_a_starttls_port_names_the_fix(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="starttls")

    result = test_send(config_for(server, ca_file, tmp_path, security="ssl"))

    assert result.returncode == 69
    assert "the port answers in plain text ('220 " in result.stderr
    assert 'set security = "starttls"' in result.stderr


def test_starttls_against_an_implicit_tls_port_names_the_fix(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="implicit")
    path = config_for(server, ca_file, tmp_path, security="starttls", timeout="1s")

    result = test_send(path)

    assert result.returncode == 69
    assert "no answer within 1s" in result.stderr
    assert "completed a TLSv1.3 handshake" in result.stderr
    assert 'set security = "ssl"' in result.stderr


def test_debug_shows_the_dialogue_without_the_credentials(
    smtp_server, ca_file, tmp_path
):
    server = smtp_server(tls="implicit")

    result = test_send(config_for(server, ca_file, tmp_path), "--debug")

    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "  | send: 'ehlo web-1.example.test" in output
    assert "AUTH PLAIN <credentials masked>" in output
    for secret in (
        PASSWORD,
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode(),
    ):
        assert secret not in output


def test_configuration_error_exits_78(tmp_path):
    path = write_config(
        tmp_path, smtp={"host": "mail.example.test", "security": "none"}
    )

    result = test_send(path, "--to", "ops@example.test")

    assert result.returncode == 78
    assert "[smtp] security" in result.stderr
    assert "Traceback" not in result.stderr


def test_password_file_readable_by_others_exits_78(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit")
    path = config_for(server, ca_file, tmp_path)
    password_file(tmp_path, mode=0o640)

    result = test_send(path)

    assert result.returncode == 78
    assert "readable by group or other" in result.stderr
    assert server.connections == 0


def test_no_recipient_anywhere_exits_78(tmp_path):
    path = write_config(tmp_path, mail={"transport": "file"})

    result = test_send(path)

    assert result.returncode == 78
    assert "[mail] to: is empty and no --to was given" in result.stderr


def test_file_transport_writes_the_message(tmp_path):
    folder = tmp_path / "mail"
    path = write_config(
        tmp_path,
        mail={"transport": "file", "to": ["ops@example.test"]},
        file={"directory": str(folder)},
    )

    result = test_send(path)

    assert result.returncode == 0, result.stderr
    assert f"transport file {folder}" in result.stdout
    [written] = folder.glob("*.eml")
    assert b"test message" in written.read_bytes()


# Found by the audit -----------------------------------------------------


def test_non_ascii_hostname_sends(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit")
    path = write_config(
        tmp_path,
        notifier={"hostname": "hôst-ü.example"},
        smtp=smtp_table(server, ca_file, tmp_path),
        mail={"to": ["ops@example.test"]},
    )

    result = test_send(path)

    assert result.returncode == 0, result.stderr
    [received] = server.messages
    assert received.helo == "hôst-ü.example".encode("idna").decode("ascii")
    assert "hôst-ü.example" in received.message()["Subject"]


def test_non_ascii_password_logs_in(smtp_server, ca_file, tmp_path):
    password = "pässwörd"  # noqa: S105 - the test server's
    server = smtp_server(tls="implicit", password=password)
    path = config_for(server, ca_file, tmp_path)
    password_file(tmp_path, text=password)

    result = test_send(path, "--debug")

    assert result.returncode == 0, result.stderr
    assert server.logins[-1].accepted
    output = result.stdout + result.stderr
    assert password not in output
    assert "ä" not in output


def test_login_the_server_cannot_check_now_exits_75(smtp_server, ca_file, tmp_path):
    server = smtp_server(tls="implicit", refuse_logins=1)
    server.authenticator.refusal_reply = "454 4.7.0 Temporary authentication failure"

    result = test_send(config_for(server, ca_file, tmp_path))

    assert result.returncode == 75
    assert "the server could not check the login right now" in result.stderr
    assert "454 4.7.0 Temporary authentication failure" in result.stderr
    assert "check username and password_file" not in result.stderr
    assert "login refused" not in result.stderr


@pytest.mark.parametrize("problem", ["missing", "a folder"])
def test_attachment_that_cannot_be_read_is_a_usage_error(
    smtp_server, ca_file, tmp_path, problem
):
    server = smtp_server(tls="implicit")
    attach = tmp_path / "missing.log"
    if problem == "a folder":
        attach = tmp_path / "logs"
        attach.mkdir()

    result = test_send(config_for(server, ca_file, tmp_path), "--attach", str(attach))

    assert result.returncode == 64
    [line] = result.stderr.splitlines()
    assert line.startswith(f"notifier: --attach {attach}: ")
    assert "Traceback" not in result.stderr
    assert server.connections == 0
    assert server.messages == []
