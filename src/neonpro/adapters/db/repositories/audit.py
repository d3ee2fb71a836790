"""Audit events written by services (reads, exports, logins, ...) in their transaction.

Changes to personal-data tables are recorded by database triggers; this repository adds
what triggers cannot see: who *read* what, and events that change no row.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text

from neonpro.adapters.db.hot import HotStatement
from neonpro.adapters.db.models import SYSTEM_CLINIC_ID
from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.audit_chain import check_details
from neonpro.domain.audit_reports import AuditEntry
from neonpro.domain.vocabulary import AuditAction, AuditStatus, RiskLevel

# every audited request runs it: compiled once, run on the driver (hot.py)
INSERT = HotStatement(text(
    "INSERT INTO audit_events (clinic_id, actor_id, actor_role, action, resource_type, "
    "resource_id, patient_ref, status, risk_level, ip_address, user_agent, session_id, "
    "request_id, details) VALUES (:clinic, :actor, :role, :action, :rtype, :rid, "
    "neonpro_patient_ref(CAST(:patient AS uuid)), :status, :risk, CAST(:ip AS inet), :ua, "
    ":session, :request, CAST(:details AS jsonb))"
))
# many events of one actor in one statement. ``:kinds`` is a JSON array of the distinct
# [action, details] pairs, ``:events`` one of [kind index, resource id, patient id] per
# event: a batch of erasures repeats a few dozen distinct details thousands of times, and
# JSON is encoded and parsed in C on both sides (a text[] parameter is escaped per element)
INSERT_MANY = text(
    "WITH e AS (SELECT (x ->> 0)::int AS k, x ->> 1 AS rid, CAST(x ->> 2 AS uuid) AS patient, "
    "n FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS t(x, n)), "
    "k AS (SELECT (i - 1)::int AS k, x ->> 0 AS action, x -> 1 AS details "
    "FROM jsonb_array_elements(CAST(:kinds AS jsonb)) WITH ORDINALITY AS t(x, i)), "
    # the keyed reference (two SHA-256 in a SECURITY DEFINER function) once per patient,
    # not once per event
    "r AS (SELECT p.patient, neonpro_patient_ref(p.patient) AS ref "
    "FROM (SELECT DISTINCT patient FROM e WHERE patient IS NOT NULL) p) "
    "INSERT INTO audit_events (clinic_id, actor_id, actor_role, action, resource_type, "
    "resource_id, patient_ref, status, risk_level, ip_address, user_agent, session_id, "
    "request_id, details) SELECT :clinic, :actor, :role, k.action, :rtype, e.rid, r.ref, "
    ":status, :risk, CAST(:ip AS inet), :ua, :session, :request, k.details "
    "FROM e JOIN k ON k.k = e.k LEFT JOIN r ON r.patient = e.patient ORDER BY e.n"
)


# a telemedicine session exists once its start event does (in this clinic: row-level
# security; on this appointment); served by the (clinic, resource_type, resource_id) index
SESSION_STARTED = text(
    "SELECT EXISTS (SELECT 1 FROM audit_events WHERE clinic_id = :clinic "
    "AND resource_type = 'appointment' AND resource_id = :rid AND action = :action "
    "AND details ->> 'telemedicine_session' = :session)"
)


# one event of :meth:`SqlAuditRepository.record_many` (the domain's type)
Event = AuditEntry


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
        self._run(INSERT, {
            "clinic": clinic, "actor": actor.id, "role": actor.role, "action": action.value,
            "rtype": resource_type, "rid": None if resource_id is None else str(resource_id),
            "patient": None if patient_id is None else str(patient_id),
            "status": status.value, "risk": risk.value, "ip": actor.ip_address,
            "ua": actor.user_agent, "session": actor.session_id, "request": actor.request_id,
            "details": json.dumps(check_details(details or {})),
        })

    def record_many(
        self,
        events: Sequence[AuditEntry],
        resource_type: str | None = None,
        *,
        status: AuditStatus = AuditStatus.SUCCESS,
        risk: RiskLevel = RiskLevel.LOW,
    ) -> None:
        """Append many events (same fields as :meth:`record` each) in one statement."""
        if not events:
            return
        actor = self._uow.actor
        clinic = self._uow.clinic_id or SYSTEM_CLINIC_ID
        kinds: dict[tuple[str, str], int] = {}
        # details objects shared by many events are checked and encoded once (the dict is
        # kept in the cache so that its id cannot be reused while the cache lives)
        checked: dict[int, tuple[dict[str, Any], str]] = {}
        rows: list[tuple[int, str | None, str | None]] = []
        for e in events:
            details = e.details or {}
            hit = checked.get(id(details))
            if hit is None:
                hit = checked[id(details)] = (details, json.dumps(check_details(details)))
            text_ = hit[1]
            kind = kinds.setdefault((e.action.value, text_), len(kinds))
            rows.append((kind, None if e.resource_id is None else str(e.resource_id),
                         None if e.patient_id is None else str(e.patient_id)))
        self._execute(INSERT_MANY, {
            "clinic": clinic, "actor": actor.id, "role": actor.role, "rtype": resource_type,
            "status": status.value, "risk": risk.value, "ip": actor.ip_address,
            "ua": actor.user_agent, "session": actor.session_id, "request": actor.request_id,
            "kinds": "[" + ", ".join(f"[{json.dumps(a)}, {d}]" for a, d in kinds) + "]",
            "events": json.dumps(rows),
        })

    def session_started(self, appointment_id: uuid.UUID, session_id: uuid.UUID) -> bool:
        """Whether telemedicine session ``session_id`` was started on ``appointment_id`` in
        this clinic (its ``TELEMEDICINE_START`` event, committed, sealed or not)."""
        return bool(self._execute(SESSION_STARTED, {
            "clinic": self.clinic_id, "rid": str(appointment_id),
            "action": AuditAction.TELEMEDICINE_START.value, "session": str(session_id),
        }).scalar_one())
