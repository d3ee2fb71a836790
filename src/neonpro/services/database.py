"""Operating the database: migrations, the schema-drift check, health and housekeeping.

Thin use cases over the :class:`~neonpro.domain.ports_database.DatabaseOps` port (the
composition root's ``database_ops``) for the API's health endpoints and the ``neonpro db``
and ``neonpro serve`` commands, so the entry points never reach the adapters themselves.
"""

from __future__ import annotations

from typing import Any

from neonpro.domain.operations import (
    Distributed,
    DriftReport,
    LiveReport,
    Pruned,
    Revisions,
)
from neonpro.domain.ports_database import DatabaseOps


def upgrade(ops: DatabaseOps, revision: str = "head") -> tuple[str, ...]:
    """Apply migrations up to ``revision``; the revisions the database is at after."""
    return ops.upgrade(revision)


def downgrade(ops: DatabaseOps, revision: str) -> tuple[str, ...]:
    """Revert migrations down to ``revision`` (roles are never dropped); where it is after."""
    return ops.downgrade(revision)


def revisions(ops: DatabaseOps) -> Revisions:
    """The database's revision(s) and the code's head."""
    return ops.revisions()


def at_head(ops: DatabaseOps) -> bool:
    """Whether the database is migrated to the code's head."""
    return revisions(ops).at_head


def history(ops: DatabaseOps) -> list[tuple[str, str | None, str]]:
    """(revision, down revision, message) from base to head."""
    return ops.history()


def drift(ops: DatabaseOps, *, live: bool = True) -> tuple[DriftReport, LiveReport | None]:
    """Models against migrations, and (``live``) the configured database against both."""
    return ops.drift(live=live)


def health(ops: DatabaseOps, *, drift: bool = False) -> dict[str, Any]:
    """Every readiness check (connectivity, migrations, RLS, commits, restore hold, and
    schema drift when asked): ``ok`` and each check's result."""
    return ops.health(drift=drift)


def prune(ops: DatabaseOps) -> Pruned:
    """Forget commit tokens, expired idempotency keys and sign-in state past their use."""
    return ops.prune()


def distribute(ops: DatabaseOps) -> Distributed:
    """Distribute a database that already holds data on the Citus coordinator it is on
    (restored from one server): what revisions 0017-0020 do on Citus, in three transactions
    (the API stopped meanwhile; run again if one fails)."""
    return ops.distribute()
