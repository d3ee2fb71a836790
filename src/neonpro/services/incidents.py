"""Security incidents (LGPD Art. 48; ANPD Resolution 15/2024): register, assess, notify, close.

Every incident is recorded, reported or not, and kept at least 5 years. One that may harm
patients is communicated to the ANPD and to the patients within 3 business days of the
clinic learning of it (``notification_due_at``, in the clinic's time zone, national
holidays skipped). Health data always counts as high risk. The description is internal:
it is stored and shown to admins and the DPO, never written to a log or an audit event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Self
from zoneinfo import ZoneInfo

from pydantic import Field, IPvAnyAddress, model_validator

from neonpro.domain.errors import Forbidden, InvalidTransition, ValidationFailed
from neonpro.domain.holidays import add_business_days, add_years
from neonpro.domain.lgpd import INCIDENT_TRANSITIONS, NOTIFIABLE
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.schemas._types import INT32_MAX, Instant, LongText, Schema
from neonpro.domain.schemas.incident import (
    IncidentFilters,
    IncidentRead,
    Investigation,
    NewIncident,
    Notified,
)
from neonpro.domain.vocabulary import (
    AuditAction,
    AuditResource,
    DataCategory,
    IncidentStatus,
    RiskLevel,
)
from neonpro.services.consents import SENSITIVE

__all__ = [
    "NOTIFIABLE", "AccessScope", "Affected", "IncidentClose", "IncidentCreate", "IncidentRead",
    "Notification", "assess_affected", "close_incident", "get_incident", "list_incidents",
    "notify",
    "register_incident",
]

NOTIFICATION_BUSINESS_DAYS = 3  # ANPD Resolution 15/2024 art. 6
RETENTION_YEARS = 5  # the register keeps every incident at least 5 years
DEFAULT_LOOKBACK = timedelta(days=30)  # an investigation window's default start, before detection
CLOCK_SKEW = timedelta(minutes=5)  # how far in the future a reported moment may be
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)  # keeps calendar arithmetic clear of year 1
_RISK_ORDER = list(RiskLevel)
_CATEGORIES = frozenset(c.value for c in DataCategory)


class AccessScope(Schema):
    """Whose accesses to look at: exactly one of an actor or an address, in a window.

    Without ``since`` the window starts 30 days before detection; without ``until`` it
    ends at closure (or now).
    """

    actor_id: uuid.UUID | None = None
    ip_address: IPvAnyAddress | None = None
    since: Instant | None = None
    until: Instant | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        if (self.actor_id is None) == (self.ip_address is None):
            raise ValueError("give exactly one of actor_id or ip_address")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class IncidentCreate(Schema):
    """An incident as reported. ``learned_at`` (default: ``detected_at``) starts the clock."""

    detected_at: Instant
    learned_at: Instant | None = None
    description: LongText = Field(min_length=1, description="internal: categories and counts, "
                                  "no personal data; never logged")
    affected_data_categories: list[DataCategory] = Field(default_factory=list, max_length=20)
    affected_patient_count: int = Field(default=0, ge=0, le=INT32_MAX)
    risk_assessment: LongText | None = None
    risk_level: RiskLevel | None = Field(
        default=None, description="default high; never below high when health data is affected")
    scope: AccessScope | None = Field(
        default=None, description="count the affected patients from the audit trail")

    @model_validator(mode="after")
    def _learned_after_detected(self) -> Self:
        if self.learned_at is not None and self.learned_at < self.detected_at:
            raise ValueError("learned_at must not be before detected_at")
        return self


class Notification(Schema):
    which: Notified
    at: Instant | None = Field(default=None, description="when it was sent; default now")


class IncidentClose(Schema):
    status: Literal["contained", "closed"] = "closed"
    mitigation: LongText | None = Field(default=None, min_length=1)
    closed_at: Instant | None = Field(default=None, description="default now")


@dataclass(frozen=True)
class Affected:
    incident: IncidentRead
    investigation: Investigation
    since: datetime
    until: datetime


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _not_future(name: str, moment: datetime, now: datetime) -> None:
    if moment > now + CLOCK_SKEW:
        raise ValidationFailed(name, "must not be in the future")
    if moment < EARLIEST:
        raise ValidationFailed(name, "must not be before 1900")


def floor_risk(level: RiskLevel | None, categories: set[str]) -> RiskLevel:
    """Default high; health data (clinical, images) never below high."""
    chosen = level or RiskLevel.HIGH
    if categories & SENSITIVE and _RISK_ORDER.index(chosen) < _RISK_ORDER.index(RiskLevel.HIGH):
        return RiskLevel.HIGH
    return chosen


def _zone(uow: UnitOfWork) -> ZoneInfo:
    return ZoneInfo(uow.clinics.get().timezone)


def _investigate(uow: UnitOfWork, scope: AccessScope, since: datetime,
                 until: datetime) -> Investigation:
    if uow.clinic_id is None:
        raise Forbidden("an investigation needs a clinic: open a tenant unit of work")
    ip = None if scope.ip_address is None else str(scope.ip_address)
    return uow.trail.investigate(since, until, actor_id=scope.actor_id, ip_address=ip)


def _window(scope: AccessScope, detected_at: datetime, end: datetime) -> tuple[datetime, datetime]:
    since = scope.since or detected_at - DEFAULT_LOOKBACK
    until = scope.until or end
    if since >= until:
        raise ValidationFailed("since", "must be before until")
    return since, until


def _touched(found: Investigation) -> tuple[int, set[str]]:
    """People and categories an investigation found (unresolved references are people too)."""
    count = len(found.patients) + found.unresolved_patient_refs
    return count, {c for c in found.categories if c in _CATEGORIES}


def register_incident(uow: UnitOfWork, data: IncidentCreate,
                      now: datetime | None = None) -> IncidentRead:
    """Record an incident with its notification deadline, risk and retention; audited."""
    now = _now(now)
    learned = data.learned_at or data.detected_at
    _not_future("detected_at", data.detected_at, now)
    _not_future("learned_at", learned, now)
    categories = {c.value for c in data.affected_data_categories}
    count = data.affected_patient_count
    with uow:
        zone = _zone(uow)
        found = None
        if data.scope is not None:
            since, until = _window(data.scope, data.detected_at, now)
            found = _investigate(uow, data.scope, since, until)
            people, touched = _touched(found)
            count, categories = max(count, people), categories | touched
        risk = floor_risk(data.risk_level, categories)
        incident = uow.incidents.add(NewIncident(
            detected_at=data.detected_at, learned_at=learned, description=data.description,
            risk_level=risk, affected_data_categories=sorted(categories),
            affected_patient_count=count, risk_assessment=data.risk_assessment,
            notification_due_at=add_business_days(learned, NOTIFICATION_BUSINESS_DAYS, zone),
            retain_until=add_years(data.detected_at.astimezone(zone).date(), RETENTION_YEARS),
        ))
        uow.audit.record(
            AuditAction.INCIDENT, AuditResource.SECURITY_INCIDENT, incident.id,
            risk=RiskLevel.CRITICAL if risk == RiskLevel.CRITICAL else RiskLevel.HIGH,
            details={"step": "registered", "risk_level": risk.value,
                     "categories": sorted(categories), "affected_patients": count,
                     "notification_due_at": incident.notification_due_at.isoformat()
                     if incident.notification_due_at else None,
                     "investigated_events": None if found is None else found.events},
        )
        uow.commit()
    return incident


def get_incident(uow: UnitOfWork, incident_id: uuid.UUID) -> IncidentRead:
    with uow:
        incident = uow.incidents.get(incident_id)
        uow.audit.record(AuditAction.VIEW, AuditResource.SECURITY_INCIDENT, incident_id)
        uow.commit()
    return incident


def assess_affected(uow: UnitOfWork, incident_id: uuid.UUID, scope: AccessScope, *,
                    store: bool = False, now: datetime | None = None) -> Affected:
    """Which patients and categories the scope touched; with ``store`` the incident's count
    and categories are updated (the count from this investigation, categories merged)."""
    now = _now(now)
    with uow:
        repo = uow.incidents
        incident = repo.lock(incident_id) if store else repo.get(incident_id)
        since, until = _window(scope, incident.detected_at, incident.closed_at or now)
        found = _investigate(uow, scope, since, until)
        if store:
            count, touched = _touched(found)
            categories = set(incident.affected_data_categories) | touched
            risk = floor_risk(RiskLevel(incident.risk_level), categories)
            incident = repo.set_affected(incident_id, count, sorted(categories), risk)
        uow.audit.record(AuditAction.VIEW, AuditResource.AUDIT_EVENTS, risk=RiskLevel.MEDIUM,
                         details={"investigation": True, "incident": str(incident_id),
                                  "events": found.events, "stored": store})
        uow.commit()
    return Affected(incident, found, since, until)


def notify(uow: UnitOfWork, incident_id: uuid.UUID, data: Notification,
           now: datetime | None = None) -> IncidentRead:
    """Record that the ANPD or the patients were told (once each)."""
    now = _now(now)
    at = data.at or now
    _not_future("at", at, now)
    with uow:
        repo = uow.incidents
        current = repo.lock(incident_id)
        if at < current.learned_at:
            raise ValidationFailed("at", "must not be before the clinic learned of the incident")
        incident = repo.mark_notified(incident_id, data.which, at)
        due = incident.notification_due_at
        uow.audit.record(AuditAction.INCIDENT, AuditResource.SECURITY_INCIDENT, incident_id,
                         details={"step": "notified", "party": data.which,
                                  "late": due is not None and at > due})
        uow.commit()
    return incident


def close_incident(uow: UnitOfWork, incident_id: uuid.UUID, data: IncidentClose,
                   now: datetime | None = None) -> IncidentRead:
    """Contain or close. Closing needs a mitigation and keeps the record 5 years after."""
    now = _now(now)
    target = IncidentStatus(data.status)
    with uow:
        repo = uow.incidents
        current = repo.lock(incident_id)
        if target not in INCIDENT_TRANSITIONS[current.status]:
            raise InvalidTransition("security incident", current.status, target.value)
        mitigation = data.mitigation or current.mitigation
        zone = _zone(uow)
        retain = current.retain_until or add_years(
            current.detected_at.astimezone(zone).date(), RETENTION_YEARS)
        closed_at = None
        if target == IncidentStatus.CLOSED:
            if mitigation is None:
                raise ValidationFailed("mitigation", "describe the mitigation before closing")
            closed_at = data.closed_at or now
            _not_future("closed_at", closed_at, now)
            if closed_at < current.detected_at:
                raise ValidationFailed("closed_at", "must not be before detected_at")
            retain = max(retain, add_years(closed_at.astimezone(zone).date(), RETENTION_YEARS))
        incident = repo.close(incident_id, target, closed_at, data.mitigation, retain)
        uow.audit.record(AuditAction.INCIDENT, AuditResource.SECURITY_INCIDENT, incident_id,
                         details={"step": target.value})
        uow.commit()
    return incident


def list_incidents(uow: UnitOfWork, *, overdue: bool = False,
                   status: IncidentStatus | None = None, page: PageRequest | None = None,
                   now: datetime | None = None) -> Page[IncidentRead]:
    """The register, newest first; ``overdue`` keeps notifiable ones past due and untold."""
    filters = IncidentFilters(status=status, overdue_at=_now(now) if overdue else None)
    with uow:
        result = uow.incidents.list(filters, page)
        uow.audit.record(AuditAction.VIEW, AuditResource.SECURITY_INCIDENT,
                         details={"returned": len(result.items), "overdue": overdue})
        uow.commit()
    return result
