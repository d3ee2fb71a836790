"""Audit use cases for the DPO and operators: search, investigate, report, verify.

Reading the audit trail is itself audited (who looked at whose access history).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neonpro.adapters.checkpoints import CheckpointResult
from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db import audit as chains
from neonpro.adapters.db.audit import ChainReport, Checkpoint, PruneResult, verify_chains
from neonpro.adapters.db.uow import SqlUnitOfWork, record_refusal
from neonpro.domain.actors import Actor
from neonpro.domain.errors import DomainError
from neonpro.domain.paging import Page
from neonpro.domain.schemas.audit import AuditEvent
from neonpro.domain.vocabulary import AuditAction, AuditResource, RiskLevel
from neonpro.queries import audit as audit_queries
from neonpro.queries.compliance import compliance_report

if TYPE_CHECKING:
    from neonpro.bootstrap import Container


def search_audit(uow: SqlUnitOfWork, filters: audit_queries.AuditFilters, limit: int = 50,
                 cursor: str | None = None) -> Page[AuditEvent]:
    with uow:
        clinic = uow.clinic_id
        assert clinic is not None  # noqa: S101  (a tenant unit of work)
        page = audit_queries.search(uow.connection, clinic, filters, uow.blind.cursors,
                                     limit, cursor)
        uow.audit.record(AuditAction.VIEW, AuditResource.AUDIT_EVENTS,
                         patient_id=filters.patient_id,
                         details={"returned": len(page.items)})
        uow.commit()
    return page


def investigate_access(uow: SqlUnitOfWork, since: datetime, until: datetime, *,
                       actor_id: uuid.UUID | None = None,
                       ip_address: str | None = None) -> audit_queries.Investigation:
    """Which patients and data categories an actor or address touched in a window."""
    with uow:
        clinic = uow.clinic_id
        assert clinic is not None  # noqa: S101
        result = audit_queries.investigate(uow.connection, clinic, since, until,
                                           actor_id=actor_id, ip_address=ip_address)
        uow.audit.record(AuditAction.VIEW, AuditResource.AUDIT_EVENTS, risk=RiskLevel.MEDIUM,
                         details={"investigation": True, "events": result.events})
        uow.commit()
    return result


def clinic_report(uow: SqlUnitOfWork, since: datetime, until: datetime,
                  keyring: KeyRing) -> dict[str, Any]:
    """The compliance report of the unit of work's clinic, with its chains verified."""
    clinic = uow.clinic_id
    assert clinic is not None  # noqa: S101
    chains = verify_chains(uow.db, uow.actor, keyring, clinic)
    chain = next((c.as_dict() for c in chains if c.chain == "audit_events"), {})
    with uow:
        report = compliance_report(uow.connection, clinic, since, until, chain)
        uow.audit.record(AuditAction.EXPORT, AuditResource.COMPLIANCE_REPORT,
                         details={"from": since.isoformat(), "to": until.isoformat()})
        uow.commit()
    return report


# ------------------------------------------------------------------ the chains themselves
def seal(box: Container, actor: Actor) -> int:
    """Seal every pending event of every chain now; how many were sealed."""
    return chains.seal_pending(box.database, box.keyring, actor)


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """The signed chain heads in a checkpoint file, a directory of them, or syslog lines
    (OSError, ValueError, KeyError or TypeError when they cannot be read)."""
    return chains.read_checkpoints(path)


def verify(box: Container, actor: Actor, clinic: uuid.UUID | None = None,
           checkpoints: list[Checkpoint] | None = None) -> list[ChainReport]:
    """Recompute every chain (or one clinic's), each checked against ``checkpoints``."""
    return verify_chains(box.database, actor, box.keyring, clinic, checkpoints)


def verify_clinic(box: Container, actor: Actor, clinic: uuid.UUID) -> dict[str, Any]:
    """One clinic's audit chain, and its erasure-ledger chain under ``erasure_ledger``;
    ``ok`` is false with the first broken link of either."""
    reports = {r.chain: r for r in verify(box, actor, clinic) if r.clinic_id == clinic}
    audit = reports.get("audit_events")
    out = audit.as_dict() if audit is not None else {"clinic_id": str(clinic), "ok": True}
    ledger = reports.get("erasure_ledger")
    if ledger is not None:
        out["erasure_ledger"] = ledger.as_dict()
        out["ok"] = out["ok"] and ledger.ok
    return out


def checkpoint(box: Container, directory: Path | None = None,
               path: Path | None = None) -> CheckpointResult:
    """Sign every chain's head and write it outside the database (and the other sinks)."""
    return box.checkpoints.take(directory, full=True, path=path)


def prune(box: Container, actor: Actor, archive_dir: Path, clinic: uuid.UUID | None = None,
          *, dry_run: bool = False) -> list[PruneResult]:
    """Archive and delete each chain's expired prefix, leaving a signed cut."""
    return chains.prune_expired(box.database, box.keyring, actor, archive_dir, clinic,
                                dry_run=dry_run)


def record_denial(box: Container, actor: Actor, clinic_id: uuid.UUID | None,
                  refusal: DomainError, *, resource_type: str | None = None,
                  resource_id: uuid.UUID | None = None, patient_id: uuid.UUID | None = None,
                  risk: RiskLevel = RiskLevel.MEDIUM,
                  details: dict[str, Any] | None = None) -> None:
    """Record a refusal decided at the edge (a role check) as ``PERMISSION_DENIED``,
    committed on its own, and mark it audited (:func:`adapters.db.uow.record_refusal`)."""
    record_refusal(box.database, box.cipher, box.blind_indexer, actor, clinic_id, refusal,
                   resource_type=resource_type, resource_id=resource_id,
                   patient_id=patient_id, risk=risk, details=details)
