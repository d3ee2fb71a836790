"""Idempotency-Key over HTTP: a retry is carried out at most once, and what was kept of the
first answer holds no readable personal data and goes with an erasure."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from neonpro.adapters.db.deadline import RequestTimedOut
from neonpro.adapters.db.repositories.idempotency import current_claim
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import IdempotencyKeyTaken
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.services import clinics, erasure
from neonpro.services import idempotency as idem
from neonpro.services import patients as patient_service
from tests.e2e.api_helpers import headers, is_problem
from tests.valid import cpf

SYSTEM = Actor(uuid.uuid4(), "system")


@pytest.fixture(scope="module")
def clinic(box: Container) -> uuid.UUID:
    return clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Chaves")).id


@pytest.fixture(scope="module")
def admin(box: Container, clinic: uuid.UUID) -> dict[str, str]:
    return headers(box, clinic, "admin", user=uuid.uuid4())


def _sql(box: Container, query: str, *args: Any) -> list[tuple[Any, ...]]:
    url = make_url(box.database.owner_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        cursor = conn.execute(query, args)
        return [tuple(r) for r in cursor.fetchall()] if cursor.description else []


def _patients_named(box: Container, clinic: uuid.UUID, name: str) -> int:
    return int(_sql(box, "SELECT count(*) FROM patients WHERE clinic_id = %s AND full_name = %s",
                    clinic, name)[0][0])


def _person(n: int) -> dict[str, str]:
    return {"full_name": f"Idempotente Silva {n}", "cpf": cpf(6100 + n),
            "phone_primary": "(11) 98888-7777", "email": f"idem{n}@exemplo.test"}


def test_a_retry_gets_the_first_answer_and_the_work_is_done_once(
        client: TestClient, box: Container, clinic: uuid.UUID, admin: dict[str, str]) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = _person(1)
    first = client.post("/patients", headers={**admin, **key}, json=body)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = client.post("/patients", headers={**admin, **key}, json=body)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert _patients_named(box, clinic, body["full_name"]) == 1
    # the kept answer is encrypted: no name, CPF, e-mail or phone readable in the database
    [(stored, patients)] = _sql(
        box, "SELECT body_encrypted, patient_ids FROM idempotency_keys WHERE clinic_id = %s "
        "AND state = 'done' AND %s = ANY(patient_ids)", clinic, uuid.UUID(first.json()["id"]))
    for value in (body["full_name"], body["cpf"], body["email"], "98888"):
        assert value.encode() not in bytes(stored)
    assert patients == [uuid.UUID(first.json()["id"])]
    # PATCH and DELETE too: one version step, one deletion
    patient = first.json()
    fix = {"Idempotency-Key": str(uuid.uuid4())}
    changes = {"version": patient["version"], "city": "Recife"}
    patched = [client.patch(f"/patients/{patient['id']}", headers={**admin, **fix},
                            json=changes) for _ in range(3)]
    assert [p.status_code for p in patched] == [200, 200, 200]
    assert {p.json()["version"] for p in patched} == {patient["version"] + 1}
    gone = {"Idempotency-Key": str(uuid.uuid4())}
    deleted = [client.delete(f"/patients/{patient['id']}",
                             params={"version": patient["version"] + 1},
                             headers={**admin, **gone}) for _ in range(2)]
    assert [d.status_code for d in deleted] == [204, 204]
    assert deleted[1].headers["idempotent-replayed"] == "true"


def test_the_same_key_with_another_request_or_caller_is_refused(
        client: TestClient, box: Container, clinic: uuid.UUID, admin: dict[str, str]) -> None:
    key = {"Idempotency-Key": "pedido-2026-0001"}
    assert client.post("/patients", headers={**admin, **key}, json=_person(2)).status_code == 201
    other = client.post("/patients", headers={**admin, **key}, json=_person(3))
    is_problem(other, 422, "idempotency_key_reused")
    stranger = headers(box, clinic, "admin", user=uuid.uuid4())
    is_problem(client.post("/patients", headers={**stranger, **key}, json=_person(2)), 422,
               "idempotency_key_reused")
    assert _patients_named(box, clinic, _person(3)["full_name"]) == 0
    for bad in ("", "a" * 256, "chave com espaco", "\x7fdel"):
        is_problem(client.post("/patients", headers={**admin, "Idempotency-Key": bad},
                               json=_person(4)), 400, "invalid_idempotency_key")
    assert _patients_named(box, clinic, _person(4)["full_name"]) == 0


def test_a_refusal_is_an_answer_too(
        client: TestClient, box: Container, clinic: uuid.UUID, admin: dict[str, str]) -> None:
    body = _person(5)
    assert client.post("/patients", headers=admin, json=body).status_code == 201
    key = {"Idempotency-Key": str(uuid.uuid4())}
    duplicate = client.post("/patients", headers={**admin, **key}, json=body)
    is_problem(duplicate, 409, "conflict")
    again = client.post("/patients", headers={**admin, **key}, json=body)
    assert again.status_code == 409
    assert again.headers["idempotent-replayed"] == "true"


def test_concurrent_duplicates_do_not_both_execute(
        client: TestClient, box: Container, clinic: uuid.UUID, admin: dict[str, str]) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = _person(6)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post("/patients", headers={**admin, **key},
                                                      json=body), range(8)))
    statuses = sorted(a.status_code for a in answers)
    created = {a.json()["id"] for a in answers if a.status_code == 201}
    assert set(statuses) <= {201, 409}, statuses
    assert len(created) == 1  # one execution; the others replayed it or were told to wait
    for waiting in (a for a in answers if a.status_code == 409):
        is_problem(waiting, 409, "idempotency_key_in_flight")
        assert waiting.headers["retry-after"] == "1"
    assert _patients_named(box, clinic, body["full_name"]) == 1


def test_a_failure_before_the_commit_gives_the_key_back(
        client: TestClient, box: Container, clinic: uuid.UUID, admin: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = _person(7)
    real = patient_service.register_patient

    def times_out(*_args: Any) -> Any:
        raise RequestTimedOut

    monkeypatch.setattr(patient_service, "register_patient", times_out)
    is_problem(client.post("/patients", headers={**admin, **key}, json=body), 503,
               "request_timeout")
    monkeypatch.setattr(patient_service, "register_patient", real)
    retried = client.post("/patients", headers={**admin, **key}, json=body)
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert _patients_named(box, clinic, body["full_name"]) == 1


def test_work_committed_but_its_answer_lost_is_not_done_again(
        client: TestClient, box: Container, clinic: uuid.UUID, admin: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = _person(8)

    def lost(*_args: Any) -> bool:
        raise psycopg.OperationalError("the connection broke while keeping the answer")

    monkeypatch.setattr(idem, "finish", lost)
    first = client.post("/patients", headers={**admin, **key}, json=body)
    assert first.status_code == 201  # the work stands, the client has its answer
    monkeypatch.undo()
    # within the first attempt's lease it might still be keeping its answer: wait
    is_problem(client.post("/patients", headers={**admin, **key}, json=body), 409,
               "idempotency_key_in_flight")
    _sql(box, "UPDATE idempotency_keys SET lease_until = now() - interval '1 second' "
         "WHERE clinic_id = %s AND state = 'committed'", clinic)  # ... and its lease runs out
    again = client.post("/patients", headers={**admin, **key}, json=body)
    problem = is_problem(again, 409, "request_already_applied")
    assert {"type": "patients", "id": first.json()["id"], "action": "CREATE"} in problem[
        "resources"]  # type: ignore[operator]
    assert _patients_named(box, clinic, body["full_name"]) == 1


def test_an_attempt_whose_key_was_taken_over_cannot_commit(
        box: Container, clinic: uuid.UUID) -> None:
    """A presumed-abandoned attempt (its lease ran out) wakes up and tries to commit."""
    actor = Actor(uuid.uuid4(), "admin")
    key, request = uuid.uuid4().bytes * 2, b"r" * 32
    begun = idem.begin(box.uow(clinic, actor), key, request, 0.0, 24)
    assert isinstance(begun, idem.Claimed)
    taken = idem.begin(box.uow(clinic, actor), key, request, 30.0, 24)  # lease 0: abandoned
    assert isinstance(taken, idem.Claimed)
    assert taken.claim.claim != begun.claim.claim
    token = current_claim.set(begun.claim)
    try:
        with pytest.raises(IdempotencyKeyTaken):
            patient_service.register_patient(box.uow(clinic, actor), _create(9))
    finally:
        current_claim.reset(token)
    assert _patients_named(box, clinic, _person(9)["full_name"]) == 0


def _create(n: int) -> Any:
    from neonpro.domain.schemas.patient import PatientCreate  # noqa: PLC0415

    return PatientCreate(**_person(n))


def test_erasure_removes_the_kept_answers_that_name_the_patient(
        client: TestClient, box: Container, clinic: uuid.UUID, admin: dict[str, str]) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = _person(10)
    created = client.post("/patients", headers={**admin, **key}, json=body)
    assert created.status_code == 201
    patient = uuid.UUID(created.json()["id"])
    assert erasure.erase_patient(box.admin_uow(clinic, SYSTEM), patient).outcome == "anonymized"
    [(stored, scrubbed)] = _sql(
        box, "SELECT body_encrypted, scrubbed_at IS NOT NULL FROM idempotency_keys "
        "WHERE clinic_id = %s AND %s = ANY(patient_ids)", clinic, patient)
    assert stored is None
    assert scrubbed is True
    replay = client.post("/patients", headers={**admin, **key}, json=body)
    is_problem(replay, 410, "idempotent_answer_gone")
    assert _patients_named(box, clinic, body["full_name"]) == 0  # not registered again


def test_openapi_documents_the_header_on_every_write(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    writes = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            names = {p["name"] for p in operation.get("parameters", [])}
            # a legal-hold read is audited afresh each time: no key, no kept copy
            if (method in ("post", "patch", "delete", "put") and not path.startswith("/auth/")
                    and not path.endswith("/legal-hold/read")):
                writes += 1
                assert "Idempotency-Key" in names, (method, path)
                assert {"409", "410", "422"} <= set(operation["responses"]), (method, path)
            else:
                assert "Idempotency-Key" not in names, (method, path)
    assert writes >= 30
