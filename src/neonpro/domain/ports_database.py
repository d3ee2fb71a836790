"""Operating the database as a port: migrations, the drift check, health, housekeeping.

``services/database.py`` works over :class:`DatabaseOps`; ``adapters/db/operations.py``
implements it (Alembic, scratch databases, the health probes), and the composition root
builds it (``Container.database_ops``).
"""

from __future__ import annotations

from typing import Any, Protocol

from neonpro.domain.operations import Distributed, DriftReport, LiveReport, Pruned, Revisions


class DatabaseOps(Protocol):
    def upgrade(self, revision: str) -> tuple[str, ...]:
        """Apply migrations up to ``revision``; the revisions the database is at after."""
        ...
    def downgrade(self, revision: str) -> tuple[str, ...]:
        """Revert migrations down to ``revision``; the revisions it is at after."""
        ...
    def revisions(self) -> Revisions: ...
    def history(self) -> list[tuple[str, str | None, str]]:
        """(revision, down revision, message) from base to head (no database needed)."""
        ...
    def drift(self, *, live: bool) -> tuple[DriftReport, LiveReport | None]: ...
    def health(self, *, drift: bool) -> dict[str, Any]: ...
    def prune(self) -> Pruned: ...
    def distribute(self) -> Distributed:
        """On a Citus coordinator: distribute a database already at head (docs/scaling.md)."""
        ...
