"""Values outside what PostgreSQL and Python hold, and nesting without end, are 422 problems
on every operation, never a 5xx (the outside review's OverflowError and deep evidence)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate, StaffUserCreate
from neonpro.domain.vocabulary import ClinicRole
from neonpro.services import clinics
from tests.e2e.api_helpers import headers, is_problem

SYSTEM = Actor(uuid.UUID("00000000-0000-0000-0000-00000000a5a5"), "admin")
INSTANTS = ["0001-01-05T00:00:00+00:00", "9999-12-31T23:59:59-03:00",
            "0001-01-01T00:00:00-03:00", "1899-12-31T23:59:59+00:00", "2200-01-01T00:00:00Z"]
DAYS = ["0001-01-01", "9999-12-31", "1899-12-31", "2200-01-01"]


@pytest.fixture(scope="module")
def clinic(box: Container) -> uuid.UUID:
    return clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Extremos")).id


def _date_query_parameters(client: TestClient) -> list[tuple[str, str, str, str]]:
    spec = client.app.openapi()  # type: ignore[attr-defined]
    found = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                schemas = [p.get("schema", {}), *p.get("schema", {}).get("anyOf", [])]
                kinds = {s.get("format") for s in schemas} & {"date", "date-time"}
                if p["in"] == "query" and kinds:
                    found.append((method.upper(), path, p["name"], kinds.pop()))
    return found


def test_every_date_parameter_refuses_what_no_clinic_needs(
        client: TestClient, box: Container, clinic: uuid.UUID) -> None:
    roles = [headers(box, clinic, role) for role in ("dpo", "admin")]
    parameters = _date_query_parameters(client)
    assert len(parameters) >= 8  # audit search, investigate, report, incidents, no-show...
    for method, path, name, kind in parameters:
        target = path.replace("{incident_id}", str(uuid.uuid4())).replace(
            "{patient_id}", str(uuid.uuid4()))
        for value in INSTANTS if kind == "date-time" else DAYS:
            for role in roles:  # the role the operation is for answers the value
                answer = client.request(method, target, headers=role, params={name: value})
                assert answer.status_code < 500, (method, path, name, value, answer.text)
                if answer.status_code not in (403, 404):
                    is_problem(answer, 422, "validation_failed")


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "x"}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_bodies_with_extreme_dates_or_endless_nesting_are_422(
        client: TestClient, box: Container, clinic: uuid.UUID) -> None:
    desk = headers(box, clinic, "receptionist")
    for day in DAYS:
        is_problem(client.post("/patients", headers=desk,
                               json={"full_name": "Datada", "birth_date": day}),
                   422, "validation_failed")
    pid = client.post("/patients", headers=desk, json={"full_name": "Consente"}).json()["id"]
    grant = {"patient_id": pid, "purpose": "marketing", "terms_version": "m1",
             "terms_hash": "a" * 64, "collection_method": "online_form"}
    for instant in INSTANTS:
        is_problem(client.post("/consents", headers=desk, json={**grant, "expires_at": instant}),
                   422, "validation_failed")
    for depth in (17, 500, 900):
        is_problem(client.post("/consents", headers=desk,
                               json={**grant, "evidence": _nested(depth)}),
                   422, "validation_failed")
    kept = client.post("/consents", headers=desk, json={**grant, "evidence": _nested(10),
                                                         "expires_at": "2199-12-31T20:59:59-03:00"})
    assert kept.status_code == 201, kept.text


def test_validation_errors_never_repeat_a_key_the_client_sent(
        client: TestClient, box: Container, clinic: uuid.UUID) -> None:
    desk = headers(box, clinic, "receptionist")
    secrets = ["111.444.777-35", "chave.secreta@exemplo.test", "Maria Chave Secreta"]
    for key in secrets:
        for body in ({"full_name": "Chave", key: "x"},
                     {"full_name": "Chave", "external_ids": {key: 7}},
                     {"full_name": "Chave", "address": {key: "x"}}):
            answer = client.post("/patients", headers=desk, json=body)
            problem = is_problem(answer, 422, "validation_failed")
            assert key not in answer.text, problem
            assert all(isinstance(e, dict) and e["field"] for e in problem["errors"])  # type: ignore[attr-defined]


def test_a_professional_links_only_a_staff_member_of_its_own_clinic(
        client: TestClient, box: Container, clinic: uuid.UUID) -> None:
    other = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Alheia")).id
    theirs, _ = clinics.add_staff_member(box.service_uow(SYSTEM), other, StaffUserCreate(
        email="alheia.prof@exemplo.test", display_name="Prof Alheia", password_hash="!"),
        ClinicRole.PROFESSIONAL)
    ours, _ = clinics.add_staff_member(box.service_uow(SYSTEM), clinic, StaffUserCreate(
        email="nossa.prof@exemplo.test", display_name="Prof Nossa", password_hash="!"),
        ClinicRole.PROFESSIONAL)
    admin = headers(box, clinic, "admin")
    for stranger in (theirs.id, uuid.uuid4()):
        refused = is_problem(client.post("/professionals", headers=admin, json={
            "full_name": "Dra Ligada", "user_id": str(stranger)}), 422, "validation_failed")
        assert str(stranger) not in str(refused)
    linked = client.post("/professionals", headers=admin, json={
        "full_name": "Dra Ligada", "user_id": str(ours.id)})
    assert linked.status_code == 201, linked.text
    unlinked = client.post("/professionals", headers=admin, json={"full_name": "Dr Solto"})
    assert unlinked.status_code == 201, unlinked.text
    for stranger in (theirs.id, uuid.uuid4()):  # a correction may not link them either
        is_problem(client.patch(f"/professionals/{unlinked.json()['id']}", headers=admin,
                                json={"user_id": str(stranger)}),
                   422, "validation_failed")
