"""Consent ledger rules: require, revoke at once, expire, summary in step, compliance check."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import ConsentRequired
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import CollectionMethod, ConsentPurpose, LegalBasis
from neonpro.services import clinics, consents, patients
from tests.sessions import tenant_session

ME = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000d1"), "receptionist")
TERMS = hashlib.sha256(b"termos").hexdigest()


@pytest.fixture
def setup(container: Container) -> tuple[uuid.UUID, uuid.UUID]:
    clinic = clinics.create_clinic(container.service_uow(ME), ClinicCreate(name="Consent")).id
    patient = patients.register_patient(container.uow(clinic, ME),
                                        PatientCreate(full_name="Dona Consentida")).id
    return clinic, patient


def _grant(container: Container, clinic: uuid.UUID, patient: uuid.UUID,
           purpose: ConsentPurpose, **kw: object):  # type: ignore[no-untyped-def]
    data = ConsentCreate(patient_id=patient, purpose=purpose, terms_version="v1",
                         terms_hash=TERMS, collection_method=CollectionMethod.DIGITAL_SIGNATURE,
                         **kw)  # type: ignore[arg-type]
    return consents.grant_consent(container.uow(clinic, ME), data)


def _summary(container: Container, clinic: uuid.UUID, patient: uuid.UUID) -> tuple[str, str | None]:
    with container.uow(clinic, ME) as tx:
        p = tx.patients.get(patient)
    return p.data_consent_status, p.data_consent_version


def _require(container: Container, clinic: uuid.UUID, patient: uuid.UUID,
             purpose: ConsentPurpose) -> None:
    with container.uow(clinic, ME) as tx:
        consents.require_consent(tx, patient, purpose)


def test_care_needs_no_consent_marketing_does(container: Container,
                                              setup: tuple[uuid.UUID, uuid.UUID]) -> None:
    clinic, patient = setup
    _require(container, clinic, patient, ConsentPurpose.TREATMENT)
    with pytest.raises(ConsentRequired, match="marketing"):
        _require(container, clinic, patient, ConsentPurpose.MARKETING)


def test_revocation_takes_effect_for_the_very_next_operation(
    container: Container, setup: tuple[uuid.UUID, uuid.UUID]
) -> None:
    clinic, patient = setup
    grant = _grant(container, clinic, patient, ConsentPurpose.MARKETING)
    _require(container, clinic, patient, ConsentPurpose.MARKETING)
    assert _summary(container, clinic, patient) == ("given", "v1")
    consents.revoke_consent(container.uow(clinic, ME), grant.id)
    with pytest.raises(ConsentRequired):
        _require(container, clinic, patient, ConsentPurpose.MARKETING)
    assert _summary(container, clinic, patient) == ("withdrawn", None)
    _grant(container, clinic, patient, ConsentPurpose.MARKETING)  # a renewal is a new grant
    _require(container, clinic, patient, ConsentPurpose.MARKETING)
    assert _summary(container, clinic, patient) == ("given", "v1")
    history = consents.consent_history(container.uow(clinic, ME), patient)
    assert [c.status for c in history] == ["granted", "revoked", "granted"]


def test_expired_consent_is_refused_and_the_job_records_it(
    container: Container, setup: tuple[uuid.UUID, uuid.UUID]
) -> None:
    clinic, patient = setup
    soon = datetime.now(UTC) + timedelta(seconds=1)
    _grant(container, clinic, patient, ConsentPurpose.RESEARCH, expires_at=soon)
    _require(container, clinic, patient, ConsentPurpose.RESEARCH)
    later = soon + timedelta(days=1)
    with container.uow(clinic, ME) as tx:
        state = tx.consents.state(patient, ConsentPurpose.RESEARCH, at=later)
    assert state is not None
    assert state.state == "expired"
    assert not state.in_force
    assert consents.expire_consents(container.service_uow(ME), later) >= 1
    with pytest.raises(ConsentRequired):
        _require(container, clinic, patient, ConsentPurpose.RESEARCH)
    assert _summary(container, clinic, patient)[0] == "expired"
    assert consents.expire_consents(container.service_uow(ME), later) == 0  # idempotent


def test_summary_follows_raw_sql_ledger_rows_too(
    container: Container, setup: tuple[uuid.UUID, uuid.UUID]
) -> None:
    from sqlalchemy import text  # noqa: PLC0415

    clinic, patient = setup
    with tenant_session(container.database, clinic, ME.id, "system") as s:
        s.execute(text(
            "INSERT INTO consent_records (clinic_id, patient_id, purpose, legal_basis, status, "
            "given_at, terms_version, terms_hash) VALUES (:c, :p, 'image_use', 'consent', "
            "'granted', now(), 'img-2', :h)"), {"c": clinic, "p": patient, "h": TERMS})
    assert _summary(container, clinic, patient) == ("given", "img-2")


def test_compliance_check_findings(container: Container,
                                   setup: tuple[uuid.UUID, uuid.UUID]) -> None:
    clinic, patient = setup
    _grant(container, clinic, patient, ConsentPurpose.MARKETING)
    _grant(container, clinic, patient, ConsentPurpose.IMAGE_USE, data_categories=["images"])
    _grant(container, clinic, patient, ConsentPurpose.TREATMENT,
           legal_basis=LegalBasis.HEALTH_PROTECTION)
    _grant(container, clinic, patient, ConsentPurpose.RESEARCH,
           expires_at=datetime.now(UTC) + timedelta(days=30))
    in_3_years = datetime.now(UTC) + timedelta(days=3 * 365)
    findings = consents.check_compliance(container.uow(clinic, ME), now=in_3_years)
    kinds = {(f.purpose, f.kind, f.risk.value) for f in findings if f.patient_id == patient}
    assert ("marketing", "no_expiry", "medium") in kinds
    assert ("image_use", "sensitive_categories_without_expiry", "high") in kinds
    assert ("research", "expired_but_not_marked", "high") in kinds
    assert ("marketing", "older_than_policy", "medium") in kinds
    assert not any(k[0] == "treatment" and k[1] == "no_expiry" for k in kinds)
