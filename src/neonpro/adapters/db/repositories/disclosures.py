"""The disclosure (sharing) log in SQL: append-only in use, one row per sharing.

Answers LGPD Art. 18 VII ("with whom was my data shared") and the 6-year accounting of
disclosures (45 CFR 164.528). Inserts are audited by the row-change trigger, with the
patient's keyed reference.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Table, func, select

from neonpro.adapters.db.models import Disclosure
from neonpro.adapters.db.repositories._simple import PlainTenantRepository
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.schemas.disclosure import DisclosureFilters, DisclosureRead, NewDisclosure

__all__ = ["DisclosureFilters", "DisclosureRead", "NewDisclosure", "SqlDisclosureRepository"]

TABLE: Table = Disclosure.__table__  # type: ignore[assignment]
T = TABLE.c


class SqlDisclosureRepository(PlainTenantRepository[DisclosureRead]):
    """``SqlDisclosureRepository(uow)``: get, add, list (newest first)."""

    __slots__ = ()
    table: ClassVar[Table] = TABLE
    entity = "disclosure"
    read = DisclosureRead

    def add(self, data: NewDisclosure) -> DisclosureRead:
        return self._insert({
            "patient_id": data.patient_id, "disclosed_at": data.disclosed_at,
            "recipient_name": data.recipient_name, "recipient_address": data.recipient_address,
            "data_description": data.data_description,
            "data_categories": sorted(set(data.data_categories)), "purpose": data.purpose,
            "legal_basis": data.legal_basis.value, "consent_record_id": data.consent_record_id,
            "disclosed_by": self._uow.actor.id,
        })

    def list(self, filters: DisclosureFilters | None = None,
             page: PageRequest | None = None) -> Page[DisclosureRead]:
        f = filters or DisclosureFilters()
        page = page or PageRequest()
        where: list[Any] = [T.clinic_id == self.clinic_id]
        if f.patient_id is not None:
            where.append(T.patient_id == f.patient_id)
        if f.since is not None:
            where.append(T.disclosed_at >= f.since)
        if f.until is not None:
            where.append(T.disclosed_at < f.until)
        query = (select(*self._columns()).where(*where)
                 .order_by(T.disclosed_at.desc(), T.id).limit(page.limit).offset(page.offset))
        items = [self._build(r) for r in self._execute(query)]
        total = None
        if page.with_total:
            total = self._execute(select(func.count()).select_from(TABLE).where(*where)
                                  ).scalar_one()
        return Page(items, total, None, page.limit, page.offset)
