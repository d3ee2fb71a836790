"""Data-subject requests (LGPD Art. 18, 19) against in-memory fakes: the 15-day deadline,
what is overdue, the status graph, what fulfilling needs, the export made for a request,
and the immediate confirmation's legal bases."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from neonpro.domain.actors import Actor
from neonpro.domain.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.dsr import DataSubjectRequestRead
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import CollectionMethod, ConsentPurpose, LegalBasis
from neonpro.domain.vocabulary import DataSubjectRequestKind as Kind
from neonpro.domain.vocabulary import DataSubjectRequestStatus as S
from neonpro.services import consents, disclosures
from neonpro.services import lgpd_requests as svc
from neonpro.services.disclosures import DisclosureCreate
from neonpro.services.lgpd_requests import RequestFulfil, RequestOpen, RequestRefuse
from tests.unit.fakes import FakeUnitOfWork

DPO = Actor(uuid.uuid4(), "admin")
CLINIC = uuid.uuid4()
NOW = datetime(2031, 5, 2, 15, 0, tzinfo=UTC)
ANSWER = "here is everything we hold"


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(DPO, CLINIC)


@pytest.fixture
def patient_id(uow: FakeUnitOfWork) -> uuid.UUID:
    return uow.patients.add(PatientCreate(full_name="Ana")).id


def open_one(uow: FakeUnitOfWork, patient_id: uuid.UUID, *, days_ago: float = 0,
             kind: Kind = Kind.ACCESS) -> DataSubjectRequestRead:
    return svc.open_request(uow, RequestOpen(patient_id=patient_id, kind=kind,
                                             received_at=NOW - timedelta(days=days_ago)),
                            now=NOW)


def test_the_answer_is_due_fifteen_days_after_receipt(uow: FakeUnitOfWork,
                                                     patient_id: uuid.UUID) -> None:
    request = open_one(uow, patient_id, days_ago=3)
    assert request.status == S.OPEN
    assert request.due_at == NOW - timedelta(days=3) + timedelta(days=15)
    default = svc.open_request(uow, RequestOpen(patient_id=patient_id, kind=Kind.DELETION),
                               now=NOW)
    assert default.received_at == NOW
    assert default.due_at == NOW + timedelta(days=15)


def test_a_request_received_in_the_future_is_refused(uow: FakeUnitOfWork,
                                                     patient_id: uuid.UUID) -> None:
    svc.open_request(uow, RequestOpen(patient_id=patient_id, kind=Kind.ACCESS,
                                      received_at=NOW + timedelta(minutes=4)), now=NOW)  # skew
    with pytest.raises(ValidationFailed, match="received_at"):
        svc.open_request(uow, RequestOpen(patient_id=patient_id, kind=Kind.ACCESS,
                                          received_at=NOW + timedelta(minutes=6)), now=NOW)


def test_only_this_clinics_patients_can_file_a_request(uow: FakeUnitOfWork,
                                                       patient_id: uuid.UUID) -> None:
    other = FakeUnitOfWork(DPO, uuid.uuid4(), store=uow.store)
    with pytest.raises(NotFound):
        open_one(other, patient_id)
    assert uow.store["data_subject_requests"] == {}


def test_overdue_is_pending_and_past_due(uow: FakeUnitOfWork, patient_id: uuid.UUID) -> None:
    late_open = open_one(uow, patient_id, days_ago=16)
    late_started = open_one(uow, patient_id, days_ago=20)
    svc.start_request(uow, late_started.id)
    late_refused = open_one(uow, patient_id, days_ago=30)
    svc.refuse_request(uow, late_refused.id, RequestRefuse(reason="not the patient"))
    on_time = open_one(uow, patient_id, days_ago=14)
    overdue = svc.list_requests(uow, overdue=True, now=NOW)
    assert [r.id for r in overdue] == [late_started.id, late_open.id]  # by due date
    assert {r.id for r in svc.list_requests(uow, now=NOW)} == {
        late_open.id, late_started.id, late_refused.id, on_time.id}
    # a day later the 14-day-old one is 15 days old: due exactly now, not yet overdue
    assert on_time.id not in {r.id for r in svc.list_requests(
        uow, overdue=True, now=on_time.due_at)}
    assert on_time.id in {r.id for r in svc.list_requests(
        uow, overdue=True, now=on_time.due_at + timedelta(seconds=1))}


def test_the_operators_view_lists_every_clinics_overdue_requests(
        uow: FakeUnitOfWork, patient_id: uuid.UUID) -> None:
    mine = open_one(uow, patient_id, days_ago=16)
    other = FakeUnitOfWork(DPO, uuid.uuid4(), store=uow.store)
    theirs = open_one(other, other.patients.add(PatientCreate(full_name="Bia")).id, days_ago=17)
    assert [r.id for r in svc.list_requests(uow, overdue=True, now=NOW)] == [mine.id]
    operator = FakeUnitOfWork(Actor(uuid.uuid4(), "system"), None, store=uow.store)
    assert [r.id for r in svc.list_requests(operator, overdue=True, now=NOW)] == [
        theirs.id, mine.id]


def test_fulfilling_needs_the_identity_verified_first(uow: FakeUnitOfWork,
                                                      patient_id: uuid.UUID) -> None:
    request = open_one(uow, patient_id)
    with pytest.raises(Conflict, match="identity"):
        svc.fulfil_request(uow, request.id, RequestFulfil(response=ANSWER))
    assert uow.subject_requests.get(request.id).status == S.OPEN
    verified = svc.verify_identity(uow, request.id)
    assert verified.identity_verified_by == DPO.id
    assert verified.status == S.OPEN  # verifying does not move the request
    with pytest.raises(Conflict, match="already verified"):
        svc.verify_identity(uow, request.id)
    done = svc.fulfil_request(uow, request.id, RequestFulfil(response=ANSWER))
    assert done.status == S.FULFILLED
    assert done.response_sha256 == hashlib.sha256(ANSWER.encode()).hexdigest()
    assert done.fulfilled_at is not None


def test_fulfilling_needs_the_answer_or_its_hash_and_they_must_agree(
        uow: FakeUnitOfWork, patient_id: uuid.UUID) -> None:
    request = open_one(uow, patient_id)
    svc.verify_identity(uow, request.id)
    with pytest.raises(ValidationFailed, match="response_sha256"):
        svc.fulfil_request(uow, request.id)
    with pytest.raises(ValidationFailed, match="does not match"):
        svc.fulfil_request(uow, request.id, RequestFulfil(response=ANSWER,
                                                          response_sha256="0" * 64))
    digest = hashlib.sha256(b"sent by post").hexdigest()
    done = svc.fulfil_request(uow, request.id, RequestFulfil(response_sha256=digest))
    assert done.response_sha256 == digest


def test_an_export_already_hashed_on_the_request_fulfils_it(uow: FakeUnitOfWork,
                                                           patient_id: uuid.UUID) -> None:
    request = open_one(uow, patient_id)
    svc.verify_identity(uow, request.id)
    digest = "a" * 64
    with uow:  # what export_patient stores on the request it answers
        uow.subject_requests.change(request.id, S.OPEN, {
            "status": S.IN_PROGRESS.value, "response_sha256": digest})
        uow.commit()
    assert svc.fulfil_request(uow, request.id).response_sha256 == digest


@pytest.mark.parametrize(("first", "then", "allowed"), [
    ("start", "start", False),
    ("start", "fulfil", True),
    ("start", "refuse", True),
    ("fulfil", "refuse", False),
    ("refuse", "fulfil", False),
    ("refuse", "start", False),
    ("fulfil", "verify", False),
])
def test_status_graph(uow: FakeUnitOfWork, patient_id: uuid.UUID, first: str, then: str,
                      allowed: bool) -> None:
    request = open_one(uow, patient_id)
    if first != "verify":
        svc.verify_identity(uow, request.id)
    steps = {
        "start": lambda: svc.start_request(uow, request.id),
        "fulfil": lambda: svc.fulfil_request(uow, request.id, RequestFulfil(response=ANSWER)),
        "refuse": lambda: svc.refuse_request(uow, request.id, RequestRefuse(reason="no")),
        "verify": lambda: svc.verify_identity(uow, request.id),
    }
    steps[first]()
    status = uow.subject_requests.get(request.id).status
    if allowed:
        steps[then]()
        assert uow.subject_requests.get(request.id).status != status
    else:
        with pytest.raises(InvalidTransition):
            steps[then]()
        assert uow.subject_requests.get(request.id).status == status


def test_a_refusal_needs_a_reason(uow: FakeUnitOfWork, patient_id: uuid.UUID) -> None:
    # the schema strips blanks; the service holds the rule for callers that build it unchecked
    request = open_one(uow, patient_id)
    with pytest.raises(ValidationFailed, match="reason"):
        svc.refuse_request(uow, request.id, RequestRefuse.model_construct(reason="   "))
    refused = svc.refuse_request(uow, request.id,
                                 RequestRefuse.model_construct(reason="  not the patient "))
    assert (refused.status, refused.refusal_reason) == (S.REFUSED, "not the patient")


def test_another_clinics_request_is_not_found(uow: FakeUnitOfWork,
                                              patient_id: uuid.UUID) -> None:
    request = open_one(uow, patient_id)
    other = FakeUnitOfWork(DPO, uuid.uuid4(), store=uow.store)
    with pytest.raises(NotFound):
        svc.get_request(other, request.id)
    with pytest.raises(NotFound):
        svc.start_request(other, request.id)
    assert uow.subject_requests.get(request.id).status == S.OPEN


# ----------------------------------------------------------- export and confirmation
def grant(uow: FakeUnitOfWork, patient_id: uuid.UUID, purpose: ConsentPurpose) -> uuid.UUID:
    return consents.grant_consent(uow, ConsentCreate(
        patient_id=patient_id, purpose=purpose, terms_version="v1", terms_hash="b" * 64,
        collection_method=CollectionMethod.WRITTEN)).id


def test_an_export_made_for_a_request_is_its_answer(uow: FakeUnitOfWork,
                                                   patient_id: uuid.UUID) -> None:
    request = open_one(uow, patient_id, kind=Kind.PORTABILITY)
    result = svc.export_patient(uow, patient_id, request_id=request.id, now=NOW)
    assert result.sha256 == hashlib.sha256(result.content).hexdigest()
    assert json.loads(result.content)["request_id"] == str(request.id)
    stored = uow.subject_requests.get(request.id)
    assert (stored.status, stored.response_sha256) == (S.IN_PROGRESS, result.sha256)
    exported = [e for e in uow.audit.events if e["action"] == "EXPORT"]
    assert exported[0]["details"]["sha256"] == result.sha256
    svc.verify_identity(uow, request.id)
    assert svc.fulfil_request(uow, request.id).response_sha256 == result.sha256


def test_an_export_answers_only_a_pending_access_portability_or_sharing_request(
        uow: FakeUnitOfWork, patient_id: uuid.UUID) -> None:
    deletion = open_one(uow, patient_id, kind=Kind.DELETION)
    with pytest.raises(ValidationFailed, match="not answered by an export"):
        svc.export_patient(uow, patient_id, request_id=deletion.id, now=NOW)
    someone_else = uow.patients.add(PatientCreate(full_name="Bia")).id
    theirs = open_one(uow, someone_else)
    with pytest.raises(ValidationFailed, match="another patient"):
        svc.export_patient(uow, patient_id, request_id=theirs.id, now=NOW)
    refused = open_one(uow, patient_id, kind=Kind.SHARING_INFORMATION)
    svc.refuse_request(uow, refused.id, RequestRefuse(reason="duplicate"))
    with pytest.raises(InvalidTransition):
        svc.export_patient(uow, patient_id, request_id=refused.id, now=NOW)
    assert all(r.response_sha256 is None for r in uow.store["data_subject_requests"].values())
    assert not [e for e in uow.audit.events if e["action"] == "EXPORT"]


def test_confirmation_names_each_purpose_and_its_legal_basis(uow: FakeUnitOfWork,
                                                            patient_id: uuid.UUID) -> None:
    grant(uow, patient_id, ConsentPurpose.MARKETING)
    consents.revoke_consent(uow, grant(uow, patient_id, ConsentPurpose.RESEARCH))
    answer = svc.confirm_processing(uow, patient_id, now=NOW)
    bases = {(b.purpose, b.legal_basis, b.source) for b in answer.legal_bases}
    assert bases == {("treatment", "health_protection", "care"),
                     ("marketing", "consent", "consent_ledger")}
    assert [(w.purpose, w.status) for w in answer.withdrawn] == [("research", "revoked")]
    assert answer.processes_data
    assert not answer.shared_with_third_parties


def test_health_data_held_adds_the_record_keeping_obligation(uow: FakeUnitOfWork,
                                                            patient_id: uuid.UUID) -> None:
    uow.records.categories[patient_id] = ["identification", "clinical"]
    disclosures.record_disclosure(uow, DisclosureCreate(
        patient_id=patient_id, recipient_name="Lab", data_description="exams",
        purpose="analysis", legal_basis=LegalBasis.HEALTH_PROTECTION))
    answer = svc.confirm_processing(uow, patient_id, now=NOW)
    assert ("medical_record_keeping", "legal_obligation", "law") in {
        (b.purpose, b.legal_basis, b.source) for b in answer.legal_bases}
    assert answer.categories == ["identification", "clinical"]
    assert answer.shared_with_third_parties
