"""The security-incident register (LGPD Art. 48, ANPD Resolution 15/2024): the row as read,
the row as the service computed it, the register's filters, and an audit-trail
investigation's findings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from pydantic import ConfigDict

from neonpro.domain.lgpd import NOTIFIABLE
from neonpro.domain.schemas._types import ReadSchema
from neonpro.domain.vocabulary import IncidentStatus, RiskLevel

Notified = Literal["anpd", "subjects"]


class IncidentRead(ReadSchema):
    id: uuid.UUID
    clinic_id: uuid.UUID
    detected_at: datetime
    learned_at: datetime
    description: str
    affected_data_categories: list[str]
    affected_patient_count: int
    risk_assessment: str | None
    risk_level: str
    notified_anpd_at: datetime | None
    notified_subjects_at: datetime | None
    notification_due_at: datetime | None
    mitigation: str | None
    status: str
    closed_at: datetime | None
    retain_until: date | None
    reported_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime

    @property
    def notification_required(self) -> bool:
        return self.risk_level in NOTIFIABLE

    def is_overdue(self, now: datetime) -> bool:
        """Notifiable, past its due moment, and the ANPD or the patients not yet told."""
        return (self.notification_required and self.notification_due_at is not None
                and self.notification_due_at < now
                and (self.notified_anpd_at is None or self.notified_subjects_at is None))


@dataclass(frozen=True)
class NewIncident:
    """A row as the service computed it (deadline, risk floor, retention, counts)."""

    detected_at: datetime
    learned_at: datetime
    description: str
    risk_level: RiskLevel
    notification_due_at: datetime
    retain_until: date
    affected_data_categories: list[str] = field(default_factory=list)
    affected_patient_count: int = 0
    risk_assessment: str | None = None


@dataclass(frozen=True)
class IncidentFilters:
    status: IncidentStatus | None = None
    overdue_at: datetime | None = None  # only incidents overdue at this moment


@dataclass
class Investigation:
    """What the audit trail says an actor (or an address) touched in a window."""

    # an answer always has every field: required in the API's schema, defaults or not
    __pydantic_config__ = ConfigDict(json_schema_serialization_defaults_required=True)

    events: int = 0
    patients: list[uuid.UUID] = field(default_factory=list)
    unresolved_patient_refs: int = 0
    categories: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
