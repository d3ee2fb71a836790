"""Shared code for plain (unencrypted) tenant tables: get, add, update, list by clinic."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    DateTime,
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)

from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.errors import NotFound
from neonpro.domain.paging import Page, PageRequest, query_scope

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

    def _list(self, page: PageRequest, *conditions: Any, scope: tuple[Any, ...] = ()) -> Page[R]:
        """A page in ``order_by`` then id order: by offset, or by keyset when ``page.cursor`` is
        given ('' for the first page). A cursor is sealed to this listing, clinic and ``scope``
        (the filters), so a forged, altered or foreign one is refused like any other; it was
        once ignored, and any string got the first page with no next cursor."""
        c = self.table.c
        where = [c.clinic_id == self.clinic_id, *conditions]
        column = c[self.order_by]
        query = select(*self._columns()).where(*where)
        sealed_to = query_scope(self.entity, self.clinic_id, self.order_by, *scope)
        cursors = self._uow.blind.cursors
        if page.keyset and page.cursor:
            value, last_id = cursors.open(page.cursor, sealed_to, 2)
            if isinstance(column.type, DateTime):
                value = datetime.fromisoformat(value)
            bound = tuple_(literal(value, column.type), literal(uuid.UUID(last_id), c.id.type))
            query = query.where(tuple_(column, c.id) > bound)
        query = query.order_by(column, c.id).limit(page.limit + 1)
        if not page.keyset:
            query = query.offset(page.offset)
        rows = self._execute(query).all()
        items = [self._build(r) for r in rows[: page.limit]]
        next_cursor = None
        if len(rows) > page.limit and page.keyset:
            last = rows[page.limit - 1]._mapping  # noqa: SLF001
            key = last[self.order_by]
            next_cursor = cursors.seal(
                [key.isoformat() if isinstance(key, datetime) else key, str(last["id"])],
                sealed_to)
        total = None
        if page.with_total:
            total = self._execute(
                select(func.count()).select_from(self.table).where(*where)
            ).scalar_one()
        return Page(items, total, next_cursor, page.limit, 0 if page.keyset else page.offset)
