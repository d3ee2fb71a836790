"""An audit event as the trail shows it (search results, the API's ``/audit/events``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from neonpro.domain.schemas._types import ReadSchema


class AuditEvent(ReadSchema):
    """One event of a clinic's chain; ``seq`` is None until the sealer has chained it."""

    id: uuid.UUID
    seq: int | None
    occurred_at: datetime
    actor_id: uuid.UUID | None
    actor_role: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    status: str
    risk_level: str
    ip_address: str | None
    request_id: str | None
    details: dict[str, Any]
