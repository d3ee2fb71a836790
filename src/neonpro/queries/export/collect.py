"""Collecting everything held about one patient, and its JSON rendering."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from neonpro.domain.paging import MAX_PAGE_SIZE, PageRequest
from neonpro.domain.schemas.export import Holdings, PatientData
from neonpro.domain.vocabulary import (
    DataCategory,
)
from neonpro.queries.audit import column_categories
from neonpro.queries.export.formats import FORMAT

if TYPE_CHECKING:

    from neonpro.adapters.db.uow import SqlUnitOfWork
    from neonpro.domain.schemas.appointment import AppointmentRead
    from neonpro.domain.schemas.patient import PatientRead

# ------------------------------------------------------------------------ collection
PROFESSIONALS = text(
    "SELECT id, full_name, specialization, council_type, council_license, council_state "
    "FROM professionals WHERE clinic_id = :c AND id = ANY(:ids) ORDER BY full_name, id"
)
DISCLOSURES = text(
    "SELECT id, disclosed_at, recipient_name, recipient_address, data_description, "
    "data_categories, purpose, legal_basis, consent_record_id, created_at "
    "FROM disclosures WHERE clinic_id = :c AND patient_id = :p ORDER BY disclosed_at, id"
)
ERASURES = text(
    "SELECT id, request_id, decided_at, outcome, decisions FROM erasure_ledger "
    "WHERE clinic_id = :c AND patient_id = :p ORDER BY decided_at, id"
)
AUDIT_EVENTS = text(
    "SELECT id, occurred_at, action, actor_role, resource_type, resource_id, status, "
    "risk_level, details FROM audit_events "
    "WHERE clinic_id = :c AND patient_ref = neonpro_patient_ref(CAST(:p AS uuid)) "
    "ORDER BY occurred_at, id"
)


def _rows(conn: Connection, statement: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(statement, params)]  # noqa: SLF001


def appointments_of(uow: SqlUnitOfWork, patient_id: uuid.UUID) -> list[AppointmentRead]:
    """Every appointment of the patient, decrypted, oldest first (paged by the repository)."""
    out: list[AppointmentRead] = []
    offset = 0
    while True:
        page = uow.appointments.list_for_patient(
            patient_id, PageRequest(limit=MAX_PAGE_SIZE, offset=offset, with_total=False))
        out.extend(page.items)
        if len(page.items) < MAX_PAGE_SIZE:
            return out
        offset += MAX_PAGE_SIZE


def collect(uow: SqlUnitOfWork, patient_id: uuid.UUID) -> PatientData:
    """Read everything held about the patient (NotFound if the clinic has no such patient)."""
    patient = uow.patients.get(patient_id)
    clinic = patient.clinic_id
    conn = uow.connection
    params = {"c": clinic, "p": patient_id}
    data = PatientData(clinic, patient)
    data.appointments = appointments_of(uow, patient_id)
    involved = {a.professional_id for a in data.appointments}
    if patient.primary_professional_id is not None:
        involved.add(patient.primary_professional_id)
    if involved:
        data.professionals = _rows(conn, PROFESSIONALS, {"c": clinic, "ids": list(involved)})
    data.consents = uow.consents.history(patient_id)
    data.consent_states = uow.consents.states(patient_id)
    data.disclosures = _rows(conn, DISCLOSURES, params)
    data.requests = uow.subject_requests.for_patient(patient_id)
    data.erasures = _rows(conn, ERASURES, params)
    data.audit_events = _rows(conn, AUDIT_EVENTS, params)
    return data


# ------------------------------------------------------- what is held, in summary
MONEY = ("estimated_cost", "actual_cost", "copay_amount", "cancellation_fee")


def _patient_categories(patient: PatientRead) -> set[str]:
    """Categories of the patient's non-empty personal-data fields (per column metadata)."""
    out: set[str] = set()
    for column, category in column_categories().get("patients", {}).items():
        name = column.removesuffix("_encrypted")
        value = getattr(patient, name, None)
        if value not in (None, "", [], {}):
            out.add(category)
    return out


