"""In-memory fakes of the LGPD-side repositories (incidents, data-subject requests,
disclosures, the audit trail, what is held about a patient), for service tests.

Each keeps the contract of its SQL repository that services rely on: rows of the unit of
work's clinic only (``Forbidden`` without one, ``NotFound`` for another clinic's id), the
same order and filters, compare-and-set status changes, once-only notifications. Rows are
frozen read schemas, replaced on change, so the unit of work's rollback restores them.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from neonpro.domain.errors import Conflict, Forbidden
from neonpro.domain.lgpd import NOTIFIABLE, PENDING
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.schemas.disclosure import DisclosureFilters, DisclosureRead, NewDisclosure
from neonpro.domain.schemas.dsr import DataSubjectRequestRead
from neonpro.domain.schemas.export import Holdings, PatientData
from neonpro.domain.schemas.incident import (
    IncidentFilters,
    IncidentRead,
    Investigation,
    NewIncident,
    Notified,
)
from neonpro.domain.schemas.patient import PatientRead
from neonpro.domain.vocabulary import (
    DataSubjectRequestKind,
    DataSubjectRequestStatus,
    IncidentStatus,
    RiskLevel,
)
from tests.unit.fakes_base import TenantRows, page_of, utcnow

if TYPE_CHECKING:
    from tests.unit.fakes import FakeUnitOfWork


class FakeIncidents(TenantRows):
    table = "incidents"
    entity = "security incident"

    def get(self, incident_id: uuid.UUID) -> IncidentRead:
        row: IncidentRead = super().get(incident_id)
        return row

    def lock(self, incident_id: uuid.UUID) -> IncidentRead:
        return self.get(incident_id)

    def add(self, data: NewIncident) -> IncidentRead:
        row = IncidentRead.model_construct(
            id=uuid.uuid4(), clinic_id=self.clinic_id, detected_at=data.detected_at,
            learned_at=data.learned_at, description=data.description,
            affected_data_categories=sorted(set(data.affected_data_categories)),
            affected_patient_count=data.affected_patient_count,
            risk_assessment=data.risk_assessment, risk_level=data.risk_level.value,
            notified_anpd_at=None, notified_subjects_at=None,
            notification_due_at=data.notification_due_at, mitigation=None,
            status=IncidentStatus.OPEN.value, closed_at=None, retain_until=data.retain_until,
            reported_by=self.uow.actor.id, created_at=utcnow(), updated_at=utcnow())
        self.rows[row.id] = row
        return row

    def set_affected(self, incident_id: uuid.UUID, count: int, categories: builtins.list[str],
                     risk_level: RiskLevel) -> IncidentRead:
        row: IncidentRead = self._replace(incident_id, {
            "affected_patient_count": count, "affected_data_categories": sorted(set(categories)),
            "risk_level": risk_level.value})
        return row

    def mark_notified(self, incident_id: uuid.UUID, who: Notified,
                      at: datetime) -> IncidentRead:
        column = "notified_anpd_at" if who == "anpd" else "notified_subjects_at"
        if getattr(self.get(incident_id), column) is not None:
            raise Conflict(f"the {who} notification is already recorded", f"notified_{who}_at")
        row: IncidentRead = self._replace(incident_id, {column: at})
        return row

    def close(self, incident_id: uuid.UUID, status: IncidentStatus, closed_at: datetime | None,
              mitigation: str | None, retain_until: date) -> IncidentRead:
        changes: dict[str, Any] = {"status": status.value, "closed_at": closed_at,
                                   "retain_until": retain_until}
        if mitigation is not None:
            changes["mitigation"] = mitigation
        row: IncidentRead = self._replace(incident_id, changes)
        return row

    def list(self, filters: IncidentFilters | None = None,
             page: PageRequest | None = None) -> Page[IncidentRead]:
        f = filters or IncidentFilters()
        rows: builtins.list[IncidentRead] = self._mine()
        if f.status is not None:
            rows = [r for r in rows if r.status == f.status.value]
        if f.overdue_at is not None:
            at = f.overdue_at
            rows = [r for r in rows if r.risk_level in [n.value for n in NOTIFIABLE]
                    and r.notification_due_at is not None and r.notification_due_at < at
                    and (r.notified_anpd_at is None or r.notified_subjects_at is None)]
        rows.sort(key=lambda r: r.id.bytes)
        rows.sort(key=lambda r: r.detected_at, reverse=True)
        return page_of(rows, page)


class FakeSubjectRequests(TenantRows):
    table = "data_subject_requests"
    entity = "data_subject_request"

    def get(self, request_id: uuid.UUID, *,
            for_update: bool = False) -> DataSubjectRequestRead:
        row: DataSubjectRequestRead = super().get(request_id)
        return row

    def list(self, *, overdue_at: datetime | None = None,
             status: DataSubjectRequestStatus | None = None,
             patient_id: uuid.UUID | None = None,
             limit: int = 1000) -> builtins.list[DataSubjectRequestRead]:
        # a service unit of work without a clinic sees every clinic's requests
        rows: builtins.list[DataSubjectRequestRead] = (
            list(self.rows.values()) if self.uow.service and self.uow.clinic_id is None
            else self._mine())
        if overdue_at is not None:
            rows = [r for r in rows if r.due_at < overdue_at and r.status in PENDING]
        if status is not None:
            rows = [r for r in rows if r.status == status.value]
        if patient_id is not None:
            rows = [r for r in rows if r.patient_id == patient_id]
        return sorted(rows, key=lambda r: (r.due_at, r.id.bytes))[:limit]

    def for_patient(self, patient_id: uuid.UUID) -> builtins.list[DataSubjectRequestRead]:
        return sorted((r for r in self._mine() if r.patient_id == patient_id),
                      key=lambda r: (r.received_at, r.id.bytes))

    def add(self, patient_id: uuid.UUID, kind: DataSubjectRequestKind, received_at: datetime,
            due_at: datetime) -> DataSubjectRequestRead:
        row = DataSubjectRequestRead.model_construct(
            id=uuid.uuid4(), clinic_id=self.clinic_id, patient_id=patient_id, kind=kind.value,
            status=DataSubjectRequestStatus.OPEN.value, received_at=received_at, due_at=due_at,
            identity_verified_by=None, identity_verified_at=None, fulfilled_at=None,
            refusal_reason=None, response_sha256=None, created_at=utcnow(), updated_at=utcnow())
        self.rows[row.id] = row
        return row

    def change(self, request_id: uuid.UUID, expected_status: str,
               values: dict[str, Any]) -> DataSubjectRequestRead | None:
        clinic = self.clinic_id
        row = self.rows.get(request_id)
        if row is None or row.clinic_id != clinic or row.status != expected_status:
            return None
        changed: DataSubjectRequestRead = self._replace(
            request_id, {**values, "updated_at": utcnow()})
        return changed


class FakeDisclosures(TenantRows):
    table = "disclosures"
    entity = "disclosure"

    def get(self, disclosure_id: uuid.UUID) -> DisclosureRead:
        row: DisclosureRead = super().get(disclosure_id)
        return row

    def add(self, data: NewDisclosure) -> DisclosureRead:
        row = DisclosureRead.model_construct(
            id=uuid.uuid4(), clinic_id=self.clinic_id, patient_id=data.patient_id,
            disclosed_at=data.disclosed_at, recipient_name=data.recipient_name,
            recipient_address=data.recipient_address, data_description=data.data_description,
            data_categories=sorted(set(data.data_categories)), purpose=data.purpose,
            legal_basis=data.legal_basis.value, consent_record_id=data.consent_record_id,
            disclosed_by=self.uow.actor.id, created_at=utcnow())
        self.rows[row.id] = row
        return row

    def list(self, filters: DisclosureFilters | None = None,
             page: PageRequest | None = None) -> Page[DisclosureRead]:
        f = filters or DisclosureFilters()
        rows: builtins.list[DisclosureRead] = [
            r for r in self._mine()
            if (f.patient_id is None or r.patient_id == f.patient_id)
            and (f.since is None or r.disclosed_at >= f.since)
            and (f.until is None or r.disclosed_at < f.until)]
        rows.sort(key=lambda r: r.id.bytes)
        rows.sort(key=lambda r: r.disclosed_at, reverse=True)
        return page_of(rows, page)


class FakeTrail:
    """Answers investigations from ``found`` (keyed by actor id or address) and records
    each question asked in ``asked``."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.found: dict[uuid.UUID | str, Investigation] = uow.store.setdefault("trail", {})
        self.asked: list[tuple[datetime, datetime, uuid.UUID | None, str | None]] = []

    def investigate(self, since: datetime, until: datetime, *,
                    actor_id: uuid.UUID | None = None,
                    ip_address: str | None = None) -> Investigation:
        if self.uow.clinic_id is None:
            raise Forbidden("this operation needs a clinic: open a tenant unit of work")
        if (actor_id is None) == (ip_address is None):
            msg = "give exactly one of actor_id or ip_address"
            raise ValueError(msg)
        self.asked.append((since, until, actor_id, ip_address))
        key: uuid.UUID | str = actor_id if actor_id is not None else str(ip_address)
        return self.found.get(key, Investigation())


class FakeRecords:
    """What is held about a patient, read from the other fakes; the data categories the
    SQL derives from column metadata are given by the test in ``categories``."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.categories: dict[uuid.UUID, list[str]] = uow.store.setdefault("categories", {})

    def holdings(self, patient: PatientRead) -> Holdings:
        data = self.collect(patient.id)
        return Holdings(data.counts(), self.categories.get(patient.id, []), patient.created_at)

    def collect(self, patient_id: uuid.UUID) -> PatientData:
        uow = self.uow
        patient = uow.patients.get(patient_id)
        data = PatientData(patient.clinic_id, patient)
        data.appointments = [uow.appointments.get(a) for a, row in uow.appointments.rows.items()
                             if row["patient_id"] == patient_id]
        data.consents = uow.consents.history(patient_id)
        data.consent_states = uow.consents.states(patient_id)
        data.disclosures = [d.model_dump() for d in uow.disclosures.list(
            DisclosureFilters(patient_id=patient_id)).items]
        data.requests = uow.subject_requests.for_patient(patient_id)
        return data


