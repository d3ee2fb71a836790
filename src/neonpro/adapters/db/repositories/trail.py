"""The audit trail's read side as ports on a unit of work: ``domain.ports.AuditTrail``
(``uow.trail``) and ``domain.ports_audit.AuditReports`` (``uow.audit_reports``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.audit_reports import AuditFilters
from neonpro.domain.paging import Page
from neonpro.domain.schemas.audit import AuditEvent
from neonpro.domain.schemas.incident import Investigation
from neonpro.queries.audit import investigate, search
from neonpro.queries.compliance import compliance_report


class SqlAuditTrail(SqlRepository):
    """``uow.trail``: investigations over the clinic's audit events (``queries.audit``)."""

    __slots__ = ()

    def investigate(self, since: datetime, until: datetime, *,
                    actor_id: uuid.UUID | None = None,
                    ip_address: str | None = None) -> Investigation:
        """What one actor or one address touched in ``[since, until)`` (this clinic)."""
        return investigate(self._uow.connection, self.clinic_id, since, until,
                           actor_id=actor_id, ip_address=ip_address)


class SqlAuditReports(SqlRepository):
    """``uow.audit_reports``: the search and the compliance report (``queries``) over the
    clinic's audit trail."""

    __slots__ = ()

    def search(self, filters: AuditFilters, limit: int = 50,
               cursor: str | None = None) -> Page[AuditEvent]:
        return search(self._uow.connection, self.clinic_id, filters, self._uow.blind.cursors,
                      limit, cursor)

    def compliance(self, since: datetime, until: datetime,
                   chain: dict[str, Any]) -> dict[str, Any]:
        return compliance_report(self._uow.connection, self.clinic_id, since, until, chain)
