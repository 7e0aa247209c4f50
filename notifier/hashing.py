"""Short content hashes, for recognising data without keeping it.

``hashlib.blake2b`` is taken from its own module: importing ``hashlib``
loads OpenSSL's libcrypto, 3 MiB resident in a daemon that needs no other
hash (``notifier.transports.smtp`` loads it anyway, through ``smtplib``,
when mail goes out over SMTP).
"""

from __future__ import annotations

try:
    from _blake2 import blake2b
except ImportError:  # an interpreter built without it
    from hashlib import blake2b


def short_hash(data: bytes, size: int) -> str:
    """Return the BLAKE2b hash of ``data``, ``size`` bytes long, in hex."""
    return blake2b(data, digest_size=size).hexdigest()
