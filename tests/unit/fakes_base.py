"""What the in-memory repositories share: rows of one table in the fake unit of work's
store, seen through its clinic (``Forbidden`` without one, ``NotFound`` for another
clinic's id, as the SQL repositories), and paging."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from neonpro.domain.errors import Forbidden, NotFound
from neonpro.domain.paging import Page, PageRequest

if TYPE_CHECKING:
    from tests.unit.fakes import FakeUnitOfWork


def utcnow() -> datetime:
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
