"""Data-subject requests on a real PostgreSQL: due dates, the status graph, identity
verification, answer hashes, overdue lists, isolation, audit, and the confirmation."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from neonpro.domain.schemas.appointment import AppointmentCreate
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.domain.vocabulary import (
    CollectionMethod,
    ConsentPurpose,
    DataSubjectRequestKind,
    DataSubjectRequestStatus,
)
from neonpro.services import clinics, consents, erasure, patients
from neonpro.services import lgpd_requests as lgpd
from neonpro.services.lgpd_requests import RequestFulfil, RequestOpen, RequestRefuse
from tests.valid import cpf

DPO = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000e1"), "dpo")
DESK = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000e2"), "receptionist")
OPERATOR = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000e3"), "system")
TERMS = hashlib.sha256(b"termos LGPD").hexdigest()
Kind = DataSubjectRequestKind
Status = DataSubjectRequestStatus


class World:
    def __init__(self, container: Container) -> None:
        self.c = container
        self.clinic = clinics.create_clinic(container.service_uow(OPERATOR),
                                            ClinicCreate(name="Clínica LGPD")).id
        self.other = clinics.create_clinic(container.service_uow(OPERATOR),
                                           ClinicCreate(name="Outra LGPD")).id
        self.patient = patients.register_patient(self.uow(DESK), PatientCreate(
            full_name="Titular dos Dados", cpf=cpf(7101), email="titular@example.com.br",
            city="Recife", state="PE")).id
        self.stranger = patients.register_patient(
            container.uow(self.other, DESK), PatientCreate(full_name="Paciente Alheio")).id

    def uow(self, actor: Actor = DPO, clinic: uuid.UUID | None = None):  # type: ignore[no-untyped-def]
        return self.c.uow(clinic or self.clinic, actor)

    def open(self, kind: Kind = Kind.ACCESS, **kw: Any) -> lgpd.DataSubjectRequestRead:
        data = RequestOpen(patient_id=self.patient, kind=kind, **kw)
        return lgpd.open_request(self.uow(DESK), data)


@pytest.fixture
def w(container: Container) -> World:
    return World(container)


def _events(container: Container, clinic: uuid.UUID, resource_id: uuid.UUID) -> list[Any]:
    with container.uow(clinic, DPO) as tx:
        return list(tx.connection.execute(text(
            "SELECT action, details, actor_role FROM audit_events WHERE clinic_id = :c "
            "AND resource_type = 'data_subject_requests' AND resource_id = :r "
            "ORDER BY occurred_at, id"), {"c": clinic, "r": str(resource_id)}).all())


def test_open_sets_due_date_fifteen_days_after_receipt(w: World) -> None:
    before = datetime.now(UTC)
    now = w.open(Kind.PORTABILITY)
    assert now.status == "open"
    assert now.kind == "portability"
    assert before - timedelta(seconds=5) <= now.received_at <= datetime.now(UTC)
    assert now.due_at - now.received_at == timedelta(days=15)
    received = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
    earlier = w.open(Kind.DELETION, received_at=received)
    assert earlier.received_at == received
    assert earlier.due_at == datetime(2026, 1, 25, 9, 30, tzinfo=UTC)
    assert earlier.identity_verified_at is None
    assert earlier.response_sha256 is None
    # the row trigger audits the creation with the acting role
    events = _events(w.c, w.clinic, now.id)
    assert [(e[0], e[2]) for e in events] == [("CREATE", "receptionist")]


def test_every_article_18_kind_can_be_opened(w: World) -> None:
    kinds = {w.open(kind).kind for kind in Kind}
    assert kinds == {k.value for k in Kind}


def test_open_refuses_future_receipt_and_unknown_patients(w: World) -> None:
    with pytest.raises(ValidationFailed, match="received_at"):
        w.open(received_at=datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(NotFound):
        lgpd.open_request(w.uow(), RequestOpen(patient_id=uuid.uuid4(), kind=Kind.ACCESS))
    with pytest.raises(NotFound):  # another clinic's patient
        lgpd.open_request(w.uow(), RequestOpen(patient_id=w.stranger, kind=Kind.ACCESS))


def test_full_path_open_verify_progress_fulfil(w: World) -> None:
    request = w.open(Kind.CORRECTION)
    verified = lgpd.verify_identity(w.uow(), request.id)
    assert verified.identity_verified_by == DPO.id
    assert verified.identity_verified_at is not None
    assert verified.status == "open"
    with pytest.raises(Conflict, match="already verified"):
        lgpd.verify_identity(w.uow(), request.id)
    started = lgpd.start_request(w.uow(), request.id)
    assert started.status == "in_progress"
    with pytest.raises(InvalidTransition):
        lgpd.start_request(w.uow(), request.id)
    answer = "Seus dados foram corrigidos em 2026-11-27."
    done = lgpd.fulfil_request(w.uow(), request.id, RequestFulfil(response=answer))
    assert done.status == "fulfilled"
    assert done.fulfilled_at is not None
    assert done.response_sha256 == hashlib.sha256(answer.encode()).hexdigest()
    for step in (lgpd.start_request, lgpd.verify_identity):
        with pytest.raises(InvalidTransition):
            step(w.uow(), request.id)
    with pytest.raises(InvalidTransition):
        lgpd.refuse_request(w.uow(), request.id, RequestRefuse(reason="tarde demais"))
    with pytest.raises(InvalidTransition):
        lgpd.fulfil_request(w.uow(), request.id, RequestFulfil(response="de novo"))
    # every change is audited by the trigger, naming the changed fields only
    events = _events(w.c, w.clinic, request.id)
    assert [e[0] for e in events] == ["CREATE", "UPDATE", "UPDATE", "UPDATE"]
    assert "identity_verified_by" in events[1][1]["fields"]
    assert "status" in events[2][1]["fields"]
    assert answer not in str(events)


def test_open_can_be_fulfilled_or_refused_directly(w: World) -> None:
    direct = w.open(Kind.CONFIRMATION)
    lgpd.verify_identity(w.uow(), direct.id)
    digest = hashlib.sha256(b"resposta").hexdigest()
    done = lgpd.fulfil_request(w.uow(), direct.id, RequestFulfil(response_sha256=digest))
    assert (done.status, done.response_sha256) == ("fulfilled", digest)

    refused = lgpd.refuse_request(w.uow(), w.open(Kind.DELETION).id,
                                  RequestRefuse(reason="  prontuário sob guarda legal  "))
    assert refused.status == "refused"
    assert refused.refusal_reason == "prontuário sob guarda legal"
    with pytest.raises(InvalidTransition):
        lgpd.start_request(w.uow(), refused.id)

    started = lgpd.start_request(w.uow(), w.open().id)
    assert lgpd.refuse_request(w.uow(), started.id,
                               RequestRefuse(reason="identidade não confirmada")).status == "refused"


def test_fulfil_needs_verified_identity_and_an_answer(w: World) -> None:
    request = w.open()
    with pytest.raises(Conflict, match="identity"):
        lgpd.fulfil_request(w.uow(), request.id, RequestFulfil(response="x"))
    lgpd.verify_identity(w.uow(), request.id)
    with pytest.raises(ValidationFailed, match="response_sha256"):
        lgpd.fulfil_request(w.uow(), request.id)
    with pytest.raises(ValidationFailed, match="does not match"):
        lgpd.fulfil_request(w.uow(), request.id, RequestFulfil(
            response="a", response_sha256=hashlib.sha256(b"b").hexdigest()))
    with pytest.raises(ValueError, match="response_sha256"):
        RequestFulfil(response_sha256="NOT-A-HASH")
    with pytest.raises(ValueError, match="reason"):
        RequestRefuse(reason="")
    with pytest.raises(ValueError, match="reason"):
        RequestRefuse(reason="   ")  # stripped, then too short
    assert lgpd.get_request(w.uow(), request.id).status == "open"  # nothing changed


def test_overdue_lists_only_pending_requests_past_due(w: World) -> None:
    old = datetime.now(UTC) - timedelta(days=20)
    late_open = w.open(received_at=old)
    late_started = lgpd.start_request(w.uow(), w.open(received_at=old).id)
    late_done = w.open(received_at=old)
    lgpd.verify_identity(w.uow(), late_done.id)
    lgpd.fulfil_request(w.uow(), late_done.id, RequestFulfil(response="ok"))
    late_refused = lgpd.refuse_request(w.uow(), w.open(received_at=old).id,
                                       RequestRefuse(reason="duplicado"))
    fresh = w.open()
    overdue = {r.id for r in lgpd.list_requests(w.uow(), overdue=True)}
    assert overdue == {late_open.id, late_started.id}
    everything = {r.id for r in lgpd.list_requests(w.uow())}
    assert {late_open.id, late_started.id, late_done.id, late_refused.id, fresh.id} <= everything
    by_status = lgpd.list_requests(w.uow(), status=Status.REFUSED)
    assert [r.id for r in by_status] == [late_refused.id]
    mine = lgpd.list_requests(w.uow(), patient_id=w.patient)
    assert {r.patient_id for r in mine} == {w.patient}
    # in 30 days the fresh one is overdue too
    later = lgpd.list_requests(w.uow(), overdue=True, now=datetime.now(UTC) + timedelta(days=30))
    assert fresh.id in {r.id for r in later}
    # listing is itself audited
    with w.uow() as tx:
        views = tx.connection.execute(text(
            "SELECT details FROM audit_events WHERE clinic_id = :c AND action = 'VIEW' "
            "AND resource_type = 'data_subject_requests' AND details ->> 'overdue' = 'true'"),
            {"c": w.clinic}).all()
    assert any(v[0]["returned"] == 2 for v in views)


def test_clinics_see_only_their_requests_and_the_operator_sees_all(w: World) -> None:
    mine = w.open(received_at=datetime.now(UTC) - timedelta(days=16))
    theirs = lgpd.open_request(w.uow(DESK, w.other), RequestOpen(
        patient_id=w.stranger, kind=Kind.ACCESS,
        received_at=datetime.now(UTC) - timedelta(days=16)))
    with pytest.raises(NotFound):
        lgpd.get_request(w.uow(DESK, w.other), mine.id)
    with pytest.raises(NotFound):
        lgpd.start_request(w.uow(DESK, w.other), mine.id)
    assert mine.id not in {r.id for r in lgpd.list_requests(w.uow(clinic=w.other))}
    everywhere = lgpd.list_requests(w.c.service_uow(OPERATOR), overdue=True)
    ids = {r.id for r in everywhere}
    assert {mine.id, theirs.id} <= ids
    assert {r.clinic_id for r in everywhere} >= {w.clinic, w.other}


def test_confirmation_answers_at_once_from_ledger_and_data(w: World) -> None:
    with w.uow() as tx:
        prof = tx.professionals.add(ProfessionalCreate(full_name="Dra. Confirma")).id
        start = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
        tx.appointments.add(AppointmentCreate(
            patient_id=w.patient, professional_id=prof, start_time=start,
            end_time=start + timedelta(minutes=30), clinical_notes="avaliação",
            estimated_cost="150.00"), time_zone="America/Sao_Paulo")
        tx.commit()

    def grant(purpose: ConsentPurpose) -> uuid.UUID:
        return consents.grant_consent(w.uow(DESK), ConsentCreate(
            patient_id=w.patient, purpose=purpose, terms_version="v1", terms_hash=TERMS,
            collection_method=CollectionMethod.DIGITAL_SIGNATURE,
            expires_at=datetime.now(UTC) + timedelta(days=365),
            data_categories=["contact"])).id

    grant(ConsentPurpose.MARKETING)
    consents.revoke_consent(w.uow(DESK), grant(ConsentPurpose.RESEARCH))

    answer = lgpd.confirm_processing(w.uow(DESK), w.patient)
    assert answer.processes_data is True
    assert answer.patient_id == w.patient
    assert answer.since is not None
    assert answer.since <= datetime.now(UTC)
    assert {"identification", "contact", "address", "clinical", "consent", "financial",
            "audit"} <= set(answer.categories)
    assert "insurance" not in answer.categories
    bases = {(b.legal_basis.value, b.purpose, b.source) for b in answer.legal_bases}
    assert ("health_protection", "treatment", "care") in bases
    assert ("legal_obligation", "medical_record_keeping", "law") in bases
    assert ("consent", "marketing", "consent_ledger") in bases
    assert not any(b[1] == "research" for b in bases)
    assert [(x.purpose, x.status) for x in answer.withdrawn] == [("research", "revoked")]
    assert answer.records["appointments"] == 1
    assert answer.records["consent_records"] == 3
    assert answer.shared_with_third_parties is False
    with w.uow() as tx:
        audited = tx.connection.execute(text(
            "SELECT count(*) FROM audit_events WHERE clinic_id = :c AND action = 'VIEW' "
            "AND resource_id = :p AND details ->> 'lgpd' = 'confirmation'"),
            {"c": w.clinic, "p": str(w.patient)}).scalar_one()
    assert audited == 1
    with pytest.raises(NotFound):
        lgpd.confirm_processing(w.uow(), w.stranger)


def test_a_deletion_request_is_erased_and_fulfilled_together_or_not_at_all(w: World) -> None:
    """fulfil_by_erasure: the adversaries are a failure between the erasure and the answer
    (nothing is erased under a request left open) and a request that is not grounds (not a
    deletion, identity not verified, already closed, another clinic's)."""
    admin = lambda: w.c.admin_uow(w.clinic, DPO)  # noqa: E731
    deletion = w.open(Kind.DELETION)

    def fails(*_: object) -> str:
        raise RuntimeError("the answer could not be written")

    def answer(decisions: list[Any], at: datetime) -> str:
        return f"{len(decisions)} decisions at {at.timestamp()}"

    with pytest.raises(Conflict):  # identity not verified
        lgpd.fulfil_by_erasure(admin(), deletion.id, lambda *_: "x")
    lgpd.verify_identity(w.uow(), deletion.id)
    with pytest.raises(RuntimeError):
        lgpd.fulfil_by_erasure(admin(), deletion.id, fails)
    assert patients.get_patient(w.uow(), w.patient).full_name == "Titular dos Dados"
    assert lgpd.get_request(w.uow(), deletion.id).status == Status.OPEN

    access = w.open(Kind.ACCESS)
    lgpd.verify_identity(w.uow(), access.id)
    with pytest.raises(ValidationFailed):
        lgpd.fulfil_by_erasure(admin(), access.id, lambda *_: "x")
    theirs = lgpd.open_request(w.uow(DESK, w.other), RequestOpen(
        patient_id=w.stranger, kind=Kind.DELETION))
    with pytest.raises(NotFound):
        lgpd.fulfil_by_erasure(admin(), theirs.id, lambda *_: "x")

    with pytest.raises(Conflict):  # closing it without the erasure: refused
        lgpd.fulfil_request(w.uow(), deletion.id, RequestFulfil(response="apagado"))
    assert lgpd.erasure_of_request(w.uow(), deletion.id) is None
    request, result, text = lgpd.fulfil_by_erasure(admin(), deletion.id, answer)
    assert request.status == Status.FULFILLED
    assert request.response_sha256 == hashlib.sha256(text.encode()).hexdigest()
    # the answer can be rebuilt later from the ledger and the request, and checked
    again = lgpd.erasure_of_request(w.uow(), deletion.id)
    assert again is not None
    assert sorted(again, key=str) == sorted(result.decisions, key=str)
    assert answer(again, request.fulfilled_at) == text
    assert patients.get_patient(w.uow(), w.patient).full_name == "Paciente anonimizado"
    with pytest.raises(InvalidTransition):  # fulfilled is final: no second erasure
        lgpd.fulfil_by_erasure(admin(), deletion.id, lambda *_: "x")
    assert patients.get_patient(w.uow(DESK, w.other), w.stranger).full_name \
        == "Paciente Alheio"


def test_a_deletion_request_erased_first_through_the_erasure_endpoint_can_be_fulfilled(
        w: World) -> None:
    """The API's path (POST .../erasure with the request, then .../fulfil) still closes it."""
    request = w.open(Kind.DELETION)
    lgpd.verify_identity(w.uow(), request.id)
    erasure.erase_patient(w.c.admin_uow(w.clinic, DPO), w.patient, request.id)
    done = lgpd.fulfil_request(w.uow(), request.id, RequestFulfil(response="Dados eliminados."))
    assert done.status == Status.FULFILLED
    assert lgpd.erasure_of_request(w.uow(), request.id) is not None


def test_the_database_refuses_a_ledger_entry_naming_another_clinics_request(
        w: World) -> None:
    """The adversary is the erasure engine's own role bound to this clinic, past the
    service's check: the ledger's trigger refuses another clinic's request as grounds, on
    one server and on Citus (where it reads the request table from the ledger's shard,
    revision 0021)."""
    theirs = lgpd.open_request(w.uow(DESK, w.other), RequestOpen(
        patient_id=w.stranger, kind=Kind.DELETION))
    decisions = erasure.plan_erasure(w.uow(), w.patient)
    with pytest.raises(Exception) as caught, w.c.admin_uow(w.clinic, DPO) as tx:  # noqa: PT011
        tx.erasures.record_many([(w.patient, decisions, "anonymized")], theirs.id)
        tx.commit()
    # one server: the service-level translation; Citus relays the worker's error as it is
    assert isinstance(caught.value, ValidationFailed) or "grounds" in str(caught.value)
    assert lgpd.erasure_of_request(w.uow(DESK, w.other), theirs.id) is None
    with w.c.admin_uow(w.clinic, DPO) as tx:
        assert not tx.erasures.has_entry(w.patient)
