"""The LGPD API end to end: requests, confirmation and export over HTTP, roles, problems."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from typer.testing import CliRunner

from neonpro.adapters.crypto import generate_key_file, load_keyring
from neonpro.bootstrap import Container
from neonpro.config import Settings
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import DataSubjectRequestKind
from neonpro.entrypoints.cli import lgpd as lgpd_cli
from neonpro.services import clinics, lgpd_requests, patients
from tests.conftest import make_settings
from tests.e2e.api_helpers import headers, is_problem
from tests.valid import cpf

SYSTEM = Actor(uuid.uuid4(), "system")


@pytest.fixture(scope="module")
def two_clinics(box: Container) -> tuple[uuid.UUID, uuid.UUID]:
    a = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="LGPD API A")).id
    b = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="LGPD API B")).id
    return a, b


def _patient(client: TestClient, admin: dict[str, str], n: int) -> str:
    created = client.post("/patients", headers=admin, json={
        "full_name": "Titular Via API", "cpf": cpf(n), "email": f"titular{n}@example.com.br",
        "patient_notes": "nota clínica"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_request_lifecycle_over_http(client: TestClient, box: Container,
                                     two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, b = two_clinics
    admin, desk, dpo, doctor = (headers(box, a, r) for r in
                                ("admin", "receptionist", "dpo", "professional"))
    pid = _patient(client, admin, 9301)
    opened = client.post("/lgpd/requests", headers=desk,
                         json={"patient_id": pid, "kind": "correction"})
    assert opened.status_code == 201, opened.text
    req = opened.json()
    assert req["status"] == "open"
    received = datetime.fromisoformat(req["received_at"])
    assert datetime.fromisoformat(req["due_at"]) - received == timedelta(days=15)
    rid = req["id"]
    # the desk opens requests but does not handle them
    is_problem(client.post(f"/lgpd/requests/{rid}/start", headers=desk), 403, "forbidden")
    is_problem(client.get("/lgpd/requests", headers=doctor), 403, "forbidden")
    # fulfilling before verifying identity is a conflict
    is_problem(client.post(f"/lgpd/requests/{rid}/fulfil", headers=dpo,
                           json={"response": "feito"}), 409, "conflict")
    verified = client.post(f"/lgpd/requests/{rid}/verify", headers=dpo)
    assert verified.status_code == 200, verified.text
    assert verified.json()["identity_verified_at"] is not None
    assert client.post(f"/lgpd/requests/{rid}/start", headers=dpo).json()["status"] == \
        "in_progress"
    is_problem(client.post(f"/lgpd/requests/{rid}/start", headers=dpo), 409,
               "invalid_transition")
    done = client.post(f"/lgpd/requests/{rid}/fulfil", headers=admin,
                       json={"response": "Dados corrigidos."})
    assert done.status_code == 200, done.text
    assert done.json()["response_sha256"] == hashlib.sha256(b"Dados corrigidos.").hexdigest()
    is_problem(client.post(f"/lgpd/requests/{rid}/refuse", headers=dpo,
                           json={"reason": "x"}), 409, "invalid_transition")
    # refusing needs a reason; validation errors name the field
    other = client.post("/lgpd/requests", headers=admin,
                        json={"patient_id": pid, "kind": "deletion"}).json()["id"]
    body = is_problem(client.post(f"/lgpd/requests/{other}/refuse", headers=dpo, json={}),
                      422, "validation_failed")
    assert any(e["field"] == "reason" for e in body["errors"])  # type: ignore[attr-defined]
    refused = client.post(f"/lgpd/requests/{other}/refuse", headers=dpo,
                          json={"reason": "prontuário sob guarda legal (Lei 13.787/2018)"})
    assert refused.json()["status"] == "refused"
    # another clinic sees nothing
    other_dpo = headers(box, b, "dpo")
    is_problem(client.post(f"/lgpd/requests/{rid}/verify", headers=other_dpo), 404,
               "not_found")
    assert client.get("/lgpd/requests", headers=other_dpo).json() == []
    is_problem(client.post("/lgpd/requests", headers=headers(box, b, "admin"),
                           json={"patient_id": pid, "kind": "access"}), 404, "not_found")
    # bad input
    is_problem(client.post("/lgpd/requests", headers=desk,
                           json={"patient_id": pid, "kind": "everything"}), 422,
               "validation_failed")
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    is_problem(client.post("/lgpd/requests", headers=desk, json={
        "patient_id": pid, "kind": "access", "received_at": future}), 422, "validation_failed")
    assert client.get(f"/lgpd/requests/{rid}", headers=dpo).json()["status"] == "fulfilled"


def test_overdue_list(client: TestClient, box: Container,
                      two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, _ = two_clinics
    admin, dpo = headers(box, a, "admin"), headers(box, a, "dpo")
    pid = _patient(client, admin, 9302)
    old = (datetime.now(UTC) - timedelta(days=16)).isoformat()
    late = client.post("/lgpd/requests", headers=admin, json={
        "patient_id": pid, "kind": "access", "received_at": old}).json()["id"]
    fresh = client.post("/lgpd/requests", headers=admin,
                        json={"patient_id": pid, "kind": "access"}).json()["id"]
    overdue = {r["id"] for r in client.get("/lgpd/requests", headers=dpo,
                                           params={"overdue": "true"}).json()}
    assert late in overdue
    assert fresh not in overdue
    listed = client.get("/lgpd/requests", headers=dpo,
                        params={"patient_id": pid, "status": "open"}).json()
    assert {r["id"] for r in listed} == {late, fresh}


def test_confirmation_and_export(client: TestClient, box: Container,
                                 two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, b = two_clinics
    admin, desk, dpo, doctor = (headers(box, a, r) for r in
                                ("admin", "receptionist", "dpo", "professional"))
    pid = _patient(client, admin, 9303)
    for who in (desk, dpo, doctor):
        answer = client.get(f"/lgpd/patients/{pid}/confirmation", headers=who)
        assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["processes_data"] is True
    assert {"identification", "contact", "clinical"} <= set(body["categories"])
    assert any(x["legal_basis"] == "health_protection" for x in body["legal_bases"])
    is_problem(client.get(f"/lgpd/patients/{pid}/confirmation", headers=headers(box, b, "dpo")),
               404, "not_found")

    # export: oversight only
    is_problem(client.get(f"/lgpd/patients/{pid}/export", headers=desk), 403, "forbidden")
    is_problem(client.get(f"/lgpd/patients/{pid}/export", headers=doctor), 403, "forbidden")
    as_json = client.get(f"/lgpd/patients/{pid}/export", headers=dpo)
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_json.headers["x-content-sha256"] == hashlib.sha256(as_json.content).hexdigest()
    assert "attachment" in as_json.headers["content-disposition"]
    doc = json.loads(as_json.content)
    assert doc["format"] == "neonpro.lgpd.export/v1"
    assert doc["patient"]["id"] == pid
    assert doc["patient"]["patient_notes"] == "nota clínica"

    request = client.post("/lgpd/requests", headers=desk,
                          json={"patient_id": pid, "kind": "portability"}).json()["id"]
    fhir = client.get(f"/lgpd/patients/{pid}/export", headers=admin,
                      params={"format": "fhir", "request_id": request})
    assert fhir.status_code == 200, fhir.text
    assert fhir.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate_json(fhir.content)
    assert bundle.type == "collection"
    first: Any = (bundle.entry or [])[0].resource
    assert first.get_resource_type() == "Patient"
    digest = hashlib.sha256(fhir.content).hexdigest()
    assert fhir.headers["x-content-sha256"] == digest
    stored = client.get(f"/lgpd/requests/{request}", headers=dpo).json()
    assert stored["response_sha256"] == digest
    assert stored["status"] == "in_progress"
    client.post(f"/lgpd/requests/{request}/verify", headers=dpo)
    closed = client.post(f"/lgpd/requests/{request}/fulfil", headers=dpo)
    assert closed.status_code == 200, closed.text
    assert closed.json()["response_sha256"] == digest

    is_problem(client.get(f"/lgpd/patients/{pid}/export", headers=dpo,
                          params={"format": "xml"}), 422, "validation_failed")
    is_problem(client.get(f"/lgpd/patients/{uuid.uuid4()}/export", headers=dpo), 404,
               "not_found")
    # the audit trail shows both exports, medium risk
    events = client.get("/audit/events", headers=dpo,
                        params={"patient_id": pid, "action": "EXPORT"})
    assert events.status_code == 200, events.text
    items = events.json()["items"]
    assert len(items) == 2
    assert {e["risk_level"] for e in items} == {"medium"}


def test_openapi_documents_the_lgpd_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert "/lgpd/requests" in paths
    assert "/lgpd/patients/{patient_id}/export" in paths
    export = paths["/lgpd/patients/{patient_id}/export"]["get"]
    assert "application/fhir+json" in export["responses"]["200"]["content"]
    assert export["tags"] == ["lgpd"]


def _cli_world(database_url: str, tmp_path: Path) -> tuple[Settings, uuid.UUID, uuid.UUID,
                                                            uuid.UUID]:
    """A key file, a clinic, a patient and an overdue portability request."""
    keys = tmp_path / "keys.json"
    generate_key_file(keys)
    settings = make_settings(database_url, key_file=keys)
    box = Container(settings, database_url=database_url, keyring=load_keyring(settings))
    try:
        clinic = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="CLI LGPD")).id
        me = Actor(uuid.uuid4(), "admin")
        pid = patients.register_patient(box.uow(clinic, me), PatientCreate(
            full_name="Titular Da Linha", cpf=cpf(9304), patient_notes="nota")).id
        late = lgpd_requests.open_request(box.uow(clinic, me), lgpd_requests.RequestOpen(
            patient_id=pid, kind=DataSubjectRequestKind.PORTABILITY,
            received_at=datetime.now(UTC) - timedelta(days=20))).id
    finally:
        box.close()
    return settings, clinic, pid, late


def test_cli_requests_confirm_and_export(database_url: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # in-process: keep the session's logging (the PII guard's DEBUG capture) as it is
    monkeypatch.setattr("neonpro.entrypoints.cli._common.configure_logging",
                        lambda *_a, **_k: None)
    settings, clinic, pid, late = _cli_world(database_url, tmp_path)
    env = {"NEONPRO_DATABASE_URL": database_url, "NEONPRO_KEY_FILE": str(settings.key_file)}
    runner = CliRunner()

    listed = runner.invoke(lgpd_cli.app, ["requests", "--clinic", str(clinic), "--overdue",
                                          "--json"], env=env)
    assert listed.exit_code == 1, listed.output  # overdue requests exist
    assert [r["id"] for r in json.loads(listed.stdout)] == [str(late)]
    everywhere = runner.invoke(lgpd_cli.app, ["requests", "--json"], env=env)
    assert everywhere.exit_code == 0, everywhere.output
    assert str(late) in {r["id"] for r in json.loads(everywhere.stdout)}
    table = runner.invoke(lgpd_cli.app, ["requests", "--clinic", str(clinic)], env=env)
    assert table.exit_code == 0, table.output
    assert "portabi" in table.stdout

    confirmed = runner.invoke(lgpd_cli.app, ["confirm", str(pid), "--clinic", str(clinic),
                                             "--json"], env=env)
    assert confirmed.exit_code == 0, confirmed.output
    assert json.loads(confirmed.stdout)["processes_data"] is True
    readable = runner.invoke(lgpd_cli.app, ["confirm", str(pid), "--clinic", str(clinic)],
                             env=env)
    assert "health_protection" in readable.stdout

    out = tmp_path / "export.fhir.json"
    exported = runner.invoke(lgpd_cli.app, [
        "export", str(pid), "--clinic", str(clinic), "--format", "fhir", "--out", str(out),
        "--request", str(late)], env=env)
    assert exported.exit_code == 0, exported.output
    content = out.read_bytes()
    assert out.stat().st_mode & 0o777 == 0o600
    assert Bundle.model_validate_json(content).type == "collection"
    digest = hashlib.sha256(content).hexdigest()
    assert digest in exported.stderr
    to_stdout = runner.invoke(lgpd_cli.app, ["export", str(pid), "--clinic", str(clinic)],
                              env=env)
    assert to_stdout.exit_code == 0, to_stdout.output
    assert json.loads(to_stdout.stdout_bytes)["patient"]["patient_notes"] == "nota"

    missing = runner.invoke(lgpd_cli.app, ["export", str(uuid.uuid4()), "--clinic",
                                           str(clinic)], env=env)
    assert missing.exit_code == 1
    assert "not found" in missing.stderr
    box = Container(settings, database_url=database_url, keyring=load_keyring(settings))
    try:
        stored = lgpd_requests.get_request(box.uow(clinic, SYSTEM), late)
    finally:
        box.close()
    assert stored.response_sha256 == digest
    assert stored.status == "in_progress"
