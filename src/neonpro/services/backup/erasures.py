"""Erasures that must survive a restore: read the erasure ledgers (the live database's,
the later backups'), re-apply them, and hold a restored database closed to the
application role until they are proven re-applied (the restore hold).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.backup import Backup, BackupError, LedgerUnreadable, Target
from neonpro.domain.ports_backup import BackupSite, BackupStore, ScratchServer
from neonpro.domain.vocabulary import AuditAction, AuditResource, RiskLevel
from neonpro.services.backup.common import record_event, store_of

log = structlog.get_logger(__name__)


def ledger_from(server: ScratchServer, target: Target,
                warnings: list[str] | None = None) -> list[dict[str, Any]] | None:
    """The erasure ledger of a live database. Unreadable: with ``warnings``, a warning
    is added and None returned; without, ``BackupError`` (never silently nothing)."""
    try:
        return server.read_ledger(target)
    except LedgerUnreadable as exc:
        message = (f"the erasure ledger of {target.describe()} could not be read "
                   f"({exc.cause}): erasures recorded only there are not re-applied")
        if warnings is None:
            raise BackupError(message + "; nothing was changed") from None
        warnings.append(message)
        log.warning("erasure_ledger_unreadable", database=target.describe(), error=exc.cause)
        return None


def later_ledgers(store: BackupStore, backup: Backup) -> list[dict[str, Any]]:
    """Ledger entries from every backup of ``store`` taken after ``backup`` (a restore of
    ``backup`` re-applies them)."""
    entries: list[dict[str, Any]] = []
    for other in store.catalog():
        if other.finished_at > backup.finished_at:
            entries += store.ledger(other)
    return entries


def finish_command(backup_id: str) -> str:
    return (f"`neonpro backup reapply {backup_id} --target URL` once the live database's "
            "erasure ledger (NEONPRO_DATABASE_URL) answers, or the same with "
            "--accept-erasure-risk to open it without (recorded in the audit trail)")


def hold_live(site: BackupSite, reason: str) -> None:
    """Close ``site``'s database to the application role (a point-in-time restore whose
    erasures are not proven re-applied yet)."""
    server = site.scratch_server
    server.hold(server.source, reason)


def lift_live(site: BackupSite) -> None:
    server = site.scratch_server
    server.lift(server.source)


def record_accepted_risk(restored: BackupSite, backup_id: str, why: list[str],
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


def finish_restore(site: BackupSite, backup: Backup, target_url: str, *,
                   accept_erasure_risk: bool = False,
                   actor: Actor = SystemActors.BACKUP) -> FinishReport:
    """Finish a restore left on hold: read the live database's erasure ledger (it must
    answer now, unless ``accept_erasure_risk``), re-apply every erasure it and the later
    backups know, and open the database to the application role again."""
    server = site.scratch_server
    target = server.target(target_url)
    warnings: list[str] = []
    live = _live_ledger(server, target, warnings, accept_erasure_risk=accept_erasure_risk)
    proven = live is not None
    if not proven and not accept_erasure_risk:
        raise BackupError(warnings[0] + "; the database stays closed: run this again once "
                          "it answers, or add --accept-erasure-risk")
    entries = (live or []) + later_ledgers(store_of(site, backup), backup)
    with site.restored(target) as restored:
        reapplied = reapply_ledger(restored, entries, actor)
        server.lift(target)
        if not proven:
            record_accepted_risk(restored, backup.id, warnings, actor)
        health = restored.health()
        record_event(restored, AuditAction.RESTORE, backup.id, {
            "phase": "finish", "reapplied_erasures": reapplied, "erasures_proven": proven},
            actor=actor)
    return FinishReport(backup.id, target.describe(), reapplied, proven, health)


def _live_ledger(server: ScratchServer, target: Target, warnings: list[str], *,
                 accept_erasure_risk: bool) -> list[dict[str, Any]] | None:
    """The live database's ledger, for finishing a restore into ``target``: None (and a
    warning) when ``target`` is the live database itself or, with the risk accepted,
    when it cannot be read."""
    if server.source == target:
        warnings.append(f"{target.describe()} is the live database itself: erasures decided "
                        "after the newest backup are recorded nowhere else")
        return None
    return ledger_from(server, server.source, warnings if accept_erasure_risk else None)


def known_erasures(site: BackupSite, warnings: list[str]) -> list[dict[str, Any]]:
    """Every erasure known outside a database about to be rolled back: its own live ledger
    (a warning if unreachable) and the ledgers of every logical backup."""
    server, store = site.scratch_server, site.backup_store()
    entries = ledger_from(server, server.source, warnings) or []
    for backup in store.catalog():
        entries += store.ledger(backup)
    return entries


def reapply_ledger(site: BackupSite, entries: list[dict[str, Any]],
                   actor: Actor = SystemActors.BACKUP) -> int:
    """Append the ledger entries ``site``'s database lacks, then erase again every
    patient the ledger names whose row came back unerased. Returns how many."""
    server = site.scratch_server
    server.insert_ledger(server.source, _unique(entries))
    return site.reapply_erasures(actor)


def _unique(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for e in entries:
        seen.setdefault(e["id"], e)
    return sorted(seen.values(), key=lambda e: e["decided_at"])
