"""In-memory fakes of the repositories and the unit of work, for service tests."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from neonpro.domain import values
from neonpro.domain.actors import Actor
from neonpro.domain.audit_reports import AuditEntry
from neonpro.domain.errors import Conflict, Forbidden, NotFound, StaleVersion
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.schemas.patient import (
    READ_FIELDS,
    PatientCreate,
    PatientFilters,
    PatientRead,
    PatientSort,
    PatientUpdate,
)
from neonpro.domain.vocabulary import AuditAction, AuditStatus, RiskLevel
from tests.unit.fakes_audit import FakeAuditReports
from tests.unit.fakes_auth import FakeLogins
from tests.unit.fakes_catalog import FakeClinics, FakeProfessionals, FakeServiceTypes
from tests.unit.fakes_consents import FakeConsents
from tests.unit.fakes_erasure import FakeErasures, FakeRetentionPolicies
from tests.unit.fakes_idempotency import FakeIdempotency
from tests.unit.fakes_import import FakePatientLoader
from tests.unit.fakes_lgpd import (
    FakeDisclosures,
    FakeIncidents,
    FakeRecords,
    FakeSubjectRequests,
    FakeTrail,
)
from tests.unit.fakes_noshow import FakeNoShow
from tests.unit.fakes_scheduling import FakeAppointments


def _now() -> datetime:
    return datetime.now(UTC)


class FakePatients:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.rows: dict[uuid.UUID, PatientRead] = uow.store.setdefault("patients", {})

    def _visible(self, pid: uuid.UUID) -> PatientRead | None:
        row = self.rows.get(pid)
        if row is None or row.clinic_id != self.uow.clinic_id or row.deleted_at is not None:
            return None
        return row

    def get(self, patient_id: uuid.UUID) -> PatientRead:
        row = self._visible(patient_id)
        if row is None:
            raise NotFound("patient", patient_id)
        return row

    def find(self, patient_id: uuid.UUID) -> PatientRead | None:
        return self._visible(patient_id)

    def find_by_cpf(self, cpf: values.Cpf) -> PatientRead | None:
        return next((r for r in self.rows.values() if r.cpf == cpf.digits
                     and self._visible(r.id)), None)

    def find_by_cns(self, cns: values.Cns) -> PatientRead | None:
        return next((r for r in self.rows.values() if r.cns == cns.digits
                     and self._visible(r.id)), None)

    def find_by_cpf_across_clinics(self, cpf: values.Cpf) -> builtins.list[PatientRead]:
        if not self.uow.service:
            raise Forbidden("looking up a CPF across clinics needs the service role")
        return [r for r in self.rows.values() if r.cpf == cpf.digits]

    def add(self, data: PatientCreate) -> PatientRead:
        if data.cpf and any(r.cpf == data.cpf and r.clinic_id == self.uow.clinic_id
                            for r in self.rows.values()):
            raise Conflict("another record already has this cpf", "cpf")
        pid = uuid.uuid4()
        base: dict[str, Any] = dict.fromkeys(READ_FIELDS)
        base.update(
            given_names=[], allergies=[], chronic_conditions=[], current_medications=[],
            accessibility_needs=[], external_ids={}, deceased_indicator=False,
            data_consent_status="pending", total_no_shows=0, total_appointments=0,
            is_active=True, created_at=_now(), updated_at=_now(), version=1,
        )
        base.update(data.model_dump(exclude_none=True))
        base.update(id=pid, clinic_id=self.uow.clinic_id, created_by=self.uow.actor.id,
                    medical_record_number=data.medical_record_number or f"P-{pid.hex[:12]}")
        row = PatientRead.model_construct(**base)
        self.rows[pid] = row
        return row

    def update(self, patient_id: uuid.UUID, data: PatientUpdate) -> PatientRead:
        row = self.get(patient_id)
        if row.version != data.version:
            raise StaleVersion("patient", patient_id, data.version)
        new = row.model_copy(update={**data.changes(), "version": row.version + 1})
        self.rows[patient_id] = new
        return new

    def delete(self, patient_id: uuid.UUID, version: int | None = None) -> None:
        row = self.get(patient_id)
        if version is not None and row.version != version:
            raise StaleVersion("patient", patient_id, version)
        self.rows[patient_id] = row.model_copy(update={"deleted_at": _now()})

    def known(self, patient_id: uuid.UUID) -> bool:
        row = self.rows.get(patient_id)
        return row is not None and row.clinic_id == self.uow.clinic_id

    def list(self, filters: PatientFilters | None = None, sort: PatientSort | None = None,
             page: PageRequest | None = None) -> Page[PatientRead]:
        page = page or PageRequest()
        items = [r for r in self.rows.values() if self._visible(r.id)]
        return Page(items[page.offset: page.offset + page.limit], len(items), None,
                    page.limit, page.offset)


class FakeAudit:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.events: list[dict[str, Any]] = []

    def record(self, action: AuditAction, resource_type: str | None = None,
               resource_id: uuid.UUID | str | None = None, *,
               patient_id: uuid.UUID | None = None, status: AuditStatus = AuditStatus.SUCCESS,
               risk: RiskLevel = RiskLevel.LOW, details: dict[str, Any] | None = None) -> None:
        self.events.append({"action": action, "resource_type": resource_type,
                            "resource_id": resource_id, "patient_id": patient_id,
                            "status": status, "risk": risk, "details": details or {},
                            "clinic_id": self.uow.clinic_id, "occurred_at": _now(),
                            "request_id": self.uow.actor.request_id})

    def record_many(self, events: Sequence[AuditEntry], resource_type: str | None = None, *,
                    status: AuditStatus = AuditStatus.SUCCESS,
                    risk: RiskLevel = RiskLevel.LOW) -> None:
        for e in events:
            self.record(e.action, resource_type, e.resource_id, patient_id=e.patient_id,
                        status=status, risk=risk, details=e.details)

    def session_started(self, appointment_id: uuid.UUID, session_id: uuid.UUID) -> bool:
        return any(e["action"] == AuditAction.TELEMEDICINE_START
                   and e["resource_id"] in (appointment_id, str(appointment_id))
                   and e["details"].get("session_id") == str(session_id) for e in self.events)


@dataclass
class FakeUnitOfWork:
    actor: Actor
    clinic_id: uuid.UUID | None
    store: dict[str, Any] = field(default_factory=dict)
    commits: int = 0
    rollbacks: int = 0
    service: bool = False
    _snapshot: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # as SqlUnitOfWork: only a service unit of work may have no clinic
        self.service = self.service or self.clinic_id is None
        self.audit = FakeAudit(self)
        self.clinics = FakeClinics(self)
        self.patients = FakePatients(self)
        self.professionals = FakeProfessionals(self)
        self.service_types = FakeServiceTypes(self)
        self.appointments = FakeAppointments(self)
        self.consents = FakeConsents(self)
        self.incidents = FakeIncidents(self)
        self.subject_requests = FakeSubjectRequests(self)
        self.disclosures = FakeDisclosures(self)
        self.trail = FakeTrail(self)
        self.records = FakeRecords(self)
        self.idempotency = FakeIdempotency(self)
        self.no_show = FakeNoShow(self)
        self.logins = FakeLogins(self)
        self.patient_import = FakePatientLoader(self)
        self.audit_reports = FakeAuditReports(self)
        self.erasures = FakeErasures(self)
        self.retention_policies = FakeRetentionPolicies(self)

    def __enter__(self) -> Self:
        self._snapshot = {k: dict(v) for k, v in self.store.items()}
        self._committed = False
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._committed:
            self.rollback()

    def commit(self) -> None:
        self.commits += 1
        self._committed = True

    def rollback(self) -> None:
        self.rollbacks += 1
        for key, rows in self._snapshot.items():
            self.store[key].clear()
            self.store[key].update(rows)
