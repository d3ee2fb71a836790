"""LGPD bookkeeping over HTTP: the security-incident register and the disclosure log.

Incidents are for admins and the DPO; any staff member records a disclosure, and any role
may answer a patient's "with whom was my data shared".
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, IPvAnyAddress

from neonpro.domain.errors import ValidationFailed
from neonpro.domain.paging import MAX_PAGE_SIZE, PageRequest
from neonpro.domain.schemas._types import Instant
from neonpro.domain.vocabulary import IncidentStatus
from neonpro.entrypoints.api.deps import EVERYONE, OVERSIGHT, STAFF, Caller, caller_with
from neonpro.entrypoints.api.pages import PageOut, to_page
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.services import disclosures as disclosure_svc
from neonpro.services import incidents as svc
from neonpro.services.disclosures import DisclosureCreate, DisclosureRead
from neonpro.services.incidents import (
    AccessScope,
    Affected,
    IncidentClose,
    IncidentCreate,
    IncidentRead,
    Notification,
)

router = APIRouter(route_class=OneHopRoute, prefix="/lgpd", tags=["lgpd"])
Oversight = Annotated[Caller, Depends(caller_with(OVERSIGHT))]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


class IncidentOut(BaseModel):
    id: uuid.UUID
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
    notification_required: bool
    overdue: bool
    mitigation: str | None
    status: str
    closed_at: datetime | None
    retain_until: date | None
    reported_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class AffectedOut(BaseModel):
    incident_id: uuid.UUID
    since: datetime
    until: datetime
    events: int
    patients: list[uuid.UUID]
    unresolved_patient_refs: int
    categories: dict[str, int]
    actions: dict[str, int]
    affected_patient_count: int


def _out(incident: IncidentRead) -> IncidentOut:
    fields = incident.model_dump(include=set(IncidentOut.model_fields))
    return IncidentOut(**fields, notification_required=incident.notification_required,
                       overdue=incident.is_overdue(datetime.now(UTC)))


def _affected(result: Affected) -> AffectedOut:
    found = result.investigation
    return AffectedOut(
        incident_id=result.incident.id, since=result.since, until=result.until,
        events=found.events, patients=found.patients,
        unresolved_patient_refs=found.unresolved_patient_refs, categories=found.categories,
        actions=found.actions, affected_patient_count=result.incident.affected_patient_count)


@router.post("/incidents", status_code=status.HTTP_201_CREATED, response_model=IncidentOut)
def register(data: IncidentCreate, caller: Oversight) -> IncidentOut:
    """Register an incident; the ANPD and patient notification is due 3 business days
    after ``learned_at`` (with ``scope``, affected patients are counted from the audit trail)."""
    return _out(svc.register_incident(caller.uow(), data))


@router.get("/incidents", response_model=PageOut[IncidentOut])
def register_list(caller: Oversight, overdue: bool = False,
                  incident_status: Annotated[IncidentStatus | None,
                                             Query(alias="status")] = None,
                  limit: Limit = 50, offset: Offset = 0) -> PageOut[IncidentOut]:
    """The register, newest first; ``overdue=true`` keeps notifiable incidents past due."""
    page = svc.list_incidents(caller.uow(), overdue=overdue, status=incident_status,
                              page=PageRequest(limit=limit, offset=offset))
    return to_page(page, [_out(i) for i in page.items])


@router.get("/incidents/{incident_id}", response_model=IncidentOut)
def read(incident_id: uuid.UUID, caller: Oversight) -> IncidentOut:
    return _out(svc.get_incident(caller.uow(), incident_id))


@router.post("/incidents/{incident_id}/notify", response_model=IncidentOut)
def notify(incident_id: uuid.UUID, data: Notification, caller: Oversight) -> IncidentOut:
    """Record the communication to the ANPD or to the patients (once each: 409 after)."""
    return _out(svc.notify(caller.uow(), incident_id, data))


@router.post("/incidents/{incident_id}/close", response_model=IncidentOut)
def close(incident_id: uuid.UUID, caller: Oversight,
          data: IncidentClose | None = None) -> IncidentOut:
    """Contain or close (closing needs a mitigation; the record is kept 5 years after)."""
    return _out(svc.close_incident(caller.uow(), incident_id, data or IncidentClose()))


@router.get("/incidents/{incident_id}/affected", response_model=AffectedOut)
def affected(incident_id: uuid.UUID, caller: Oversight, actor_id: uuid.UUID | None = None,
             ip: IPvAnyAddress | None = None, since: Instant | None = None,
             until: Instant | None = None) -> AffectedOut:
    """Which patients and data categories an actor or an address touched (default window:
    30 days before detection until closure or now). Reading only; audited."""
    scope = _scope(actor_id, ip, since, until)
    return _affected(svc.assess_affected(caller.uow(), incident_id, scope))


@router.post("/incidents/{incident_id}/affected", response_model=AffectedOut)
def store_affected(incident_id: uuid.UUID, scope: AccessScope,
                   caller: Oversight) -> AffectedOut:
    """The same investigation, stored: the incident's patient count and categories."""
    return _affected(svc.assess_affected(caller.uow(), incident_id, scope, store=True))


def _scope(actor_id: uuid.UUID | None, ip: IPvAnyAddress | None, since: datetime | None,
           until: datetime | None) -> AccessScope:
    if (actor_id is None) == (ip is None):
        raise ValidationFailed("actor_id", "give exactly one of actor_id or ip")
    if since is not None and until is not None and since >= until:
        raise ValidationFailed("since", "must be before until")
    return AccessScope(actor_id=actor_id, ip_address=ip, since=since, until=until)


@router.post("/disclosures", status_code=status.HTTP_201_CREATED,
             response_model=DisclosureRead)
def disclose(data: DisclosureCreate,
             caller: Annotated[Caller, Depends(caller_with(STAFF | OVERSIGHT))],
             ) -> DisclosureRead:
    """Log a sharing with a third party; on the consent basis a current data_sharing
    consent is required (428 otherwise)."""
    return disclosure_svc.record_disclosure(caller.uow(), data)


@router.get("/patients/{patient_id}/disclosures", response_model=PageOut[DisclosureRead])
def patient_disclosures(patient_id: uuid.UUID,
                        caller: Annotated[Caller, Depends(caller_with(EVERYONE))],
                        since: Instant | None = None, until: Instant | None = None,
                        limit: Limit = 50, offset: Offset = 0) -> PageOut[DisclosureRead]:
    """With whom the patient's data was shared (LGPD art. 18 VII), newest first; by default
    the 6-year accounting window."""
    page = disclosure_svc.list_disclosures(caller.uow(), patient_id, since=since, until=until,
                                           page=PageRequest(limit=limit, offset=offset))
    return to_page(page, page.items)
