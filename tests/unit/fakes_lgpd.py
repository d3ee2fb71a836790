"""In-memory fakes of the LGPD-side repositories (incidents, data-subject requests,
disclosures, the audit trail, the consent ledger, clinics), for service tests.

Each keeps the contract of its SQL repository that services rely on: rows of the unit of
work's clinic only (``Forbidden`` without one, ``NotFound`` for another clinic's id), the
same order and filters, compare-and-set status changes, once-only notifications, and the
consent ledger's rule (per patient and purpose the latest decision wins). Rows are frozen
read schemas, replaced on change, so the unit of work's rollback restores them.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from neonpro.domain.errors import Conflict, Forbidden, NotFound
from neonpro.domain.lgpd import NOTIFIABLE, PENDING
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.schemas.clinic import (
    ClinicCreate,
    ClinicRead,
    MembershipRead,
    StaffUserCreate,
    StaffUserRead,
)
from neonpro.domain.schemas.consent import ConsentCreate, ConsentRead, ConsentRevoke, ConsentState
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
    ClinicRole,
    ConsentPurpose,
    ConsentStatus,
    ConsentStatusSummary,
    DataSubjectRequestKind,
    DataSubjectRequestStatus,
    IncidentStatus,
    RiskLevel,
)

if TYPE_CHECKING:
    from tests.unit.fakes import FakeUnitOfWork


def _now() -> datetime:
    return datetime.now(UTC)


def page_of(items: list[Any], page: PageRequest | None) -> Page[Any]:
    page = page or PageRequest()
    total = len(items) if page.with_total else None
    return Page(items[page.offset: page.offset + page.limit], total, None, page.limit,
                page.offset)


class TenantRows:
    """Rows of one table in the shared store, seen through the unit of work's clinic."""

    table: str
    entity: str

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.rows: dict[uuid.UUID, Any] = uow.store.setdefault(self.table, {})

    @property
    def clinic_id(self) -> uuid.UUID:
        if self.uow.clinic_id is None:
            raise Forbidden("this operation needs a clinic: open a tenant unit of work")
        return self.uow.clinic_id

    def _mine(self) -> list[Any]:
        clinic = self.clinic_id
        return [r for r in self.rows.values() if r.clinic_id == clinic]

    def get(self, entity_id: uuid.UUID) -> Any:
        clinic = self.clinic_id  # Forbidden first, as in SQL
        row = self.rows.get(entity_id)
        if row is None or row.clinic_id != clinic:
            raise NotFound(self.entity, entity_id)
        return row

    def _replace(self, entity_id: uuid.UUID, changes: dict[str, Any]) -> Any:
        row = self.get(entity_id).model_copy(update=changes)
        self.rows[entity_id] = row
        return row


class FakeClinics(TenantRows):
    """``get`` only reads the store; tests seed it with :meth:`seed`."""

    table = "clinics"
    entity = "clinic"

    def seed(self, clinic_id: uuid.UUID, timezone: str = "America/Sao_Paulo") -> ClinicRead:
        row = ClinicRead.model_construct(
            id=clinic_id, name="Clínica", legal_name=None, cnpj=None, cnes_code=None,
            timezone=timezone, dpo_name=None, dpo_email=None, is_active=True,
            created_at=_now(), updated_at=_now())
        self.rows[clinic_id] = row
        return row

    def get(self, clinic_id: uuid.UUID | None = None) -> ClinicRead:
        wanted = clinic_id or self.clinic_id
        row: ClinicRead | None = self.rows.get(wanted)
        if row is None:
            raise NotFound(self.entity, wanted)
        return row

    def _service_only(self, what: str) -> None:
        if not self.uow.service:
            raise Forbidden(f"{what} needs the service role")

    def add(self, data: ClinicCreate) -> ClinicRead:
        self._service_only("creating a clinic")
        values = {"legal_name": None, "cnpj": None, "cnes_code": None,
                  "timezone": "America/Sao_Paulo", "dpo_name": None, "dpo_email": None,
                  "is_active": True, **data.model_dump(exclude_none=True), "id": uuid.uuid4(),
                  "created_at": _now(), "updated_at": _now()}
        row = ClinicRead.model_construct(**values)
        self.rows[row.id] = row
        return row

    def list(self) -> builtins.list[ClinicRead]:
        self._service_only("listing clinics")
        return sorted(self.rows.values(), key=lambda c: (c.name, c.id.bytes))

    def add_user(self, data: StaffUserCreate) -> StaffUserRead:
        self._service_only("creating a staff account")
        users: dict[uuid.UUID, StaffUserRead] = self.uow.store.setdefault("users", {})
        if any(u.email == data.email for u in users.values()):
            raise Conflict("this e-mail already has an account", "email")
        row = StaffUserRead.model_construct(id=uuid.uuid4(), email=data.email,
                                            display_name=data.display_name, is_active=True,
                                            created_at=_now())
        users[row.id] = row
        return row

    def add_membership(self, clinic_id: uuid.UUID, user_id: uuid.UUID,
                       role: ClinicRole) -> MembershipRead:
        self._service_only("granting a membership")
        members: dict[tuple[uuid.UUID, uuid.UUID], MembershipRead] = self.uow.store.setdefault(
            "memberships", {})
        if (clinic_id, user_id) in members:
            raise Conflict("already a member of this clinic", "user_id")
        row = MembershipRead.model_construct(clinic_id=clinic_id, user_id=user_id, role=role,
                                             is_active=True)
        members[(clinic_id, user_id)] = row
        return row

    def members(self) -> builtins.list[MembershipRead]:
        clinic = self.clinic_id
        return [m for m in self.uow.store.get("memberships", {}).values()
                if m.clinic_id == clinic]


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
            reported_by=self.uow.actor.id, created_at=_now(), updated_at=_now())
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
            refusal_reason=None, response_sha256=None, created_at=_now(), updated_at=_now())
        self.rows[row.id] = row
        return row

    def change(self, request_id: uuid.UUID, expected_status: str,
               values: dict[str, Any]) -> DataSubjectRequestRead | None:
        clinic = self.clinic_id
        row = self.rows.get(request_id)
        if row is None or row.clinic_id != clinic or row.status != expected_status:
            return None
        changed: DataSubjectRequestRead = self._replace(
            request_id, {**values, "updated_at": _now()})
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
            disclosed_by=self.uow.actor.id, created_at=_now())
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


