"""Appointments: book, read, change, reschedule, cancel, the day's steps, calendar."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, Field

from neonpro.domain.errors import ValidationFailed
from neonpro.domain.schemas._types import Instant
from neonpro.domain.schemas.appointment import (
    AppointmentCreate,
    AppointmentRead,
    AppointmentUpdate,
    CalendarEntry,
    Cancel,
    Reschedule,
    Window,
)
from neonpro.domain.vocabulary import AppointmentStatus
from neonpro.entrypoints.api.deps import ADMIN, CLINICAL, EVERYONE, STAFF, Caller, caller_with
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.services import scheduling as svc

router = APIRouter(route_class=OneHopRoute, tags=["appointments"])
CLINICAL_FIELDS = ("clinical_notes", "internal_notes", "chief_complaint",
                   "follow_up_instructions")
HIDDEN = dict.fromkeys(CLINICAL_FIELDS)


class VersionBody(BaseModel):
    version: int = Field(ge=1, le=2_147_483_647, description="The version you read")


def shown(appointment: AppointmentRead, caller: Caller) -> AppointmentRead:
    return appointment if caller.sees_clinical else appointment.model_copy(update=HIDDEN)


def _guard(fields: set[str], caller: Caller) -> None:
    refused = fields.intersection(CLINICAL_FIELDS)
    if refused and not caller.sees_clinical:
        raise caller.forbid(f"the {caller.role.value} role may not write clinical fields",
                            fields=sorted(refused))


@router.post("/appointments", status_code=status.HTTP_201_CREATED,
             response_model=AppointmentRead)
def book(data: AppointmentCreate,
         caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> AppointmentRead:
    """Book if every rule holds (hours, break, weekends, daily maximum, buffer, licence)."""
    _guard({k for k, v in data.model_dump().items() if v}, caller)
    return shown(svc.book_appointment(caller.uow(), data), caller)


@router.get("/appointments/{appointment_id}", response_model=AppointmentRead)
def read(appointment_id: uuid.UUID,
         caller: Annotated[Caller, Depends(caller_with(EVERYONE))]) -> AppointmentRead:
    return shown(svc.get_appointment(caller.uow(), appointment_id), caller)


@router.patch("/appointments/{appointment_id}", response_model=AppointmentRead)
def change(appointment_id: uuid.UUID, data: AppointmentUpdate,
           caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> AppointmentRead:
    _guard(set(data.changes()), caller)
    return shown(svc.update_appointment(caller.uow(), appointment_id, data), caller)


@router.post("/appointments/{appointment_id}/reschedule", response_model=AppointmentRead,
             status_code=status.HTTP_201_CREATED)
def reschedule(appointment_id: uuid.UUID, data: Reschedule,
               caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> AppointmentRead:
    """Book the new window linked to this one, which becomes ``rescheduled``."""
    return shown(svc.reschedule_appointment(caller.uow(), appointment_id, data), caller)


@router.post("/appointments/{appointment_id}/cancel", response_model=AppointmentRead)
def cancel(appointment_id: uuid.UUID, data: Cancel,
           caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> AppointmentRead:
    return shown(svc.cancel_appointment(caller.uow(), appointment_id, data), caller)


@router.post("/appointments/{appointment_id}/confirm", response_model=AppointmentRead)
def confirm(appointment_id: uuid.UUID, body: VersionBody,
            caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> AppointmentRead:
    return shown(svc.confirm_appointment(caller.uow(), appointment_id, body.version), caller)


@router.post("/appointments/{appointment_id}/check-in", response_model=AppointmentRead)
def check_in(appointment_id: uuid.UUID, body: VersionBody,
             caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> AppointmentRead:
    return shown(svc.check_in(caller.uow(), appointment_id, body.version), caller)


@router.post("/appointments/{appointment_id}/start", response_model=AppointmentRead)
def start(appointment_id: uuid.UUID, body: VersionBody,
          caller: Annotated[Caller, Depends(caller_with(CLINICAL))]) -> AppointmentRead:
    return shown(svc.start_appointment(caller.uow(), appointment_id, body.version), caller)


@router.post("/appointments/{appointment_id}/complete", response_model=AppointmentRead)
def complete(appointment_id: uuid.UUID, body: VersionBody,
             caller: Annotated[Caller, Depends(caller_with(CLINICAL))]) -> AppointmentRead:
    return shown(svc.complete_appointment(caller.uow(), appointment_id, body.version), caller)


@router.post("/appointments/{appointment_id}/no-show", response_model=AppointmentRead)
def no_show(appointment_id: uuid.UUID, body: VersionBody,
            caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> AppointmentRead:
    return shown(svc.mark_no_show(caller.uow(), appointment_id, body.version), caller)


@router.delete("/appointments/{appointment_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete(appointment_id: uuid.UUID, version: Annotated[int, Query(ge=1, le=2_147_483_647)],
           caller: Annotated[Caller, Depends(caller_with(ADMIN))]) -> Response:
    """Remove a booking made in error (never one that took place)."""
    svc.delete_appointment(caller.uow(), appointment_id, version)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/calendar", response_model=list[CalendarEntry])
def calendar(
    start: Instant, end: Instant,
    caller: Annotated[Caller, Depends(caller_with(EVERYONE))],
    professional_id: uuid.UUID | None = None,
    status_in: Annotated[list[AppointmentStatus] | None, Query(alias="status")] = None,
) -> list[CalendarEntry]:
    """Appointments in a window (at most 62 days) with patient, professional, service."""
    if end <= start or (end - start).days > 62:  # noqa: PLR2004
        raise ValidationFailed("end", "must be after start and within 62 days of it")
    return svc.calendar(caller.uow(), Window(start, end), professional_id,
                        tuple(status_in or ()))

