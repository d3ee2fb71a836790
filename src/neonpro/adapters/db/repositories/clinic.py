"""Clinics, staff accounts and memberships in SQL.

Creating a clinic or an account is service-role work (the application role has no
INSERT on ``clinics`` or ``staff_users``); a tenant unit of work reads its own clinic.
"""

from __future__ import annotations

import builtins
import uuid
from typing import Any, cast

from sqlalchemy import Table, insert, select

from neonpro.adapters.db.models import Clinic, ClinicMembership, StaffUser
from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.errors import Forbidden, NotFound
from neonpro.domain.schemas.clinic import (
    ClinicCreate,
    ClinicRead,
    MembershipRead,
    StaffUserCreate,
    StaffUserRead,
)
from neonpro.domain.vocabulary import ClinicRole

CLINICS = cast(Table, Clinic.__table__)
USERS = cast(Table, StaffUser.__table__)
MEMBERS = cast(Table, ClinicMembership.__table__)
CLINIC_COLUMNS = [CLINICS.c[f] for f in ClinicRead.model_fields]
USER_COLUMNS = [USERS.c[f] for f in StaffUserRead.model_fields]
MEMBER_COLUMNS = [MEMBERS.c[f] for f in MembershipRead.model_fields]


class SqlClinicRepository(SqlRepository):
    __slots__ = ()

    def _service_only(self, what: str) -> None:
        if not self._uow.service:
            raise Forbidden(f"{what} needs the service role")

    def add(self, data: ClinicCreate) -> ClinicRead:
        self._service_only("creating a clinic")
        values: dict[str, Any] = {"id": uuid.uuid4(), **data.model_dump(exclude_none=True)}
        row = self._execute(insert(CLINICS).values(**values).returning(*CLINIC_COLUMNS)).one()
        return ClinicRead.model_construct(**row._mapping)  # noqa: SLF001

    def get(self, clinic_id: uuid.UUID | None = None) -> ClinicRead:
        """The unit of work's clinic (or, with the service role, any clinic)."""
        target = clinic_id or self.clinic_id
        row = self._execute(select(*CLINIC_COLUMNS).where(CLINICS.c.id == target)).first()
        if row is None:
            raise NotFound("clinic", target)
        return ClinicRead.model_construct(**row._mapping)  # noqa: SLF001

    def exists(self) -> bool:
        """Whether the unit of work's clinic is a clinic (row-level security shows it)."""
        return self._execute(select(CLINICS.c.id).where(
            CLINICS.c.id == self.clinic_id)).first() is not None

    def list(self) -> builtins.list[ClinicRead]:
        self._service_only("listing clinics")
        rows = self._execute(select(*CLINIC_COLUMNS).order_by(CLINICS.c.name, CLINICS.c.id))
        return [ClinicRead.model_construct(**r._mapping) for r in rows]  # noqa: SLF001

    def add_user(self, data: StaffUserCreate) -> StaffUserRead:
        self._service_only("creating a staff account")
        values = {"id": uuid.uuid4(), **data.model_dump()}
        row = self._execute(insert(USERS).values(**values).returning(*USER_COLUMNS)).one()
        return StaffUserRead.model_construct(**row._mapping)  # noqa: SLF001

    def add_membership(self, clinic_id: uuid.UUID, user_id: uuid.UUID,
                       role: ClinicRole) -> MembershipRead:
        self._service_only("granting a membership")
        statement = insert(MEMBERS).values(clinic_id=clinic_id, user_id=user_id,
                                           role=role.value).returning(*MEMBER_COLUMNS)
        return MembershipRead.model_construct(**self._execute(statement).one()._mapping)  # noqa: SLF001

    def members(self) -> builtins.list[MembershipRead]:
        rows = self._execute(select(*MEMBER_COLUMNS).where(MEMBERS.c.clinic_id == self.clinic_id))
        return [MembershipRead.model_construct(**r._mapping) for r in rows]  # noqa: SLF001
