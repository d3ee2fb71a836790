"""Telemedicine sessions leave a complete trail; consent gates start and recording."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import Conflict, ConsentRequired
from neonpro.domain.schemas.appointment import AppointmentCreate
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.domain.vocabulary import AppointmentType, CollectionMethod, ConsentPurpose
from neonpro.services import catalog, clinics, consents, patients, scheduling, telemedicine

DOC = Actor(uuid.uuid4(), "professional", ip_address="192.0.2.10")


def _appointment(container: Container, kind: AppointmentType) -> tuple[uuid.UUID, uuid.UUID,
                                                                        uuid.UUID]:
    clinic = clinics.create_clinic(container.service_uow(DOC), ClinicCreate(name="Tele")).id
    prof = catalog.add_professional(container.uow(clinic, DOC), ProfessionalCreate(
        full_name="Dra. Tele", can_work_weekends=True, appointment_buffer_minutes=0)).id
    patient = patients.register_patient(container.uow(clinic, DOC),
                                        PatientCreate(full_name="Remota")).id
    start = datetime.combine(date.today() + timedelta(days=3), time(10),  # noqa: DTZ011
                             tzinfo=ZoneInfo("America/Sao_Paulo"))
    appt = scheduling.book_appointment(container.uow(clinic, DOC), AppointmentCreate(
        patient_id=patient, professional_id=prof, start_time=start,
        end_time=start + timedelta(minutes=30), appointment_type=kind)).id
    return clinic, patient, appt


def _consent(container: Container, clinic: uuid.UUID, patient: uuid.UUID,
             purpose: ConsentPurpose) -> None:
    consents.grant_consent(container.uow(clinic, DOC), ConsentCreate(
        patient_id=patient, purpose=purpose, terms_version="t1",
        terms_hash=hashlib.sha256(b"t").hexdigest(), collection_method=CollectionMethod.ONLINE_FORM))


def test_a_session_is_audited_from_start_to_end(container: Container) -> None:
    clinic, patient, appt = _appointment(container, AppointmentType.TELEMEDICINE)
    with pytest.raises(ConsentRequired):
        telemedicine.start_session(container.uow(clinic, DOC), appt)
    _consent(container, clinic, patient, ConsentPurpose.TELEMEDICINE)
    session = telemedicine.start_session(container.uow(clinic, DOC), appt)
    telemedicine.participant_joined(container.uow(clinic, DOC), appt, session, "patient")
    with pytest.raises(ConsentRequired):
        telemedicine.recording_consent(container.uow(clinic, DOC), appt, session, granted=True)
    telemedicine.recording_consent(container.uow(clinic, DOC), appt, session, granted=False)
    telemedicine.participant_left(container.uow(clinic, DOC), appt, session, "patient")
    telemedicine.end_session(container.uow(clinic, DOC), appt, session)
    with container.database.tenant_session(clinic, DOC.id) as s:
        actions = list(s.execute(text(
            "SELECT action FROM audit_events WHERE details ->> 'telemedicine_session' = :s "
            "ORDER BY occurred_at, action"), {"s": str(session)}).scalars())
    assert sorted(actions) == sorted(["TELEMEDICINE_START", "TELEMEDICINE_JOIN",
                                      "RECORDING_CONSENT", "TELEMEDICINE_LEAVE",
                                      "TELEMEDICINE_END"])


def test_in_person_appointments_have_no_session(container: Container) -> None:
    clinic, patient, appt = _appointment(container, AppointmentType.IN_PERSON)
    _consent(container, clinic, patient, ConsentPurpose.TELEMEDICINE)
    with pytest.raises(Conflict):
        telemedicine.start_session(container.uow(clinic, DOC), appt)