def holdings(conn: Connection, patient: PatientRead) -> Holdings:
    """What the clinic holds about ``patient``: counts per table, categories, since when."""
    params = {"c": patient.clinic_id, "p": patient.id}
    row = conn.execute(text(_holdings_sql()), params).one()._mapping  # noqa: SLF001
    counts = {"patients": 1, **{k: int(row[k]) for k in (
        "appointments", "consent_records", "disclosures", "data_subject_requests",
        "erasure_ledger", "audit_events")}}
    categories = _patient_categories(patient)
    categories.update(k.removeprefix("cat_") for k, v in row.items()
                      if k.startswith("cat_") and v)
    if counts["appointments"]:
        categories.add(DataCategory.CLINICAL.value)  # receiving care is itself health data
    if counts["consent_records"] or counts["disclosures"]:
        categories.add(DataCategory.CONSENT.value)
    if counts["audit_events"]:
        categories.add(DataCategory.AUDIT.value)
    firsts = [t for t in (patient.created_at, row["first_appointment"], row["first_consent"])
              if t is not None]
    order = list(DataCategory)
    return Holdings(counts, sorted(categories, key=lambda c: order.index(DataCategory(c))),
                    min(firsts) if firsts else None)


@cache
def _holdings_sql() -> str:
    """One statement: counts per table, and which appointment categories hold a value
    (from the models' ``pii()`` declarations, so a new personal column is counted)."""
    by_category: dict[str, list[str]] = {}
    for column, category in column_categories().get("appointments", {}).items():
        by_category.setdefault(category, []).append(column)
    by_category.setdefault(DataCategory.FINANCIAL.value, []).extend(MONEY)
    flags = ", ".join(
        f"coalesce(bool_or({' OR '.join(f'{c} IS NOT NULL' for c in sorted(cols))}), false)"
        f" AS cat_{cat}" for cat, cols in sorted(by_category.items())
    )
    patient_rows = "clinic_id = :c AND patient_id = :p"
    return (
        f"WITH a AS (SELECT count(*) AS appointments, min(created_at) AS first_appointment, "  # noqa: S608
        f"{flags} FROM appointments WHERE {patient_rows}) "
        f"SELECT a.*, "
        f"(SELECT count(*) FROM consent_records WHERE {patient_rows}) AS consent_records, "
        f"(SELECT min(created_at) FROM consent_records WHERE {patient_rows}) AS first_consent, "
        f"(SELECT count(*) FROM disclosures WHERE {patient_rows}) AS disclosures, "
        f"(SELECT count(*) FROM data_subject_requests WHERE {patient_rows}) "
        f"AS data_subject_requests, "
        f"(SELECT count(*) FROM erasure_ledger WHERE {patient_rows}) AS erasure_ledger, "
        f"(SELECT count(*) FROM audit_events WHERE clinic_id = :c "
        f"AND patient_ref = neonpro_patient_ref(CAST(:p AS uuid))) AS audit_events FROM a"
    )


# ------------------------------------------------------------------------------ JSON
def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    raise TypeError(type(value).__name__)


def to_json(data: PatientData, generated_at: datetime,
            request_id: uuid.UUID | None = None) -> bytes:
    """The complete export as UTF-8 JSON: a dict with ``format`` and ``generated_at``."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "generated_at": generated_at.isoformat(),
        "clinic_id": data.clinic_id,
        "patient_id": data.patient.id,
        "request_id": request_id,
        "legal_reference": "LGPD Art. 18 I, II, V and VII; Art. 19",
        "counts": data.counts(),
        "patient": data.patient.model_dump(mode="json"),
        "appointments": [a.model_dump(mode="json") for a in data.appointments],
        "professionals": data.professionals,
        "consent_records": [c.model_dump(mode="json") for c in data.consents],
        "consent_state": [c.model_dump(mode="json") for c in data.consent_states],
        "disclosures": data.disclosures,
        "data_subject_requests": [r.model_dump(mode="json") for r in data.requests],
        "erasure_ledger": data.erasures,
        "audit_events": data.audit_events,
    }
    return json.dumps(doc, ensure_ascii=False, default=_plain).encode()

