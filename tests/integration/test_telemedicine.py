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
from neonpro.domain.errors import Conflict, ConsentRequired, NotFound
from neonpro.domain.schemas.appointment import AppointmentCreate
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.domain.vocabulary import AppointmentType, CollectionMethod, ConsentPurpose
from neonpro.services import catalog, clinics, consents, patients, scheduling, telemedicine
from tests.sessions import tenant_session

DOC = Actor(uuid.uuid4(), "professional", ip_address="192.0.2.10")


def _appointment(container: Container, kind: AppointmentType,
                 clinic: uuid.UUID | None = None) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A new appointment (in a new clinic, or in ``clinic``)."""
    if clinic is None:
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
             purpose: ConsentPurpose) -> uuid.UUID:
    return consents.grant_consent(container.uow(clinic, DOC), ConsentCreate(
        patient_id=patient, purpose=purpose, terms_version="t1",
        terms_hash=hashlib.sha256(b"t").hexdigest(), collection_method=CollectionMethod.ONLINE_FORM)).id


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
    with tenant_session(container.database, clinic, DOC.id) as s:
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


def _denials(container: Container, clinic: uuid.UUID,
             actor: Actor) -> list[tuple[object, ...]]:
    with tenant_session(container.database, clinic, actor.id) as s:
        return [tuple(r) for r in s.execute(text(
            "SELECT status, risk_level, details FROM audit_events WHERE actor_id = :a "
            "AND action = 'PERMISSION_DENIED' ORDER BY occurred_at"), {"a": actor.id})]


def test_join_is_refused_once_the_consent_is_revoked(container: Container) -> None:
    """Issue 13 (3): the gate is the ledger as it stands at join time, not at start."""
    clinic, patient, appt = _appointment(container, AppointmentType.TELEMEDICINE)
    doc = Actor(uuid.uuid4(), "professional")
    granted = _consent(container, clinic, patient, ConsentPurpose.TELEMEDICINE)
    session = telemedicine.start_session(container.uow(clinic, doc), appt)
    telemedicine.participant_joined(container.uow(clinic, doc), appt, session, "professional")
    consents.revoke_consent(container.uow(clinic, DOC), granted)
    with pytest.raises(ConsentRequired):
        telemedicine.participant_joined(container.uow(clinic, doc), appt, session, "patient")
    # audited like the start's refusal, in a transaction of its own
    assert _denials(container, clinic, doc) == [
        ("blocked", "medium", {"error": "consent_required"})]
    # leaving and ending stop the processing: never refused for want of consent
    telemedicine.participant_left(container.uow(clinic, doc), appt, session, "professional")
    # a new grant (the latest decision wins) lets the patient in again
    _consent(container, clinic, patient, ConsentPurpose.TELEMEDICINE)
    telemedicine.participant_joined(container.uow(clinic, doc), appt, session, "patient")
    telemedicine.end_session(container.uow(clinic, doc), appt, session)
    with tenant_session(container.database, clinic, DOC.id) as s:
        joins = s.execute(text(
            "SELECT count(*) FROM audit_events WHERE action = 'TELEMEDICINE_JOIN' "
            "AND details ->> 'telemedicine_session' = :s"), {"s": str(session)}).scalar()
    assert joins == 2  # the refused join left no join event


def test_events_of_a_session_never_started_are_404(container: Container) -> None:
    clinic, patient, appt = _appointment(container, AppointmentType.TELEMEDICINE)
    _consent(container, clinic, patient, ConsentPurpose.TELEMEDICINE)
    unknown = uuid.uuid4()
    with pytest.raises(NotFound):
        telemedicine.participant_joined(container.uow(clinic, DOC), appt, unknown, "patient")
    with pytest.raises(NotFound):
        telemedicine.participant_left(container.uow(clinic, DOC), appt, unknown, "patient")
    with pytest.raises(NotFound):
        telemedicine.recording_consent(container.uow(clinic, DOC), appt, unknown,
                                       granted=False)
    with pytest.raises(NotFound):
        telemedicine.end_session(container.uow(clinic, DOC), appt, unknown)
    # a session started on another appointment of the clinic is not this one's
    session = telemedicine.start_session(container.uow(clinic, DOC), appt)
    _, _, other = _appointment(container, AppointmentType.TELEMEDICINE, clinic)
    with pytest.raises(NotFound):
        telemedicine.participant_joined(container.uow(clinic, DOC), other, session, "patient")


def test_another_clinics_session_is_404(container: Container) -> None:
    clinic, patient, appt = _appointment(container, AppointmentType.TELEMEDICINE)
    _consent(container, clinic, patient, ConsentPurpose.TELEMEDICINE)
    session = telemedicine.start_session(container.uow(clinic, DOC), appt)
    elsewhere, their_patient, theirs = _appointment(container, AppointmentType.TELEMEDICINE)
    _consent(container, elsewhere, their_patient, ConsentPurpose.TELEMEDICINE)
    # their appointment id with our session, our appointment id from their clinic, and our
    # session on their own appointment: all unknown to them
    with pytest.raises(NotFound):
        telemedicine.participant_joined(container.uow(elsewhere, DOC), appt, session, "patient")
    with pytest.raises(NotFound):
        telemedicine.participant_joined(container.uow(elsewhere, DOC), theirs, session,
                                        "patient")
    with pytest.raises(NotFound):
        telemedicine.end_session(container.uow(elsewhere, DOC), appt, session)
