"""The security-incident register in SQL (LGPD Art. 48, ANPD Resolution 15/2024).

Rows are created and updated by ``services.incidents``; every change is also recorded by
the row-change audit trigger (field names only, never the description).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import Table, func, or_, select, update

from neonpro.adapters.db.models import SecurityIncident
from neonpro.adapters.db.repositories._simple import PlainTenantRepository
from neonpro.domain.errors import Conflict, NotFound
from neonpro.domain.lgpd import NOTIFIABLE
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.schemas.incident import IncidentFilters, IncidentRead, NewIncident, Notified
from neonpro.domain.vocabulary import IncidentStatus, RiskLevel

__all__ = ["NOTIFIABLE", "IncidentFilters", "IncidentRead", "NewIncident", "Notified",
           "SqlIncidentRepository"]

TABLE: Table = SecurityIncident.__table__  # type: ignore[assignment]
T = TABLE.c

class SqlIncidentRepository(PlainTenantRepository[IncidentRead]):
    """``SqlIncidentRepository(uow)``: get, add, list, and intent-named updates."""

    __slots__ = ()
    table: ClassVar[Table] = TABLE
    entity = "security incident"
    read = IncidentRead

    def add(self, data: NewIncident) -> IncidentRead:
        values: dict[str, Any] = {
            "detected_at": data.detected_at, "learned_at": data.learned_at,
            "description": data.description, "risk_level": data.risk_level.value,
            "notification_due_at": data.notification_due_at, "retain_until": data.retain_until,
            "affected_data_categories": sorted(set(data.affected_data_categories)),
            "affected_patient_count": data.affected_patient_count,
            "risk_assessment": data.risk_assessment, "reported_by": self._uow.actor.id,
        }
        return self._insert(values)

    def lock(self, incident_id: uuid.UUID) -> IncidentRead:
        """Read the incident and hold its row until the transaction ends."""
        query = select(*self._columns()).where(
            T.clinic_id == self.clinic_id, T.id == incident_id).with_for_update()
        row = self._execute(query).first()
        if row is None:
            raise NotFound(self.entity, incident_id)
        return self._build(row)

    def set_affected(self, incident_id: uuid.UUID, count: int, categories: list[str],
                     risk_level: RiskLevel) -> IncidentRead:
        return self._update(incident_id, {
            "affected_patient_count": count,
            "affected_data_categories": sorted(set(categories)),
            "risk_level": risk_level.value,
        })

    def mark_notified(self, incident_id: uuid.UUID, who: Notified,
                      at: datetime) -> IncidentRead:
        """Record the communication once; a second one for the same party is a Conflict."""
        column = T.notified_anpd_at if who == "anpd" else T.notified_subjects_at
        statement = (
            update(TABLE).where(T.clinic_id == self.clinic_id, T.id == incident_id,
                                column.is_(None))
            .values({column.name: at}).returning(*self._columns())
        )
        row = self._execute(statement).first()
        if row is None:
            self.get(incident_id)  # NotFound when it does not exist
            raise Conflict(f"the {who} notification is already recorded", f"notified_{who}_at")
        return self._build(row)

    def close(self, incident_id: uuid.UUID, status: IncidentStatus, closed_at: datetime | None,
              mitigation: str | None, retain_until: date) -> IncidentRead:
        values: dict[str, Any] = {"status": status.value, "closed_at": closed_at,
                                  "retain_until": retain_until}
        if mitigation is not None:
            values["mitigation"] = mitigation
        return self._update(incident_id, values)

    def list(self, filters: IncidentFilters | None = None,
             page: PageRequest | None = None) -> Page[IncidentRead]:
        """Newest detection first."""
        f = filters or IncidentFilters()
        page = page or PageRequest()
        where: list[Any] = [T.clinic_id == self.clinic_id]
        if f.status is not None:
            where.append(T.status == f.status.value)
        if f.overdue_at is not None:
            where += [
                T.risk_level.in_([r.value for r in NOTIFIABLE]),
                T.notification_due_at < f.overdue_at,
                or_(T.notified_anpd_at.is_(None), T.notified_subjects_at.is_(None)),
            ]
        query = (select(*self._columns()).where(*where)
                 .order_by(T.detected_at.desc(), T.id).limit(page.limit).offset(page.offset))
        items = [self._build(r) for r in self._execute(query)]
        total = None
        if page.with_total:
            total = self._execute(select(func.count()).select_from(TABLE).where(*where)
                                  ).scalar_one()
        return Page(items, total, None, page.limit, page.offset)
