"""The audit trail's read side as a port (``domain.ports.AuditTrail``) on a unit of work."""

from __future__ import annotations

import uuid
from datetime import datetime

from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.schemas.incident import Investigation
from neonpro.queries.audit import investigate


class SqlAuditTrail(SqlRepository):
    """``uow.trail``: investigations over the clinic's audit events (``queries.audit``)."""

    __slots__ = ()

    def investigate(self, since: datetime, until: datetime, *,
                    actor_id: uuid.UUID | None = None,
                    ip_address: str | None = None) -> Investigation:
        """What one actor or one address touched in ``[since, until)`` (this clinic)."""
        return investigate(self._uow.connection, self.clinic_id, since, until,
                           actor_id=actor_id, ip_address=ip_address)
