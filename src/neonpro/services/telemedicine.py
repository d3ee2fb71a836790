"""Telemedicine session auditing (the seed's WebRTC session audit), through the audit trail.

A session is a run of audit events on its appointment, tied by ``session_id``: start,
participants joining and leaving, the recording consent answer, end. Starting one, and
joining one, needs the patient's telemedicine consent (CFM Res. 2.314/2022, LGPD Art. 11)
as the ledger stands at that moment: a consent revoked after the start refuses the next
join (428, audited as a refusal like the start's). Every event after the start names a
session started on that appointment in the caller's clinic (404 otherwise: another
clinic's session is as unknown as one never started).
"""

from __future__ import annotations

import uuid
from typing import Literal

from neonpro.domain.errors import Conflict, NotFound
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.vocabulary import AppointmentType, AuditAction, AuditResource, ConsentPurpose
from neonpro.services.consents import require_consent

Participant = Literal["patient", "professional", "interpreter", "companion", "observer"]
REMOTE = {AppointmentType.TELEMEDICINE.value, AppointmentType.HYBRID.value}


def _event(uow: UnitOfWork, appointment_id: uuid.UUID, patient_id: uuid.UUID,
           action: AuditAction, session_id: uuid.UUID, details: dict[str, str | bool]) -> None:
    uow.audit.record(action, AuditResource.APPOINTMENT, appointment_id, patient_id=patient_id,
                     details={"telemedicine_session": str(session_id), **details})


def _started(uow: UnitOfWork, appointment_id: uuid.UUID, session_id: uuid.UUID) -> uuid.UUID:
    """Inside an open unit of work: the appointment's patient, once the appointment (in
    this clinic) and the session started on it are known; NotFound otherwise."""
    appointment = uow.appointments.get(appointment_id)
    if not uow.audit.session_started(appointment_id, session_id):
        raise NotFound("telemedicine session", session_id)
    return appointment.patient_id


def start_session(uow: UnitOfWork, appointment_id: uuid.UUID) -> uuid.UUID:
    """Open a session for a telemedicine or hybrid appointment; returns its id."""
    session_id = uuid.uuid4()
    with uow:
        appointment = uow.appointments.get(appointment_id)
        if appointment.appointment_type not in REMOTE:
            raise Conflict("the appointment is not a telemedicine appointment",
                           "appointment_type")
        require_consent(uow, appointment.patient_id, ConsentPurpose.TELEMEDICINE)
        _event(uow, appointment_id, appointment.patient_id, AuditAction.TELEMEDICINE_START,
               session_id, {})
        uow.commit()
    return session_id


def participant_joined(uow: UnitOfWork, appointment_id: uuid.UUID, session_id: uuid.UUID,
                       participant: Participant) -> None:
    """A participant joins: refused (ConsentRequired) once the patient's telemedicine
    consent is no longer in force, whoever joins."""
    with uow:
        patient_id = _started(uow, appointment_id, session_id)
        require_consent(uow, patient_id, ConsentPurpose.TELEMEDICINE)
        _event(uow, appointment_id, patient_id, AuditAction.TELEMEDICINE_JOIN, session_id,
               {"participant": participant})
        uow.commit()


def participant_left(uow: UnitOfWork, appointment_id: uuid.UUID, session_id: uuid.UUID,
                     participant: Participant) -> None:
    """Leaving is always recorded (it ends processing), consent or not."""
    with uow:
        patient_id = _started(uow, appointment_id, session_id)
        _event(uow, appointment_id, patient_id, AuditAction.TELEMEDICINE_LEAVE, session_id,
               {"participant": participant})
        uow.commit()


def recording_consent(uow: UnitOfWork, appointment_id: uuid.UUID, session_id: uuid.UUID, *,
                      granted: bool) -> None:
    """The patient's answer to recording; recording itself needs the image-use consent."""
    with uow:
        patient_id = _started(uow, appointment_id, session_id)
        if granted:
            require_consent(uow, patient_id, ConsentPurpose.IMAGE_USE)
        _event(uow, appointment_id, patient_id, AuditAction.RECORDING_CONSENT, session_id,
               {"granted": granted})
        uow.commit()


def end_session(uow: UnitOfWork, appointment_id: uuid.UUID, session_id: uuid.UUID) -> None:
    """Ending is always recorded (it ends processing), consent or not."""
    with uow:
        patient_id = _started(uow, appointment_id, session_id)
        _event(uow, appointment_id, patient_id, AuditAction.TELEMEDICINE_END, session_id, {})
        uow.commit()
