"""Shared code for plain (unencrypted) tenant tables: get, add, update, list by clinic."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Table, and_, bindparam, func, insert, select, update

from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.errors import NotFound
from neonpro.domain.paging import Page, PageRequest

R = TypeVar("R", bound=BaseModel)


class PlainTenantRepository(SqlRepository, Generic[R]):
    """get/add/update/list for a tenant table whose read schema maps 1:1 onto columns."""

    __slots__ = ()
    table: ClassVar[Table]
    entity: ClassVar[str]
    read: ClassVar[type[BaseModel]]
    order_by: ClassVar[str] = "created_at"

    @classmethod
    def _columns(cls) -> list[Any]:
        return [cls.table.c[f] for f in cls.read.model_fields]

    def _build(self, row: Any) -> R:
        return self.read.model_construct(**row._mapping)  # type: ignore[return-value]  # noqa: SLF001

    def _by_id(self) -> Any:
        c = self.table.c
        return and_(c.clinic_id == bindparam("b_clinic"), c.id == bindparam("b_id"))

    def get(self, entity_id: uuid.UUID) -> R:
        query = select(*self._columns()).where(self._by_id())
        row = self._execute(query, {"b_clinic": self.clinic_id, "b_id": entity_id}).first()
        if row is None:
            raise NotFound(self.entity, entity_id)
        return self._build(row)

    def _insert(self, values: dict[str, Any]) -> R:
        values = {**values, "id": values.get("id") or uuid.uuid4(), "clinic_id": self.clinic_id}
        statement = insert(self.table).values(**values).returning(*self._columns())
        return self._build(self._execute(statement).one())

    def _update(self, entity_id: uuid.UUID, values: dict[str, Any]) -> R:
        if not values:
            return self.get(entity_id)
        statement = (
            update(self.table).where(self._by_id()).values(**values).returning(*self._columns())
        )
        row = self._execute(statement, {"b_clinic": self.clinic_id, "b_id": entity_id}).first()
        if row is None:
            raise NotFound(self.entity, entity_id)
        return self._build(row)

    def _list(self, page: PageRequest, *conditions: Any) -> Page[R]:
        c = self.table.c
        where = [c.clinic_id == self.clinic_id, *conditions]
        query = (
            select(*self._columns()).where(*where)
            .order_by(c[self.order_by], c.id).limit(page.limit).offset(page.offset)
        )
        items = [self._build(r) for r in self._execute(query)]
        total = None
        if page.with_total:
            total = self._execute(
                select(func.count()).select_from(self.table).where(*where)
            ).scalar_one()
        return Page(items, total, None, page.limit, page.offset)
