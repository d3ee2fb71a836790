"""What every backup use case shares: the audit event each one records (and seals)."""

from __future__ import annotations

from typing import Any

from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.backup import Backup, Timings
from neonpro.domain.ports_backup import BackupSite, BackupStore
from neonpro.domain.vocabulary import AuditAction, AuditResource, AuditStatus, RiskLevel

__all__ = ["Timings", "catalog", "find", "record_event", "store_of"]


def catalog(store: BackupStore) -> list[Backup]:
    """Every complete backup of ``store``, oldest first."""
    return store.catalog()


def find(store: BackupStore, backup_id: str) -> Backup:
    """The complete backup ``backup_id`` of ``store`` (``BackupError`` if none)."""
    return store.find(backup_id)


def store_of(site: BackupSite, backup: Backup) -> BackupStore:
    """The backup directory ``backup`` was found in (its later backups are there too)."""
    return site.backup_store(backup.path.parent)


def record_event(site: BackupSite, action: AuditAction, resource_id: str,
                 details: dict[str, Any], *, ok: bool = True,
                 actor: Actor = SystemActors.BACKUP) -> None:
    """Record a backup event in ``site``'s database, and seal it."""
    uow = site.service_uow(actor)
    with uow:
        uow.audit.record(action, AuditResource.BACKUP, resource_id, risk=RiskLevel.HIGH,
                         status=AuditStatus.SUCCESS if ok else AuditStatus.FAILURE,
                         details=details)
        uow.commit()
    site.seal_audit(actor)
