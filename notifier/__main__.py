"""Lets ``python -m notifier`` work like the ``notifier`` command."""

from __future__ import annotations

import sys

from notifier.cli import main

sys.exit(main())
