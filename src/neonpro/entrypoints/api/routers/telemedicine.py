"""Telemedicine session events: start, participants, recording consent, end (all audited)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel

from neonpro.entrypoints.api.deps import CLINICAL, STAFF, Caller, caller_with
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.services import telemedicine as svc
from neonpro.services.telemedicine import Participant

router = APIRouter(route_class=OneHopRoute,
                   prefix="/appointments/{appointment_id}/telemedicine", tags=["telemedicine"])


class SessionOut(BaseModel):
    session_id: uuid.UUID


class ParticipantIn(BaseModel):
    session_id: uuid.UUID
    participant: Participant


class RecordingIn(BaseModel):
    session_id: uuid.UUID
    granted: bool


class SessionIn(BaseModel):
    session_id: uuid.UUID


@router.post("/start", response_model=SessionOut, status_code=status.HTTP_201_CREATED)
def start(appointment_id: uuid.UUID,
          caller: Annotated[Caller, Depends(caller_with(CLINICAL))]) -> SessionOut:
    """Open a session (needs the patient's telemedicine consent: 428 otherwise)."""
    return SessionOut(session_id=svc.start_session(caller.uow(), appointment_id))


@router.post("/join", status_code=status.HTTP_204_NO_CONTENT)
def join(appointment_id: uuid.UUID, body: ParticipantIn,
         caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> Response:
    svc.participant_joined(caller.uow(), appointment_id, body.session_id, body.participant)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/leave", status_code=status.HTTP_204_NO_CONTENT)
def leave(appointment_id: uuid.UUID, body: ParticipantIn,
          caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> Response:
    svc.participant_left(caller.uow(), appointment_id, body.session_id, body.participant)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/recording-consent", status_code=status.HTTP_204_NO_CONTENT)
def recording(appointment_id: uuid.UUID, body: RecordingIn,
              caller: Annotated[Caller, Depends(caller_with(CLINICAL))]) -> Response:
    """The patient's answer; a yes needs the image-use consent (428 otherwise)."""
    svc.recording_consent(caller.uow(), appointment_id, body.session_id, granted=body.granted)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/end", status_code=status.HTTP_204_NO_CONTENT)
def end(appointment_id: uuid.UUID, body: SessionIn,
        caller: Annotated[Caller, Depends(caller_with(CLINICAL))]) -> Response:
    svc.end_session(caller.uow(), appointment_id, body.session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
