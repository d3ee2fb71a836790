"""Audit events written by services (reads, exports, logins, ...) in their transaction.

Changes to personal-data tables are recorded by database triggers; this repository adds
what triggers cannot see: who *read* what, and events that change no row.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text

from neonpro.adapters.db.models import SYSTEM_CLINIC_ID
from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.audit_chain import check_details
from neonpro.domain.vocabulary import AuditAction, AuditStatus, RiskLevel

INSERT = text(
    "INSERT INTO audit_events (clinic_id, actor_id, actor_role, action, resource_type, "
    "resource_id, patient_ref, status, risk_level, ip_address, user_agent, session_id, "
    "request_id, details) VALUES (:clinic, :actor, :role, :action, :rtype, :rid, "
    "neonpro_patient_ref(CAST(:patient AS uuid)), :status, :risk, CAST(:ip AS inet), :ua, "
    ":session, :request, CAST(:details AS jsonb))"
)


class SqlAuditRepository(SqlRepository):
    __slots__ = ()

    def record(
        self,
        action: AuditAction,
        resource_type: str | None = None,
        resource_id: uuid.UUID | str | None = None,
        *,
        patient_id: uuid.UUID | None = None,
        status: AuditStatus = AuditStatus.SUCCESS,
        risk: RiskLevel = RiskLevel.LOW,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one event in this unit of work's transaction (sealed shortly after)."""
        actor = self._uow.actor
        clinic = self._uow.clinic_id or SYSTEM_CLINIC_ID
        self._execute(INSERT, {
            "clinic": clinic, "actor": actor.id, "role": actor.role, "action": action.value,
            "rtype": resource_type, "rid": None if resource_id is None else str(resource_id),
            "patient": None if patient_id is None else str(patient_id),
            "status": status.value, "risk": risk.value, "ip": actor.ip_address,
            "ua": actor.user_agent, "session": actor.session_id, "request": actor.request_id,
            "details": json.dumps(check_details(details or {})),
        })
