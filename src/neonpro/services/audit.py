"""Audit use cases for the DPO and operators: search, investigate, report, verify.

Reading the audit trail is itself audited (who looked at whose access history). The
trail's reads go through the unit of work (``uow.audit_reports``, ``uow.trail``); the
chains themselves through the :class:`~neonpro.domain.ports_audit.AuditChain` port (the
composition root's ``audit_chain``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from neonpro.domain.actors import Actor
from neonpro.domain.audit_reports import (
    AUDIT,
    AuditFilters,
    ChainReport,
    Checkpoint,
    CheckpointResult,
    PruneResult,
)
from neonpro.domain.errors import DomainError
from neonpro.domain.paging import Page
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.ports_audit import AuditChain
from neonpro.domain.schemas.audit import AuditEvent
from neonpro.domain.schemas.incident import Investigation
from neonpro.domain.vocabulary import AuditAction, AuditResource, RiskLevel

LEDGER = "erasure_ledger"  # the erasure ledger's chain


def search_audit(uow: UnitOfWork, filters: AuditFilters, limit: int = 50,
                 cursor: str | None = None) -> Page[AuditEvent]:
    with uow:
        page = uow.audit_reports.search(filters, limit, cursor)
        uow.audit.record(AuditAction.VIEW, AuditResource.AUDIT_EVENTS,
                         patient_id=filters.patient_id,
                         details={"returned": len(page.items)})
        uow.commit()
    return page


def investigate_access(uow: UnitOfWork, since: datetime, until: datetime, *,
                       actor_id: uuid.UUID | None = None,
                       ip_address: str | None = None) -> Investigation:
    """Which patients and data categories an actor or address touched in a window."""
    with uow:
        result = uow.trail.investigate(since, until, actor_id=actor_id, ip_address=ip_address)
        uow.audit.record(AuditAction.VIEW, AuditResource.AUDIT_EVENTS, risk=RiskLevel.MEDIUM,
                         details={"investigation": True, "events": result.events})
        uow.commit()
    return result


def clinic_report(uow: UnitOfWork, since: datetime, until: datetime,
                  chains: AuditChain) -> dict[str, Any]:
    """The compliance report of the unit of work's clinic, with its chains verified."""
    clinic = uow.clinic_id
    assert clinic is not None  # noqa: S101  (a tenant unit of work)
    reports = chains.verify(uow.actor, clinic)
    chain = next((c.as_dict() for c in reports if c.chain == AUDIT), {})
    return compliance_report(uow, since, until, chain)


def compliance_report(uow: UnitOfWork, since: datetime, until: datetime,
                      chain: dict[str, Any]) -> dict[str, Any]:
    """The compliance report with a chain verification the caller already has (the
    console shows its last one rather than recomputing every HMAC per page); audited as
    an EXPORT of the report, like :func:`clinic_report`."""
    with uow:
        report = uow.audit_reports.compliance(since, until, chain)
        uow.audit.record(AuditAction.EXPORT, AuditResource.COMPLIANCE_REPORT,
                         details={"from": since.isoformat(), "to": until.isoformat()})
        uow.commit()
    return report


# ------------------------------------------------------------------ the chains themselves
def seal(chains: AuditChain, actor: Actor) -> int:
    """Seal every pending event of every chain now; how many were sealed."""
    return chains.seal(actor)


def read_checkpoints(chains: AuditChain, path: Path) -> list[Checkpoint]:
    """The signed chain heads in a checkpoint file, a directory of them, or syslog lines
    (OSError, ValueError, KeyError or TypeError when they cannot be read)."""
    return chains.read_checkpoints(path)


def verify(chains: AuditChain, actor: Actor, clinic: uuid.UUID | None = None,
           checkpoints: list[Checkpoint] | None = None) -> list[ChainReport]:
    """Recompute every chain (or one clinic's), each checked against ``checkpoints``."""
    return chains.verify(actor, clinic, checkpoints)


def verify_clinic(chains: AuditChain, actor: Actor, clinic: uuid.UUID) -> dict[str, Any]:
    """One clinic's audit chain, and its erasure-ledger chain under ``erasure_ledger``;
    ``ok`` is false with the first broken link of either."""
    reports = {r.chain: r for r in verify(chains, actor, clinic) if r.clinic_id == clinic}
    audit = reports.get(AUDIT)
    out = audit.as_dict() if audit is not None else {"clinic_id": str(clinic), "ok": True}
    ledger = reports.get(LEDGER)
    if ledger is not None:
        out[LEDGER] = ledger.as_dict()
        out["ok"] = out["ok"] and ledger.ok
    return out


def checkpoint(chains: AuditChain, directory: Path | None = None,
               path: Path | None = None) -> CheckpointResult:
    """Sign every chain's head and write it outside the database (and the other sinks)."""
    return chains.checkpoint(directory, path)


def prune(chains: AuditChain, actor: Actor, archive_dir: Path,
          clinic: uuid.UUID | None = None, *, dry_run: bool = False) -> list[PruneResult]:
    """Archive and delete each chain's expired prefix, leaving a signed cut."""
    return chains.prune(actor, archive_dir, clinic, dry_run=dry_run)


def record_denial(chains: AuditChain, actor: Actor, clinic_id: uuid.UUID | None,
                  refusal: DomainError, *, resource_type: str | None = None,
                  resource_id: uuid.UUID | None = None, patient_id: uuid.UUID | None = None,
                  risk: RiskLevel = RiskLevel.MEDIUM,
                  details: dict[str, Any] | None = None) -> None:
    """Record a refusal decided at the edge (a role check) as ``PERMISSION_DENIED``,
    committed on its own, and mark it audited (the same way a refused unit of work does)."""
    chains.record_refusal(actor, clinic_id, refusal, resource_type=resource_type,
                          resource_id=resource_id, patient_id=patient_id, risk=risk,
                          details=details)
