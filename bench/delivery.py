"""Benchmark: delivering queued alerts, one connection per batch vs per message.

Run from the repository root (the test dependencies aiosmtpd and trustme must
be installed)::

    .venv/bin/python bench/delivery.py [--messages 1000]

It starts the test suite's aiosmtpd server on 127.0.0.1 with implicit TLS and
AUTH (trustme certificates), queues N messages in a fresh outbox and delivers
them through the real sender twice:

- batch: one ``deliver_due()`` for all N, which opens one connection (one TLS
  handshake, one login) for the whole batch;
- per message: each message queued alone and delivered by its own
  ``deliver_due()``, so every message pays for its own connection.

Both go through the same outbox, transport and bookkeeping; only queueing is
left out of the timing. It prints messages per second for each and the
ratio, the reference being measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import email.policy
import logging
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import tomli_w
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from smtp_server import PASSWORD, USERNAME, SmtpServer

from notifier.delivery import Sender
from notifier.loader import load
from notifier.outbox import Outbox
from notifier.transport import create_transport


def make_message(number: int) -> EmailMessage:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "notifier@bench.example.test"
    message["To"] = "ops@example.test"
    message["Subject"] = f"[notifier] CRITICAL bench: alert {number}"
    message.set_content(f"alert {number}\n" + "evidence line\n" * 20)
    return message


def write_config(folder: Path, server: SmtpServer, ca_file: Path) -> Path:
    secret = folder / "password"
    secret.write_text(PASSWORD)
    secret.chmod(0o600)
    document = {
        "notifier": {
            "hostname": "bench.example.test",
            "state_dir": str(folder / "state"),
        },
        "smtp": {
            "host": server.host,
            "port": server.port,
            "security": "ssl",
            "username": USERNAME,
            "password_file": str(secret),
            "ca_file": str(ca_file),
        },
    }
    path = folder / "notifier.toml"
    path.write_text(tomli_w.dumps(document))
    path.chmod(0o600)
    return path


def sender_for(path: Path) -> Sender:
    loaded = load(path)
    transport = create_transport(loaded.config, loaded.registry.transport_map())
    outbox = Outbox.in_state_dir(loaded.config.notifier.state_dir)
    return Sender(loaded.config, transport, outbox)


def batch(sender: Sender, count: int) -> float:
    for number in range(count):
        sender.outbox.put(make_message(number))
    started = time.perf_counter()
    report = sender.deliver_due()
    elapsed = time.perf_counter() - started
    assert len(report.sent) == count, report
    return elapsed


def per_message(sender: Sender, count: int) -> float:
    elapsed = 0.0
    for number in range(count):
        sender.outbox.put(make_message(number))
        started = time.perf_counter()
        report = sender.deliver_due()
        elapsed += time.perf_counter() - started
        assert len(report.sent) == 1, report
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    count = parser.parse_args().messages
    logging.basicConfig(level=logging.ERROR)

    ca = trustme.CA()
    with (
        tempfile.TemporaryDirectory(prefix="notifier-bench-") as scratch,
        SmtpServer(tls="implicit", cert=ca.issue_cert("127.0.0.1")) as server,
    ):
        folder = Path(scratch)
        ca_file = folder / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        batch_dir, single_dir = folder / "batch", folder / "single"
        batch_dir.mkdir()
        single_dir.mkdir()

        batch_seconds = batch(
            sender_for(write_config(batch_dir, server, ca_file)), count
        )
        connections = server.connections
        single_seconds = per_message(
            sender_for(write_config(single_dir, server, ca_file)), count
        )
        assert len(server.messages) == 2 * count
        assert connections == 1
        assert server.connections == 1 + count

    batch_rate = count / batch_seconds
    single_rate = count / single_seconds
    print(f"messages: {count} over implicit TLS with login, aiosmtpd on 127.0.0.1")
    print(f"one connection per batch:   {batch_rate:8.1f} messages/s")
    print(f"one connection per message: {single_rate:8.1f} messages/s")
    print(f"ratio (batch / per message): {batch_rate / single_rate:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
