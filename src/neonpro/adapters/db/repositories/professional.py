"""Professionals in SQL, including the schedule that booking rules read."""

from __future__ import annotations

import uuid
from typing import ClassVar

from sqlalchemy import Table, bindparam, select

from neonpro.adapters.db.hot import HotStatement
from neonpro.adapters.db.models import ClinicMembership, Professional
from neonpro.adapters.db.repositories._simple import PlainTenantRepository
from neonpro.domain.errors import NotFound, ValidationFailed
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.scheduling import Schedule
from neonpro.domain.schemas.professional import (
    ProfessionalCreate,
    ProfessionalRead,
    ProfessionalUpdate,
)

T = Professional.__table__.c
M = ClinicMembership.__table__.c

# every booking locks its professional's row and reads the schedule (hot.py)
SCHEDULE_FOR_UPDATE = HotStatement(
    select(
        T.is_active, T.work_start_time, T.work_end_time, T.break_start_time,
        T.break_end_time, T.can_work_weekends, T.max_daily_appointments,
        T.appointment_buffer_minutes, T.license_expiry_date,
    )
    .where(T.clinic_id == bindparam("b_clinic"), T.id == bindparam("b_id"))
    .with_for_update()
)


class SqlProfessionalRepository(PlainTenantRepository[ProfessionalRead]):
    __slots__ = ()
    table: ClassVar[Table] = Professional.__table__  # type: ignore[assignment]
    entity = "professional"
    read = ProfessionalRead
    order_by = "full_name"

    def add(self, data: ProfessionalCreate) -> ProfessionalRead:
        self._check_member(data.user_id)
        return self._insert(data.model_dump(exclude_none=True))

    def update(self, professional_id: uuid.UUID, data: ProfessionalUpdate) -> ProfessionalRead:
        changes = data.changes()
        self._check_member(changes.get("user_id"))
        return self._update(professional_id, changes)

    def _check_member(self, user_id: object) -> None:
        """A professional links only a staff member of its own clinic: row-level security
        shows this clinic's memberships only, while the foreign key (checked past it) would
        take any clinic's staff account."""
        if user_id is None:
            return
        member = self._execute(select(M.user_id).where(
            M.clinic_id == self.clinic_id, M.user_id == user_id)).first()
        if member is None:
            raise ValidationFailed("user_id", "is not a staff member of this clinic")

    def list(self, page: PageRequest | None = None, *, active: bool | None = True,
             ) -> Page[ProfessionalRead]:
        conditions = [] if active is None else [T.is_active.is_(active)]
        return self._list(page or PageRequest(), *conditions, scope=(active,))

    def schedule_for_update(self, professional_id: uuid.UUID) -> Schedule:
        """The booking schedule, locking the professional's row until the transaction ends,
        so concurrent bookings for one professional check the daily maximum and buffer in turn.
        """
        rows = self._fetch(SCHEDULE_FOR_UPDATE, {"b_clinic": self.clinic_id,
                                                 "b_id": professional_id})
        if not rows:
            raise NotFound("professional", professional_id)
        row = rows[0]
        return Schedule(
            is_active=row["is_active"], work_start=row["work_start_time"],
            work_end=row["work_end_time"], break_start=row["break_start_time"],
            break_end=row["break_end_time"], can_work_weekends=row["can_work_weekends"],
            max_daily_appointments=row["max_daily_appointments"],
            buffer_minutes=row["appointment_buffer_minutes"],
            license_expiry=row["license_expiry_date"],
        )
