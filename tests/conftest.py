"""Fixtures shared by every test module.

The SMTP fixtures (``tls_ca``, ``server_cert``, ``ca_file``, ``smtp_server``,
``hanging_server``) live in ``tests/smtp_server.py``, which documents them.
"""

from __future__ import annotations

from smtp_server import ca_file, hanging_server, server_cert, smtp_server, tls_ca

__all__ = ["ca_file", "hanging_server", "server_cert", "smtp_server", "tls_ca"]
