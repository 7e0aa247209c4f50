"""glibc malloc settings that keep the long-running daemon small.

Two defaults of glibc's allocator cost a threaded, mostly idle Python
daemon more memory than everything it imports:

- Each thread that allocates gets an arena of its own, up to eight per core,
  and an arena keeps what it freed. The daemon's check threads took 2 to 3
  MiB each. Two arenas serve its threads (mostly waiting on the GIL anyway).
- The threshold above which a block is mapped on its own, and given back
  when freed, grows to the largest block freed so far; after one large read
  buffer, later ones come from the heap and stay resident. A fixed
  threshold (128 KiB, glibc's starting value) gives them back.

Both are set with ``mallopt`` at start, before any thread exists, unless the
environment already sets them (``MALLOC_ARENA_MAX``, ``GLIBC_TUNABLES``...):
the administrator's choice wins. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Final

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD: Final = -3
M_ARENA_MAX: Final = -8
ARENA_MAX: Final = 2
MMAP_THRESHOLD_BYTES: Final = 128 * 1024
_ENVIRONMENT_SETTINGS: Final = (
    "GLIBC_TUNABLES",
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD_",
)


def tune_malloc() -> bool:
    """Apply the daemon's malloc settings; return whether they were applied."""
    chosen = [name for name in _ENVIRONMENT_SETTINGS if name in os.environ]
    if chosen:
        log.debug("malloc settings left as the environment sets them: %s", chosen)
        return False

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        log.debug("no glibc mallopt here; malloc settings left as they are")
        return False

    # mallopt returns 1 on success, 0 on error.
    applied = [
        mallopt(M_ARENA_MAX, ARENA_MAX) == 1,
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1,
    ]
    if not all(applied):
        log.debug("glibc refused a malloc setting; its default stays")
    return all(applied)
