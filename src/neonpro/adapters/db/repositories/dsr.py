"""Data-subject requests (LGPD Art. 18) in SQL: open, read, list, guarded status changes.

Status changes are compare-and-set on the current status (``UPDATE ... WHERE status =
:expected``): two operators acting on one request at once cannot both win. The row trigger
audits every insert and update; reads are audited by the services.

A service (cross-clinic) unit of work may list every clinic's requests; everything else
works in the unit of work's clinic.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, insert, select, update

from neonpro.adapters.db.models import DataSubjectRequest
from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.errors import NotFound
from neonpro.domain.lgpd import PENDING
from neonpro.domain.schemas.dsr import DataSubjectRequestRead
from neonpro.domain.vocabulary import DataSubjectRequestKind, DataSubjectRequestStatus

__all__ = ["ENTITY", "PENDING", "DataSubjectRequestRead", "SqlDsrRepository"]

TABLE = cast(Table, DataSubjectRequest.__table__)
T = TABLE.c
ENTITY = "data_subject_request"


READ_COLUMNS = [T[f] for f in DataSubjectRequestRead.model_fields]
_BY_ID = and_(T.clinic_id == bindparam("b_clinic"), T.id == bindparam("b_id"))


class SqlDsrRepository(SqlRepository):
    """The ``data_subject_requests`` repository of one unit of work."""

    __slots__ = ()

    def _build(self, row: Any) -> DataSubjectRequestRead:
        return DataSubjectRequestRead.model_construct(**row._mapping)  # noqa: SLF001

    # ------------------------------------------------------------ reads
    def get(self, request_id: uuid.UUID, *, for_update: bool = False) -> DataSubjectRequestRead:
        """The request in this clinic, or NotFound; ``for_update`` locks the row."""
        query = select(*READ_COLUMNS).where(_BY_ID)
        if for_update:
            query = query.with_for_update()
        row = self._execute(query, {"b_clinic": self.clinic_id, "b_id": request_id}).first()
        if row is None:
            raise NotFound(ENTITY, request_id)
        return self._build(row)

    def list(
        self,
        *,
        overdue_at: datetime | None = None,
        status: DataSubjectRequestStatus | None = None,
        patient_id: uuid.UUID | None = None,
        limit: int = 1000,
    ) -> builtins.list[DataSubjectRequestRead]:
        """Requests by due date (oldest first). ``overdue_at``: only those still open or in
        progress whose due date is before that moment. A service unit of work sees every
        clinic; a tenant one its own clinic."""
        query = select(*READ_COLUMNS)
        if not (self._uow.service and self._uow.clinic_id is None):
            query = query.where(T.clinic_id == self.clinic_id)
        if overdue_at is not None:
            query = query.where(T.due_at < overdue_at, T.status.in_(PENDING))
        if status is not None:
            query = query.where(T.status == status.value)
        if patient_id is not None:
            query = query.where(T.patient_id == patient_id)
        query = query.order_by(T.due_at, T.id).limit(limit)
        return [self._build(r) for r in self._execute(query)]

    def for_patient(self, patient_id: uuid.UUID) -> builtins.list[DataSubjectRequestRead]:
        """Every request of one patient in this clinic, oldest first."""
        query = (select(*READ_COLUMNS)
                 .where(T.clinic_id == self.clinic_id, T.patient_id == patient_id)
                 .order_by(T.received_at, T.id))
        return [self._build(r) for r in self._execute(query)]

    # ------------------------------------------------------------ writes
    def add(self, patient_id: uuid.UUID, kind: DataSubjectRequestKind, received_at: datetime,
            due_at: datetime) -> DataSubjectRequestRead:
        """Insert an open request (the patient must be this clinic's: composite FK)."""
        statement = insert(TABLE).values(
            id=uuid.uuid4(), clinic_id=self.clinic_id, patient_id=patient_id, kind=kind.value,
            status=DataSubjectRequestStatus.OPEN.value, received_at=received_at, due_at=due_at,
        ).returning(*READ_COLUMNS)
        return self._build(self._execute(statement).one())

    def change(self, request_id: uuid.UUID, expected_status: str,
               values: dict[str, Any]) -> DataSubjectRequestRead | None:
        """Apply ``values`` if the request is still in ``expected_status``; None otherwise
        (the caller re-reads to tell a missing request from a concurrent change)."""
        statement = (
            update(TABLE).where(_BY_ID, T.status == expected_status)
            .values(**values).returning(*READ_COLUMNS)
        )
        row = self._execute(statement, {"b_clinic": self.clinic_id, "b_id": request_id}).first()
        return None if row is None else self._build(row)
