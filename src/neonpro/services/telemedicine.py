"""Telemedicine session auditing (the seed's WebRTC session audit), through the audit trail.

A session is a run of audit events on its appointment, tied by ``session_id``: start,
participants joining and leaving, the recording consent answer, end. Starting one
needs the patient's telemedicine consent (CFM Res. 2.314/2022, LGPD Art. 11).
"""

from __future__ import annotations

import uuid
from typing import Literal

from neonpro.domain.errors import Conflict
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.vocabulary import AppointmentType, AuditAction, ConsentPurpose
from neonpro.services.consents import require_consent

Participant = Literal["patient", "professional", "interpreter", "companion", "observer"]
REMOTE = {AppointmentType.TELEMEDICINE.value, AppointmentType.HYBRID.value}


def _event(uow: UnitOfWork, appointment_id: uuid.UUID, action: AuditAction,
           session_id: uuid.UUID, details: dict[str, str | bool]) -> None:
    appointment = uow.appointments.get(appointment_id)
    uow.audit.record(action, "appointment", appointment_id, patient_id=appointment.patient_id,
                     details={"telemedicine_session": str(session_id), **details})


def start_session(uow: UnitOfWork, appointment_id: uuid.UUID) -> uuid.UUID:
    """Open a session for a telemedicine or hybrid appointment; returns its id."""
    session_id = uuid.uuid4()
    with uow:
        appointment = uow.appointments.get(appointment_id)
        if appointment.appointment_type not in REMOTE:
            raise Conflict("the appointment is not a telemedicine appointment",
                           "appointment_type")
        require_consent(uow, appointment.patient_id, ConsentPurpose.TELEMEDICINE)
        _event(uow, appointment_id, AuditAction.TELEMEDICINE_START, session_id, {})
        uow.commit()
    return session_id


def participant_joined(uow: UnitOfWork, appointment_id: uuid.UUID, session_id: uuid.UUID,
                       participant: Participant) -> None:
    with uow:
        _event(uow, appointment_id, AuditAction.TELEMEDICINE_JOIN, session_id,
               {"participant": participant})
        uow.commit()


def participant_left(uow: UnitOfWork, appointment_id: uuid.UUID, session_id: uuid.UUID,
                     participant: Participant) -> None:
    with uow:
        _event(uow, appointment_id, AuditAction.TELEMEDICINE_LEAVE, session_id,
               {"participant": participant})
        uow.commit()


def recording_consent(uow: UnitOfWork, appointment_id: uuid.UUID, session_id: uuid.UUID, *,
                      granted: bool) -> None:
    """The patient's answer to recording; recording itself needs the image-use consent."""
    with uow:
        if granted:
            appointment = uow.appointments.get(appointment_id)
            require_consent(uow, appointment.patient_id, ConsentPurpose.IMAGE_USE)
        _event(uow, appointment_id, AuditAction.RECORDING_CONSENT, session_id,
               {"granted": granted})
        uow.commit()


def end_session(uow: UnitOfWork, appointment_id: uuid.UUID, session_id: uuid.UUID) -> None:
    with uow:
        _event(uow, appointment_id, AuditAction.TELEMEDICINE_END, session_id, {})
        uow.commit()