class FakeConsents(TenantRows):
    """The ledger in insertion order (its ``entry_no``); state as ``neonpro_consent_state``."""

    table = "consents"
    entity = "consent"

    def get(self, consent_id: uuid.UUID) -> ConsentRead:
        row: ConsentRead = super().get(consent_id)
        return row

    def _append(self, **values: Any) -> ConsentRead:
        base: dict[str, Any] = {"given_at": None, "revoked_at": None, "supersedes_id": None,
                                "evidence": {}, "collected_by": self.uow.actor.id,
                                "created_at": _now()}
        row = ConsentRead.model_construct(**{**base, **values, "id": uuid.uuid4()})
        self.rows[row.id] = row
        return row

    def add(self, data: ConsentCreate) -> ConsentRead:
        return self._append(
            clinic_id=self.clinic_id, patient_id=data.patient_id, purpose=data.purpose.value,
            legal_basis=data.legal_basis.value, status=ConsentStatus.GRANTED.value,
            given_at=_now(), expires_at=data.expires_at,
            collection_method=data.collection_method.value, terms_version=data.terms_version,
            terms_hash=data.terms_hash, evidence=data.evidence,
            data_categories=[c.value for c in data.data_categories])

    def history(self, patient_id: uuid.UUID,
                purpose: ConsentPurpose | None = None) -> builtins.list[ConsentRead]:
        return [r for r in self._mine() if r.patient_id == patient_id
                and (purpose is None or r.purpose == purpose.value)]

    def _states(self, clinic: uuid.UUID | None, at: datetime) -> builtins.list[ConsentState]:
        ledger = [r for r in self.rows.values() if clinic is None or r.clinic_id == clinic]
        expired = {r.supersedes_id for r in ledger if r.status == ConsentStatus.EXPIRED}
        latest: dict[tuple[uuid.UUID, uuid.UUID, str], tuple[int, ConsentRead]] = {}
        for entry_no, r in enumerate(ledger, start=1):
            if r.status in (ConsentStatus.GRANTED, ConsentStatus.REVOKED):
                latest[(r.clinic_id, r.patient_id, r.purpose)] = (entry_no, r)
        out = []
        for entry_no, d in latest.values():
            recorded = d.status == ConsentStatus.GRANTED and d.id in expired
            state = (ConsentStatusSummary.WITHDRAWN if d.status == ConsentStatus.REVOKED
                     else ConsentStatusSummary.EXPIRED
                     if recorded or (d.expires_at is not None and d.expires_at <= at)
                     else ConsentStatusSummary.GIVEN)
            out.append(ConsentState.model_construct(
                patient_id=d.patient_id, purpose=d.purpose, state=state, decision=d.status,
                decision_id=d.id, entry_no=entry_no,
                decided_at=d.revoked_at if d.status == ConsentStatus.REVOKED else d.given_at,
                legal_basis=d.legal_basis, terms_version=d.terms_version, given_at=d.given_at,
                expires_at=d.expires_at, data_categories=d.data_categories,
                expiry_recorded=recorded))
        return sorted(out, key=lambda s: (s.patient_id.bytes, s.purpose))

    def states(self, patient_id: uuid.UUID | None = None,
               at: datetime | None = None) -> builtins.list[ConsentState]:
        return [s for s in self._states(self.clinic_id, at or _now())
                if patient_id is None or s.patient_id == patient_id]

    def state(self, patient_id: uuid.UUID, purpose: ConsentPurpose,
              at: datetime | None = None) -> ConsentState | None:
        return next((s for s in self.states(patient_id, at) if s.purpose == purpose.value),
                    None)

    def current(self, patient_id: uuid.UUID, purpose: ConsentPurpose) -> ConsentRead | None:
        decided = self.state(patient_id, purpose)
        return None if decided is None else self.get(decided.decision_id)

    def expire_due(self, now: datetime) -> int:
        """Every clinic's with a service unit of work, else this clinic's."""
        superseded = {r.supersedes_id for r in self.rows.values()}
        due = [r for r in self.rows.values()
               if r.status == ConsentStatus.GRANTED and r.expires_at is not None
               and r.expires_at <= now and r.id not in superseded
               and (self.uow.service or r.clinic_id == self.clinic_id)]
        for r in due:
            self._append(**{**r.model_dump(), "status": ConsentStatus.EXPIRED.value,
                            "supersedes_id": r.id, "revoked_at": None,
                            "evidence": {"reason": "expires_at passed", "job": "expire_consents"},
                            "collected_by": self.uow.actor.id})
        return len(due)

    def revoke(self, consent_id: uuid.UUID, data: ConsentRevoke | None = None) -> ConsentRead:
        old = self.get(consent_id)
        if old.status != ConsentStatus.GRANTED:
            raise Conflict(f"only a granted consent can be revoked (this one is {old.status})",
                           "status")
        return self._append(**{**old.model_dump(), "status": ConsentStatus.REVOKED.value,
                               "revoked_at": _now(), "supersedes_id": old.id,
                               "evidence": data.evidence if data else {}})
