"""Consent rules and the disclosure log against in-memory fakes: the consent gate, the
compliance findings, expiry, and the legal basis a sharing of health data needs.

The ledger's own rule (per patient and purpose the latest decision wins) is computed by
PostgreSQL (``neonpro_consent_state``) and tested there (tests/integration/
test_consent_state.py); the fake mirrors it so the services above can be tested here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from neonpro.domain.actors import Actor
from neonpro.domain.errors import ConsentRequired, NotFound, ValidationFailed
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import (
    CollectionMethod,
    ConsentPurpose,
    ConsentStatus,
    DataCategory,
    LegalBasis,
    RiskLevel,
)
from neonpro.services import consents, disclosures
from neonpro.services.disclosures import DisclosureCreate
from tests.unit.fakes import FakeUnitOfWork

STAFF = Actor(uuid.uuid4(), "admin")
CLINIC = uuid.uuid4()


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(STAFF, CLINIC)


@pytest.fixture
def patient_id(uow: FakeUnitOfWork) -> uuid.UUID:
    return uow.patients.add(PatientCreate(full_name="Ana")).id


def grant(uow: FakeUnitOfWork, patient_id: uuid.UUID,
          purpose: ConsentPurpose = ConsentPurpose.DATA_SHARING, *,
          expires_at: datetime | None = None,
          categories: tuple[DataCategory, ...] = ()) -> uuid.UUID:
    return consents.grant_consent(uow, ConsentCreate(
        patient_id=patient_id, purpose=purpose, terms_version="v1", terms_hash="a" * 64,
        collection_method=CollectionMethod.ONLINE_FORM, expires_at=expires_at,
        data_categories=list(categories))).id


def gate(uow: FakeUnitOfWork, patient_id: uuid.UUID, purpose: ConsentPurpose) -> None:
    with uow:
        consents.require_consent(uow, patient_id, purpose)


def share(patient_id: uuid.UUID, basis: LegalBasis = LegalBasis.CONSENT,
          **kw: object) -> DisclosureCreate:
    fields: dict[str, object] = {
        "patient_id": patient_id, "recipient_name": "Laboratório Central",
        "data_description": "exam results", "purpose": "second opinion", "legal_basis": basis,
        "data_categories": [DataCategory.CLINICAL]}
    return DisclosureCreate.model_validate({**fields, **kw})


# ------------------------------------------------------------------------ consents
def test_care_needs_no_consent_but_sharing_does(uow: FakeUnitOfWork,
                                                patient_id: uuid.UUID) -> None:
    gate(uow, patient_id, ConsentPurpose.TREATMENT)  # health protection, Art. 11 II f
    for purpose in consents.CONSENT_BASED:
        with pytest.raises(ConsentRequired):
            gate(uow, patient_id, purpose)


def test_the_gate_follows_the_latest_decision(uow: FakeUnitOfWork,
                                              patient_id: uuid.UUID) -> None:
    first = grant(uow, patient_id)
    gate(uow, patient_id, ConsentPurpose.DATA_SHARING)
    second = grant(uow, patient_id)
    consents.revoke_consent(uow, first)  # revoking an older grant withdraws the purpose
    with pytest.raises(ConsentRequired):
        gate(uow, patient_id, ConsentPurpose.DATA_SHARING)
    assert uow.consents.get(second).status == ConsentStatus.GRANTED
    grant(uow, patient_id)
    gate(uow, patient_id, ConsentPurpose.DATA_SHARING)
    with pytest.raises(ConsentRequired):  # a purpose never decided stays pending
        gate(uow, patient_id, ConsentPurpose.MARKETING)


def test_an_empty_history_is_not_an_unknown_patient(uow: FakeUnitOfWork,
                                                    patient_id: uuid.UUID) -> None:
    assert consents.consent_history(uow, patient_id) == []
    with pytest.raises(NotFound):
        consents.consent_history(uow, uuid.uuid4())


def test_compliance_findings_and_their_risk(uow: FakeUnitOfWork) -> None:
    now = datetime.now(UTC)
    marketing, sensitive, expiring, old, withdrawn = (
        uow.patients.add(PatientCreate(full_name=n)).id for n in "ABCDE")
    grant(uow, marketing, ConsentPurpose.MARKETING)
    grant(uow, sensitive, ConsentPurpose.RESEARCH, categories=(DataCategory.CLINICAL,))
    grant(uow, expiring, expires_at=now + timedelta(days=1))
    grant(uow, old, ConsentPurpose.IMAGE_USE, expires_at=now + timedelta(days=4000))
    consents.revoke_consent(uow, grant(uow, withdrawn, ConsentPurpose.MARKETING))
    later = now + timedelta(days=3)
    found = {(f.patient_id, f.kind): f.risk for f in consents.check_compliance(uow, later)}
    assert found == {
        (marketing, "no_expiry"): RiskLevel.MEDIUM,
        (sensitive, "sensitive_categories_without_expiry"): RiskLevel.HIGH,
        (expiring, "expired_but_not_marked"): RiskLevel.HIGH,
    }
    much_later = now + timedelta(days=3 * 365)
    assert (old, "older_than_policy") in {
        (f.patient_id, f.kind) for f in consents.check_compliance(uow, much_later)}


def test_expiry_is_recorded_once_and_then_no_longer_reported(uow: FakeUnitOfWork,
                                                             patient_id: uuid.UUID) -> None:
    now = datetime.now(UTC)
    grant(uow, patient_id, expires_at=now + timedelta(days=1))
    grant(uow, patient_id, ConsentPurpose.RESEARCH, expires_at=now + timedelta(days=9))
    later = now + timedelta(days=2)
    service = FakeUnitOfWork(Actor(uuid.uuid4(), "system"), None, store=uow.store)
    assert consents.expire_consents(service, later) == 1
    assert consents.expire_consents(service, later) == 0
    assert [f.kind for f in consents.check_compliance(uow, later)] == []
    states = {s.purpose: s.state for s in consents.consent_states(uow, patient_id)}
    assert states == {"data_sharing": "expired", "research": "given"}


# --------------------------------------------------------------------- disclosures
def test_sharing_on_consent_needs_a_consent_in_force_and_links_it(
        uow: FakeUnitOfWork, patient_id: uuid.UUID) -> None:
    with pytest.raises(ConsentRequired):
        disclosures.record_disclosure(uow, share(patient_id))
    assert uow.store["disclosures"] == {}
    consent = grant(uow, patient_id)
    logged = disclosures.record_disclosure(uow, share(patient_id))
    assert logged.consent_record_id == consent
    assert logged.disclosed_by == STAFF.id
    consents.revoke_consent(uow, consent)
    with pytest.raises(ConsentRequired):
        disclosures.record_disclosure(uow, share(patient_id))


def test_the_consent_named_must_be_the_current_one_of_that_patient(
        uow: FakeUnitOfWork, patient_id: uuid.UUID) -> None:
    older = grant(uow, patient_id)
    grant(uow, patient_id)
    with pytest.raises(ValidationFailed, match="current"):
        disclosures.record_disclosure(uow, share(patient_id, consent_record_id=older))
    someone_else = uow.patients.add(PatientCreate(full_name="Bia")).id
    theirs = grant(uow, someone_else)
    with pytest.raises(ValidationFailed, match="another patient"):
        disclosures.record_disclosure(uow, share(
            patient_id, LegalBasis.LEGAL_OBLIGATION, consent_record_id=theirs))


@pytest.mark.parametrize(("basis", "categories", "allowed"), [
    (LegalBasis.CONTRACT, [DataCategory.CLINICAL], False),
    (LegalBasis.LEGITIMATE_INTEREST, [DataCategory.IMAGES], False),
    (LegalBasis.CONTRACT, [DataCategory.INSURANCE], True),
    (LegalBasis.LEGAL_OBLIGATION, [DataCategory.CLINICAL], True),
])
def test_health_data_needs_an_art_11_basis(uow: FakeUnitOfWork, patient_id: uuid.UUID,
                                           basis: LegalBasis, categories: list[DataCategory],
                                           allowed: bool) -> None:
    data = share(patient_id, basis, data_categories=categories)
    if allowed:
        assert disclosures.record_disclosure(uow, data).legal_basis == basis
    else:
        with pytest.raises(ValidationFailed, match=r"art\. 11"):
            disclosures.record_disclosure(uow, data)


def test_a_disclosure_in_the_future_is_refused(uow: FakeUnitOfWork,
                                               patient_id: uuid.UUID) -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValidationFailed, match="future"):
        disclosures.record_disclosure(uow, share(
            patient_id, LegalBasis.LEGAL_OBLIGATION, disclosed_at=now + timedelta(hours=1)),
            now=now)


def test_the_accounting_covers_six_years_newest_first(uow: FakeUnitOfWork,
                                                      patient_id: uuid.UUID) -> None:
    now = datetime(2031, 6, 1, 12, tzinfo=UTC)
    for years in (7, 5, 1):
        disclosures.record_disclosure(uow, share(
            patient_id, LegalBasis.LEGAL_OBLIGATION,
            disclosed_at=now.replace(year=now.year - years)), now=now)
    listed = disclosures.list_disclosures(uow, patient_id, now=now).items
    assert [d.disclosed_at.year for d in listed] == [2030, 2026]
    with pytest.raises(ValidationFailed, match="since"):
        disclosures.list_disclosures(uow, patient_id, since=now, until=now)
    with pytest.raises(NotFound):
        disclosures.list_disclosures(uow, uuid.uuid4(), now=now)


def test_coverage_counts_each_patients_latest_decision_per_purpose(
        uow: FakeUnitOfWork, patient_id: uuid.UUID) -> None:
    other = uow.patients.add(PatientCreate(full_name="Bia")).id
    uow.patients.add(PatientCreate(full_name="Caio"))  # decided nothing
    grant(uow, patient_id, ConsentPurpose.MARKETING)
    withdrawn = grant(uow, other, ConsentPurpose.MARKETING)
    consents.revoke_consent(uow, withdrawn)
    grant(uow, other, ConsentPurpose.RESEARCH,
          expires_at=datetime.now(UTC) + timedelta(seconds=1))
    later = datetime.now(UTC) + timedelta(days=1)
    coverage = {c.purpose: c for c in consents.consent_coverage(uow, now=later)}
    assert set(coverage) == {p.value for p in ConsentPurpose}
    marketing = coverage["marketing"]
    assert (marketing.given, marketing.withdrawn, marketing.expired) == (1, 1, 0)
    assert marketing.patients == 3
    assert marketing.undecided == 1
    research = coverage["research"]
    assert (research.given, research.expired, research.undecided) == (0, 1, 2)
