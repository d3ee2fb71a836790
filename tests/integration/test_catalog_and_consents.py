"""Professionals, service types and the consent ledger on a real PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid
from datetime import time

import pytest
from sqlalchemy import text

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import Conflict, NotFound, ValidationFailed
from neonpro.domain.paging import PageRequest
from neonpro.domain.schemas.clinic import ClinicCreate, StaffUserCreate
from neonpro.domain.schemas.consent import ConsentCreate, ConsentRevoke
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate, ProfessionalUpdate
from neonpro.domain.schemas.service_type import ServiceTypeCreate, ServiceTypeUpdate
from neonpro.domain.vocabulary import ClinicRole, CollectionMethod, ConsentPurpose
from neonpro.services import catalog, clinics, consents, patients

STAFF = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000c1"), "admin")
TERMS = hashlib.sha256(b"Autorizo o uso dos meus dados para marketing.").hexdigest()


@pytest.fixture
def clinic(container: Container) -> uuid.UUID:
    return clinics.create_clinic(container.service_uow(STAFF),
                                 ClinicCreate(name="Estética Bela", cnpj=None)).id


def test_clinic_and_staff(container: Container, clinic: uuid.UUID) -> None:
    user, member = clinics.add_staff_member(
        container.service_uow(STAFF), clinic,
        StaffUserCreate(email=f"a{uuid.uuid4().hex[:6]}@clinica.com.br", display_name="Ana",
                        password_hash="$argon2id$placeholder"),
        ClinicRole.DPO)
    assert member.role == ClinicRole.DPO
    got = clinics.get_clinic(container.uow(clinic, STAFF))
    assert got.timezone == "America/Sao_Paulo"
    with container.uow(clinic, STAFF) as tx:
        assert [m.user_id for m in tx.clinics.members()] == [user.id]


def test_cnpj_is_validated(container: Container) -> None:
    with pytest.raises(ValueError, match="check digits"):
        ClinicCreate(name="X", cnpj="11.222.333/0001-00")
    created = clinics.create_clinic(container.service_uow(STAFF),
                                    ClinicCreate(name="Y", cnpj="11.222.333/0001-81"))
    assert created.cnpj == "11222333000181"
    with pytest.raises(Conflict) as err:
        clinics.create_clinic(container.service_uow(STAFF),
                              ClinicCreate(name="Z", cnpj="11222333000181"))
    assert err.value.field == "cnpj"


def test_professional_and_service_type_crud(container: Container, clinic: uuid.UUID) -> None:
    prof = catalog.add_professional(container.uow(clinic, STAFF), ProfessionalCreate(
        full_name="Dr. Bruno", council_type="CRM", council_license="123456",
        council_state="pe", work_start_time=time(9), work_end_time=time(17),
        phone="(81) 3333-4444"))
    assert prof.council_state == "PE"
    assert prof.max_daily_appointments == 20
    assert prof.appointment_buffer_minutes == 15
    updated = catalog.update_professional(container.uow(clinic, STAFF), prof.id,
                                          ProfessionalUpdate(is_active=False))
    assert updated.is_active is False
    assert catalog.list_professionals(container.uow(clinic, STAFF)).items == []
    listed = catalog.list_professionals(container.uow(clinic, STAFF), active=None)
    assert [p.id for p in listed.items] == [prof.id]

    svc = catalog.add_service_type(container.uow(clinic, STAFF), ServiceTypeCreate(
        name="Limpeza de pele", duration_minutes=60, price="180.00", tuss_code="12345678"))
    assert str(svc.price) == "180.00"
    changed = catalog.update_service_type(container.uow(clinic, STAFF), svc.id,
                                          ServiceTypeUpdate(price="200.50"))
    assert str(changed.price) == "200.50"
    page = catalog.list_service_types(container.uow(clinic, STAFF), PageRequest(limit=10))
    assert page.total == 1


def test_invalid_professional_fields_are_rejected_without_echo() -> None:
    with pytest.raises(ValueError, match="validation errors") as err:
        ProfessionalCreate(full_name="X", phone="(01) 1234-5678", council_state="XX")
    message = str(err.value)
    assert "1234" not in message
    assert "phone" in message
    assert "council_state" in message


def test_consent_grant_revoke_and_history(container: Container, clinic: uuid.UUID) -> None:
    patient = patients.register_patient(container.uow(clinic, STAFF),
                                        PatientCreate(full_name="Carla"))
    grant = consents.grant_consent(container.uow(clinic, STAFF), ConsentCreate(
        patient_id=patient.id, purpose=ConsentPurpose.MARKETING, terms_version="mkt-2026-01",
        terms_hash=TERMS, collection_method=CollectionMethod.ONLINE_FORM,
        evidence={"channel": "web", "ip": "203.0.113.7"}, data_categories=["contact"]))
    assert grant.status == "granted"
    assert grant.given_at is not None
    revoked = consents.revoke_consent(container.uow(clinic, STAFF), grant.id,
                                      ConsentRevoke(evidence={"channel": "phone"}))
    assert revoked.status == "revoked"
    assert revoked.supersedes_id == grant.id
    history = consents.consent_history(container.uow(clinic, STAFF), patient.id)
    assert [c.status for c in history] == ["granted", "revoked"]
    with container.uow(clinic, STAFF) as tx:
        current = tx.consents.current(patient.id, ConsentPurpose.MARKETING)
    assert current is not None
    assert current.id == revoked.id
    with pytest.raises(Conflict):
        consents.revoke_consent(container.uow(clinic, STAFF), revoked.id)
    with pytest.raises(Conflict):  # the grant is already superseded: a second revocation loses
        consents.revoke_consent(container.uow(clinic, STAFF), grant.id)


def test_consent_for_an_unknown_patient_is_not_found(
    container: Container, clinic: uuid.UUID
) -> None:
    with pytest.raises(NotFound):
        consents.grant_consent(container.uow(clinic, STAFF), ConsentCreate(
            patient_id=uuid.uuid4(), purpose=ConsentPurpose.RESEARCH, terms_version="r1",
            terms_hash=TERMS, collection_method=CollectionMethod.WRITTEN))


def test_database_check_constraints_become_validation_errors(
    container: Container, clinic: uuid.UUID
) -> None:
    bad = text("INSERT INTO service_types (clinic_id, name, duration_minutes) "
               "VALUES (:c, 'x', -5)")
    with container.uow(clinic, STAFF) as tx, pytest.raises(ValidationFailed) as err:
        tx.service_types._execute(bad, {"c": clinic})  # bypasses the schema
    assert "duration_minutes" in err.value.field
