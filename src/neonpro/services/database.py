"""Operating the database: migrations, the schema-drift check, health and housekeeping.

Thin use cases over :mod:`neonpro.adapters.db` for the API's health endpoints and the
``neonpro db`` and ``neonpro serve`` commands, so the entry points never reach the
adapters themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neonpro.adapters.db import housekeeping, migrate, schema_check
from neonpro.adapters.db.health import check_health
from neonpro.adapters.db.housekeeping import Pruned
from neonpro.adapters.db.migrate import Revisions
from neonpro.adapters.db.schema_check import DriftReport, LiveReport

if TYPE_CHECKING:
    from neonpro.bootstrap import Container


def upgrade(box: Container, revision: str = "head") -> tuple[str, ...]:
    """Apply migrations up to ``revision``; the revisions the database is at after."""
    db = box.database
    migrate.upgrade(db.owner_url, db.roles, revision, audit_key=box.keyring.active_audit_key)
    return migrate.current_revisions(db.owner_url)


def downgrade(box: Container, revision: str) -> tuple[str, ...]:
    """Revert migrations down to ``revision`` (roles are never dropped); where it is after."""
    db = box.database
    migrate.downgrade(db.owner_url, db.roles, revision)
    return migrate.current_revisions(db.owner_url)


def revisions(box: Container) -> Revisions:
    """The database's revision(s) and the code's head."""
    return migrate.revisions(box.database.owner_url)


def at_head(box: Container) -> bool:
    """Whether the database is migrated to the code's head."""
    return revisions(box).at_head


def history() -> list[tuple[str, str | None, str]]:
    """(revision, down revision, message) from base to head."""
    return migrate.history()


def drift(box: Container, *, live: bool = True) -> tuple[DriftReport, LiveReport | None]:
    """Models against migrations, and (``live``) the configured database against both."""
    db = box.database
    report = schema_check.check_drift(db.owner_url, db.roles)
    live_report = schema_check.check_live(db.owner_url, db.owner_url, db.roles) if live \
        else None
    return report, live_report


def health(box: Container, *, drift: bool = False) -> dict[str, Any]:
    """Every readiness check (connectivity, migrations, RLS, commits, restore hold, and
    schema drift when asked): ``ok`` and each check's result."""
    return check_health(box.database, drift=drift)


def prune(box: Container) -> Pruned:
    """Forget commit tokens, expired idempotency keys and sign-in state past their use."""
    return housekeeping.prune_expired(box.database)
