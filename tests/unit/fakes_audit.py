"""In-memory fake of the audit trail's reports (``domain.ports_audit.AuditReports``).

The trail is ``rows``: audit event rows a test puts in the store (``audit_rows``), read
through the unit of work's clinic (``clinic_of`` names each row's), newest first; every
report asked for is kept in ``asked``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neonpro.domain.audit_reports import AuditFilters
from neonpro.domain.errors import Forbidden
from neonpro.domain.paging import Page
from neonpro.domain.schemas.audit import AuditEvent

if TYPE_CHECKING:
    from tests.unit.fakes import FakeUnitOfWork


class FakeAuditReports:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.rows: dict[uuid.UUID, AuditEvent] = uow.store.setdefault("audit_rows", {})
        self.clinic_of: dict[uuid.UUID, uuid.UUID] = uow.store.setdefault("audit_clinics", {})
        self.asked: list[tuple[str, Any]] = []

    def _clinic(self) -> uuid.UUID:
        if self.uow.clinic_id is None:
            raise Forbidden("this operation needs a clinic: open a tenant unit of work")
        return self.uow.clinic_id

    def search(self, filters: AuditFilters, limit: int = 50,
               cursor: str | None = None) -> Page[AuditEvent]:
        clinic = self._clinic()
        self.asked.append(("search", filters))
        rows = sorted((r for r in self.rows.values() if self.clinic_of.get(r.id) == clinic
                       and (filters.action is None or r.action == filters.action)
                       and (filters.actor_id is None or r.actor_id == filters.actor_id)
                       and (not filters.risk_levels or r.risk_level in filters.risk_levels)),
                      key=lambda r: (r.occurred_at, r.id), reverse=True)
        start = int(cursor) if cursor else 0
        items = rows[start:start + limit]
        more = str(start + limit) if len(rows) > start + limit else None
        return Page(items, None, more, limit, 0)

    def compliance(self, since: datetime, until: datetime,
                   chain: dict[str, Any]) -> dict[str, Any]:
        clinic = self._clinic()
        self.asked.append(("compliance", (since, until)))
        events = [r for r in self.rows.values() if self.clinic_of.get(r.id) == clinic
                  and since <= r.occurred_at < until]
        return {"clinic_id": str(clinic), "events": len(events), "audit_chain": chain}
