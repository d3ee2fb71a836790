"""Audit use cases for the DPO and operators: search, investigate, report, verify.

Reading the audit trail is itself audited (who looked at whose access history).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db.audit import verify_chains
from neonpro.adapters.db.uow import SqlUnitOfWork
from neonpro.domain.paging import Page
from neonpro.domain.vocabulary import AuditAction, RiskLevel
from neonpro.queries import audit as audit_queries
from neonpro.queries.compliance import compliance_report


def search_audit(uow: SqlUnitOfWork, filters: audit_queries.AuditFilters, limit: int = 50,
                 cursor: str | None = None) -> Page[audit_queries.AuditEventRow]:
    with uow:
        clinic = uow.clinic_id
        assert clinic is not None  # noqa: S101  (a tenant unit of work)
        page = audit_queries.search(uow.connection, clinic, filters, uow.blind.cursors,
                                     limit, cursor)
        uow.audit.record(AuditAction.VIEW, "audit_events",
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
        uow.audit.record(AuditAction.VIEW, "audit_events", risk=RiskLevel.MEDIUM,
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
        uow.audit.record(AuditAction.EXPORT, "compliance_report",
                         details={"from": since.isoformat(), "to": until.isoformat()})
        uow.commit()
    return report
