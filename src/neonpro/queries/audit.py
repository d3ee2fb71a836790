"""Read side of the audit trail: search, investigation, and the clinic compliance report.

Runs on an open unit of work's connection: in a tenant unit of work row-level security
limits every query to that clinic's chain.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, text

from neonpro.adapters.db.models import Base
from neonpro.domain.audit_reports import AuditFilters
from neonpro.domain.paging import CursorSealer, Page, query_scope
from neonpro.domain.schemas.audit import AuditEvent
from neonpro.domain.schemas.incident import Investigation
from neonpro.domain.vocabulary import AuditResource

__all__ = ["LIST_CATEGORIES", "RESOURCE_TABLE", "AuditEvent", "AuditFilters", "Investigation",
           "column_categories", "investigate", "search"]

R = AuditResource
# What a read of a whole resource exposes, for the investigation's data categories.
RESOURCE_TABLE: dict[str, str] = {R.PATIENT: "patients", R.PATIENTS_TABLE: "patients",
                                  R.APPOINTMENT: "appointments",
                                  R.APPOINTMENTS_TABLE: "appointments"}
# What a list read exposes, by table. A list read is a read of no one record (no
# resource_id) that says how many rows it ``returned``; those written before AuditResource
# were spelled after the table (``patients``, ``appointments``) and are known by that.
LIST_CATEGORIES = {"patients": ["identification"], "appointments": ["identification", "clinical"]}


@cache
def column_categories() -> dict[str, dict[str, str]]:
    """table -> column -> LGPD category, from the models' ``pii()`` declarations."""
    out: dict[str, dict[str, str]] = {}
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            lgpd = column.info.get("lgpd")
            if lgpd:
                out.setdefault(table.name, {})[column.name] = str(lgpd["category"].value)
    return out


_SELECT = (
    "SELECT id, seq, occurred_at, actor_id, actor_role, action, resource_type, resource_id, "
    "status, risk_level, host(ip_address) AS ip_address, request_id, details FROM audit_events"
)


def _where(clinic_id: uuid.UUID, f: AuditFilters) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = ["clinic_id = :clinic"]
    params: dict[str, Any] = {"clinic": clinic_id}
    simple = {"actor_id": f.actor_id, "action": f.action, "resource_type": f.resource_type,
              "resource_id": f.resource_id}
    for column, value in simple.items():
        if value is not None:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    if f.patient_id is not None:
        clauses.append("patient_ref = neonpro_patient_ref(:patient)")
        params["patient"] = f.patient_id
    if f.ip_address is not None:
        clauses.append("ip_address = CAST(:ip AS inet)")
        params["ip"] = f.ip_address
    if f.risk_levels:
        clauses.append("risk_level = ANY(:risks)")
        params["risks"] = list(f.risk_levels)
    if f.since is not None:
        clauses.append("occurred_at >= :since")
        params["since"] = f.since
    if f.until is not None:
        clauses.append("occurred_at < :until")
        params["until"] = f.until
    return clauses, params


def search(conn: Connection, clinic_id: uuid.UUID, filters: AuditFilters, cursors: CursorSealer,
           limit: int = 50, cursor: str | None = None) -> Page[AuditEvent]:
    """Newest first, keyset-paginated on (occurred_at, id); cursors sealed to the clinic and
    the filters."""
    clauses, params = _where(clinic_id, filters)
    scope = query_scope("audit_events", clinic_id, filters)
    if cursor:
        at, last = cursors.open(cursor, scope, 2)
        clauses.append("(occurred_at, id) < (CAST(:c_at AS timestamptz), CAST(:c_id AS uuid))")
        params.update(c_at=at, c_id=last)
    sql = f"{_SELECT} WHERE {' AND '.join(clauses)} ORDER BY occurred_at DESC, id DESC LIMIT :n"
    rows = conn.execute(text(sql), {**params, "n": limit + 1}).all()
    items = [AuditEvent.model_validate(r._mapping) for r in rows[:limit]]  # noqa: SLF001
    nxt = None
    if len(rows) > limit:
        nxt = cursors.seal([items[-1].occurred_at.isoformat(), str(items[-1].id)], scope)
    return Page(items, None, nxt, limit, 0)


def investigate(conn: Connection, clinic_id: uuid.UUID, since: datetime, until: datetime, *,
                actor_id: uuid.UUID | None = None, ip_address: str | None = None,
                ) -> Investigation:
    """Which patients and which data categories did an actor (or an address) touch."""
    if (actor_id is None) == (ip_address is None):
        msg = "give exactly one of actor_id or ip_address"
        raise ValueError(msg)
    clauses, params = _where(clinic_id, AuditFilters(actor_id=actor_id, ip_address=ip_address,
                                                     since=since, until=until))
    rows: list[Any] = list(conn.execute(text(
        f"SELECT action, resource_type, details -> 'fields' AS fields, patient_ref, "  # noqa: S608
        f"resource_id IS NULL AND details -> 'returned' IS NOT NULL AS listed "
        f"FROM audit_events WHERE {' AND '.join(clauses)}"), params).all())
    result = Investigation(events=len(rows))
    categories: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    refs: set[bytes] = set()
    table_categories = column_categories()
    for action, resource, fields, ref, listed in rows:
        actions[action] += 1
        if ref is not None:
            refs.add(bytes(ref))
        table = RESOURCE_TABLE.get(resource or "", resource or "")
        mapping = table_categories.get(table, {})
        if fields:
            touched = {mapping[f] for f in fields if f in mapping}
        elif resource in LIST_CATEGORIES or (listed and table in LIST_CATEGORIES):
            touched = set(LIST_CATEGORIES[table])
        else:
            touched = set(mapping.values())
        categories.update(touched)
    if refs:
        found = conn.execute(text(
            "SELECT id FROM patients WHERE clinic_id = :c "
            "AND neonpro_patient_ref(id) = ANY(:refs)"), {"c": clinic_id, "refs": list(refs)},
        ).all()
        result.patients = sorted(r[0] for r in found)
        result.unresolved_patient_refs = len(refs) - len(found)
    result.categories = dict(sorted(categories.items()))
    result.actions = dict(sorted(actions.items()))
    return result
