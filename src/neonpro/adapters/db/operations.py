"""The database's operations (``domain.ports_database.DatabaseOps``) over the adapters that
do them: Alembic (``migrate``), the scratch-database drift check (``schema_check``), the
health probes and the housekeeping deletes.

The database and the key ring are reached lazily: ``history`` needs neither, and only an
upgrade needs the audit key (revision 0011 signs the chains sealed before audit keys).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from neonpro.adapters.db import distribute, housekeeping, migrate, schema_check
from neonpro.adapters.db.health import check_health
from neonpro.domain.operations import Distributed, DriftReport, LiveReport, Pruned, Revisions

if TYPE_CHECKING:
    from neonpro.adapters.crypto import KeyRing
    from neonpro.adapters.db.database import Database


class SqlDatabaseOps:
    """``DatabaseOps`` of the database the composition root configures."""

    def __init__(self, database: Callable[[], Database],
                 keyring: Callable[[], KeyRing]) -> None:
        self._database = database
        self._keyring = keyring

    def upgrade(self, revision: str) -> tuple[str, ...]:
        db = self._database()
        migrate.upgrade(db.owner_url, db.roles, revision,
                        audit_key=self._keyring().active_audit_key)
        return migrate.current_revisions(db.owner_url)

    def downgrade(self, revision: str) -> tuple[str, ...]:
        db = self._database()
        migrate.downgrade(db.owner_url, db.roles, revision)
        return migrate.current_revisions(db.owner_url)

    def revisions(self) -> Revisions:
        return migrate.revisions(self._database().owner_url)

    def history(self) -> list[tuple[str, str | None, str]]:
        return migrate.history()

    def drift(self, *, live: bool) -> tuple[DriftReport, LiveReport | None]:
        db = self._database()
        report = schema_check.check_drift(db.owner_url, db.roles)
        live_report = schema_check.check_live(db.owner_url, db.owner_url, db.roles) if live \
            else None
        return report, live_report

    def health(self, *, drift: bool) -> dict[str, Any]:
        return check_health(self._database(), drift=drift)

    def prune(self) -> Pruned:
        return housekeeping.prune_expired(self._database())

    def distribute(self) -> Distributed:
        db = self._database()
        return distribute.distribute(db.owner_url, db.roles)
