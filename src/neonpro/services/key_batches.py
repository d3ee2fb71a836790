"""The batch sizes of key upkeep (rotation, re-indexing), in a module of their own: the
command line declares its ``--batch`` option with them without loading the services."""

from __future__ import annotations

from typing import Final

DEFAULT_BATCH: Final = 500
MAX_BATCH: Final = 10_000
