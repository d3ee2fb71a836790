"""Erasures that must survive a restore: read the erasure ledgers (the live database's,
the later backups'), re-apply them, and hold a restored database closed to the
application role until they are proven re-applied (:mod:`neonpro.adapters.db.restore_hold`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import structlog

from neonpro.adapters.backup import server
from neonpro.adapters.backup.pgtools import BackupError, Target
from neonpro.adapters.backup.store import Backup, backup_ledger, catalog, later_ledgers
from neonpro.adapters.db.health import check_health
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.vocabulary import AuditAction, AuditResource, RiskLevel
from neonpro.services.backup.common import record_event, roles_of, source_of
from neonpro.services.erasure import reapply_erasures

log = structlog.get_logger(__name__)


def ledger_from(target: Target, roles: Roles,
                warnings: list[str] | None = None) -> list[dict[str, Any]] | None:
    """The erasure ledger of a live database. Unreadable: with ``warnings``, a warning
    is added and None returned; without, ``BackupError`` (never silently nothing)."""
    try:
        return server.read_ledger(target, roles)
    except psycopg.Error as exc:
        message = (f"the erasure ledger of {target.describe()} could not be read "
                   f"({type(exc).__name__}): erasures recorded only there are not re-applied")
        if warnings is None:
            raise BackupError(message + "; nothing was changed") from None
        warnings.append(message)
        log.warning("erasure_ledger_unreadable", database=target.describe(),
                    error=type(exc).__name__)
        return None


def finish_command(backup_id: str) -> str:
    return (f"`neonpro backup reapply {backup_id} --target URL` once the live database's "
            "erasure ledger (NEONPRO_DATABASE_URL) answers, or the same with "
            "--accept-erasure-risk to open it without (recorded in the audit trail)")


def hold_live(container: Container, reason: str) -> None:
    """Close ``container``'s database to the application role (a point-in-time restore
    whose erasures are not proven re-applied yet)."""
    server.hold(source_of(container), roles_of(container), reason)


def lift_live(container: Container) -> None:
    server.lift(source_of(container), roles_of(container))


def record_accepted_risk(restored: Container, backup_id: str, why: list[str],
                         actor: Actor) -> None:
    """Opening a restore whose erasures were not proven re-applied is a decision someone
    answers for: a critical event in the restored database's audit trail."""
    uow = restored.service_uow(actor)
    with uow:
        uow.audit.record(AuditAction.RESTORE, AuditResource.BACKUP, backup_id,
                         risk=RiskLevel.CRITICAL,
                         details={"erasures_proven": False, "accepted_risk": True,
                                  "why": [w[:300] for w in why]})
        uow.commit()
    restored.seal_audit(actor)


@dataclass
class FinishReport:
    backup_id: str
    target: str
    reapplied_erasures: int
    erasures_proven: bool
    health: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"backup": self.backup_id, "target": self.target,
                "reapplied_erasures": self.reapplied_erasures,
                "erasures_proven": self.erasures_proven, "health_ok": self.health.get("ok")}


def finish_restore(container: Container, backup: Backup, target_url: str, *,
                   accept_erasure_risk: bool = False,
                   actor: Actor = SystemActors.BACKUP) -> FinishReport:
    """Finish a restore left on hold: read the live database's erasure ledger (it must
    answer now, unless ``accept_erasure_risk``), re-apply every erasure it and the later
    backups know, and open the database to the application role again."""
    roles = roles_of(container)
    target = Target.from_url(target_url)
    warnings: list[str] = []
    live = _live_ledger(container, target, warnings, accept_erasure_risk=accept_erasure_risk)
    proven = live is not None
    if not proven and not accept_erasure_risk:
        raise BackupError(warnings[0] + "; the database stays closed: run this again once "
                          "it answers, or add --accept-erasure-risk")
    entries = (live or []) + later_ledgers(backup)
    restored = Container(container.settings, database_url=target.url(),
                         keyring=container.keyring)
    try:
        reapplied = reapply_ledger(restored, entries, actor)
        server.lift(target, roles)
        if not proven:
            record_accepted_risk(restored, backup.id, warnings, actor)
        health = check_health(restored.database)
        record_event(restored, AuditAction.RESTORE, backup.id, {
            "phase": "finish", "reapplied_erasures": reapplied, "erasures_proven": proven},
            actor=actor)
    finally:
        restored.close()
    return FinishReport(backup.id, target.describe(), reapplied, proven, health)


def _live_ledger(container: Container, target: Target, warnings: list[str], *,
                 accept_erasure_risk: bool) -> list[dict[str, Any]] | None:
    """The live database's ledger, for finishing a restore into ``target``: None (and a
    warning) when ``target`` is the live database itself or, with the risk accepted,
    when it cannot be read."""
    source = source_of(container)
    if source == target:
        warnings.append(f"{target.describe()} is the live database itself: erasures decided "
                        "after the newest backup are recorded nowhere else")
        return None
    return ledger_from(source, roles_of(container), warnings if accept_erasure_risk else None)


def known_erasures(container: Container, warnings: list[str]) -> list[dict[str, Any]]:
    """Every erasure known outside a database about to be rolled back: its own live ledger
    (a warning if unreachable) and the ledgers of every logical backup."""
    entries = ledger_from(source_of(container), roles_of(container), warnings) or []
    for backup in catalog(container.settings.backup_dir):
        entries += backup_ledger(backup)
    return entries


def reapply_ledger(container: Container, entries: list[dict[str, Any]],
                   actor: Actor = SystemActors.BACKUP) -> int:
    """Append the ledger entries ``container``'s database lacks, then erase again every
    patient the ledger names whose row came back unerased. Returns how many."""
    server.insert_ledger(source_of(container), roles_of(container), _unique(entries))
    return reapply_erasures(container, actor)


def _unique(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for e in entries:
        seen.setdefault(e["id"], e)
    return sorted(seen.values(), key=lambda e: e["decided_at"])
