"""In-memory fakes of clinics and their catalogue: professionals and service types.

As in SQL: this clinic's rows only (``NotFound`` otherwise), the columns' defaults on
insert, lists by name with the active ones by default, and a professional linked only to a
staff member of its own clinic. Rows are frozen and replaced on change.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from neonpro.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.scheduling import Schedule
from neonpro.domain.schemas.clinic import (
    ClinicCreate,
    ClinicRead,
    MembershipRead,
    StaffUserCreate,
    StaffUserRead,
)
from neonpro.domain.schemas.professional import (
    READ_FIELDS as PROFESSIONAL_FIELDS,
)
from neonpro.domain.schemas.professional import (
    ProfessionalCreate,
    ProfessionalRead,
    ProfessionalUpdate,
)
from neonpro.domain.schemas.service_type import (
    ServiceTypeCreate,
    ServiceTypeRead,
    ServiceTypeUpdate,
)
from neonpro.domain.vocabulary import ClinicRole
from tests.unit.fakes_base import TenantRows, page_of

if TYPE_CHECKING:
    from tests.unit.fakes import FakeUnitOfWork

PROFESSIONAL_DEFAULTS: dict[str, Any] = {
    "council_validation": "pending", "color": "#3B82F6", "is_active": True,
    "can_work_weekends": False, "max_daily_appointments": 20, "appointment_buffer_minutes": 15,
}


def _now() -> datetime:
    return datetime.now(UTC)


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


class FakeProfessionals(TenantRows):
    """Rows added through :meth:`add`; tests may also give a bare booking ``Schedule`` in
    ``schedules`` (it wins over the row's)."""

    table = "professionals"
    entity = "professional"

    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow)
        self.schedules: dict[uuid.UUID, Schedule] = uow.store.setdefault("schedules", {})

    def get(self, professional_id: uuid.UUID) -> ProfessionalRead:
        row: ProfessionalRead = super().get(professional_id)
        return row

    def _check_member(self, user_id: uuid.UUID | None) -> None:
        if user_id is not None and user_id not in {
                m.user_id for m in self.uow.clinics.members()}:
            raise ValidationFailed("user_id", "is not a staff member of this clinic")

    def add(self, data: ProfessionalCreate) -> ProfessionalRead:
        self._check_member(data.user_id)
        values = {**dict.fromkeys(PROFESSIONAL_FIELDS), **PROFESSIONAL_DEFAULTS,
                  **data.model_dump(exclude_none=True), "id": uuid.uuid4(),
                  "clinic_id": self.clinic_id, "created_at": _now(), "updated_at": _now()}
        row = ProfessionalRead.model_construct(**values)
        self.rows[row.id] = row
        return row

    def update(self, professional_id: uuid.UUID, data: ProfessionalUpdate) -> ProfessionalRead:
        changes = data.changes()
        self._check_member(changes.get("user_id"))
        row: ProfessionalRead = self._replace(professional_id,
                                              {**changes, "updated_at": _now()})
        return row

    def list(self, page: PageRequest | None = None, *,
             active: bool | None = True) -> Page[ProfessionalRead]:
        rows = [r for r in self._mine() if active is None or r.is_active is active]
        return page_of(sorted(rows, key=lambda r: (r.full_name, r.id.bytes)), page)

    def schedule_for_update(self, professional_id: uuid.UUID) -> Schedule:
        if professional_id in self.schedules:
            return self.schedules[professional_id]
        try:
            p = self.get(professional_id)
        except NotFound:
            raise NotFound("professional", professional_id) from None
        return Schedule(
            is_active=p.is_active, work_start=p.work_start_time, work_end=p.work_end_time,
            break_start=p.break_start_time, break_end=p.break_end_time,
            can_work_weekends=p.can_work_weekends,
            max_daily_appointments=p.max_daily_appointments,
            buffer_minutes=p.appointment_buffer_minutes, license_expiry=p.license_expiry_date)


class FakeServiceTypes(TenantRows):
    table = "service_types"
    entity = "service type"

    def get(self, service_type_id: uuid.UUID) -> ServiceTypeRead:
        row: ServiceTypeRead = super().get(service_type_id)
        return row

    def add(self, data: ServiceTypeCreate) -> ServiceTypeRead:
        values = {"description": None, "category": None, "tuss_code": None,
                  "price": Decimal("0.00"), "is_active": True,
                  **data.model_dump(exclude_none=True), "id": uuid.uuid4(),
                  "clinic_id": self.clinic_id, "created_at": _now(), "updated_at": _now()}
        row = ServiceTypeRead.model_construct(**values)
        self.rows[row.id] = row
        return row

    def update(self, service_type_id: uuid.UUID, data: ServiceTypeUpdate) -> ServiceTypeRead:
        row: ServiceTypeRead = self._replace(service_type_id,
                                             {**data.changes(), "updated_at": _now()})
        return row

    def list(self, page: PageRequest | None = None, *,
             active: bool | None = True) -> Page[ServiceTypeRead]:
        rows = [r for r in self._mine() if active is None or r.is_active is active]
        return page_of(sorted(rows, key=lambda r: (r.name, r.id.bytes)), page)
