"""Service types in SQL."""

from __future__ import annotations

import uuid
from typing import ClassVar

from sqlalchemy import Table

from neonpro.adapters.db.models import ServiceType
from neonpro.adapters.db.repositories._simple import PlainTenantRepository
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.schemas.service_type import (
    ServiceTypeCreate,
    ServiceTypeRead,
    ServiceTypeUpdate,
)

T = ServiceType.__table__.c


class SqlServiceTypeRepository(PlainTenantRepository[ServiceTypeRead]):
    __slots__ = ()
    table: ClassVar[Table] = ServiceType.__table__  # type: ignore[assignment]
    entity = "service_type"
    read = ServiceTypeRead
    order_by = "name"

    def add(self, data: ServiceTypeCreate) -> ServiceTypeRead:
        return self._insert(data.model_dump(exclude_none=True))

    def update(self, service_type_id: uuid.UUID, data: ServiceTypeUpdate) -> ServiceTypeRead:
        return self._update(service_type_id, data.changes())

    def list(self, page: PageRequest | None = None, *, active: bool | None = True,
             ) -> Page[ServiceTypeRead]:
        conditions = [] if active is None else [T.is_active.is_(active)]
        return self._list(page or PageRequest(), *conditions, scope=(active,))
