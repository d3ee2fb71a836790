"""The incident register and the disclosure log over HTTP, and their CLI listings."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from neonpro.adapters.crypto import generate_key_file, load_keyring
from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import CollectionMethod, ConsentPurpose, LegalBasis
from neonpro.services import clinics, consents, patients
from neonpro.services import disclosures as disclosure_svc
from neonpro.services import incidents as incident_svc
from neonpro.services.disclosures import DisclosureCreate
from neonpro.services.incidents import IncidentCreate
from tests.conftest import make_settings
from tests.e2e.api_helpers import headers, is_problem

SYSTEM = Actor(uuid.uuid4(), "system")


@pytest.fixture
def clinic(box: Container) -> uuid.UUID:
    return clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="LGPD API")).id


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def test_incident_endpoints_are_for_admins_and_the_dpo(client: TestClient, box: Container,
                                                       clinic: uuid.UUID) -> None:
    now = datetime.now(UTC)
    body = {"detected_at": _iso(now), "description": "x"}
    for role in ("receptionist", "professional"):
        who = headers(box, clinic, role)
        is_problem(client.post("/lgpd/incidents", headers=who, json=body), 403, "forbidden")
        is_problem(client.get("/lgpd/incidents", headers=who), 403, "forbidden")
        is_problem(client.get(f"/lgpd/incidents/{uuid.uuid4()}/affected", headers=who,
                              params={"actor_id": str(uuid.uuid4())}), 403, "forbidden")
    is_problem(client.get("/lgpd/incidents"), 401, "unauthenticated")
    assert client.post("/lgpd/incidents", headers=headers(box, clinic, "admin"),
                       json=body).status_code == 201


def test_register_notify_list_and_close(client: TestClient, box: Container,
                                        clinic: uuid.UUID) -> None:
    dpo = headers(box, clinic, "dpo")
    now = datetime.now(UTC)
    created = client.post("/lgpd/incidents", headers=dpo, json={
        "detected_at": _iso(now - timedelta(days=12)), "learned_at": _iso(now - timedelta(days=10)),
        "description": "backup sem criptografia exposto", "risk_level": "low",
        "affected_data_categories": ["clinical"], "affected_patient_count": 40})
    assert created.status_code == 201, created.text
    late = created.json()
    assert late["risk_level"] == "high"
    assert late["notification_required"] is True
    assert late["overdue"] is True
    assert late["affected_patient_count"] == 40
    iid = late["id"]
    fresh = client.post("/lgpd/incidents", headers=dpo, json={
        "detected_at": _iso(now - timedelta(minutes=3)), "description": "phishing"}).json()
    assert fresh["overdue"] is False
    listed = client.get("/lgpd/incidents", headers=dpo).json()
    assert [i["id"] for i in listed["items"]] == [fresh["id"], iid]
    overdue = client.get("/lgpd/incidents", headers=dpo, params={"overdue": "true"}).json()
    assert [i["id"] for i in overdue["items"]] == [iid]
    assert client.get(f"/lgpd/incidents/{iid}", headers=dpo).json()["id"] == iid

    is_problem(client.post(f"/lgpd/incidents/{iid}/notify", headers=dpo,
                           json={"which": "press"}), 422, "validation_failed")
    anpd = client.post(f"/lgpd/incidents/{iid}/notify", headers=dpo, json={"which": "anpd"})
    assert anpd.status_code == 200, anpd.text
    assert anpd.json()["notified_anpd_at"] is not None
    assert anpd.json()["overdue"] is True
    is_problem(client.post(f"/lgpd/incidents/{iid}/notify", headers=dpo,
                           json={"which": "anpd"}), 409, "conflict")
    subjects = client.post(f"/lgpd/incidents/{iid}/notify", headers=dpo,
                           json={"which": "subjects"}).json()
    assert subjects["overdue"] is False
    assert client.get("/lgpd/incidents", headers=dpo,
                      params={"overdue": "true"}).json()["items"] == []

    is_problem(client.post(f"/lgpd/incidents/{iid}/close", headers=dpo), 422,
               "validation_failed")
    closed = client.post(f"/lgpd/incidents/{iid}/close", headers=dpo,
                         json={"mitigation": "backup removido, chaves trocadas"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert closed.json()["retain_until"] >= str((now + timedelta(days=5 * 365 - 2)).date())
    is_problem(client.post(f"/lgpd/incidents/{iid}/close", headers=dpo,
                           json={"mitigation": "again"}), 409, "invalid_transition")
    is_problem(client.post(f"/lgpd/incidents/{uuid.uuid4()}/notify", headers=dpo,
                           json={"which": "anpd"}), 404, "not_found")
    other = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Outra")).id
    is_problem(client.get(f"/lgpd/incidents/{iid}", headers=headers(box, other, "dpo")),
               404, "not_found")


def test_affected_patients_of_an_actor(client: TestClient, box: Container,
                                       clinic: uuid.UUID) -> None:
    admin, dpo = headers(box, clinic, "admin"), headers(box, clinic, "dpo")
    snoop = uuid.uuid4()
    desk = headers(box, clinic, "receptionist", snoop)
    seen = [client.post("/patients", headers=admin, json={"full_name": f"Vista {i}"}).json()["id"]
            for i in range(2)]
    since = datetime.now(UTC) - timedelta(seconds=2)
    for pid in seen:
        assert client.get(f"/patients/{pid}", headers=desk).status_code == 200
    until = datetime.now(UTC) + timedelta(seconds=2)
    created = client.post("/lgpd/incidents", headers=dpo, json={
        "detected_at": _iso(until), "description": "acesso fora do horário",
        "scope": {"actor_id": str(snoop), "since": _iso(since), "until": _iso(until)}})
    assert created.status_code == 201, created.text
    incident = created.json()
    assert incident["affected_patient_count"] == 2
    assert "identification" in incident["affected_data_categories"]
    iid = incident["id"]
    found = client.get(f"/lgpd/incidents/{iid}/affected", headers=dpo, params={
        "actor_id": str(snoop), "since": _iso(since), "until": _iso(until)})
    assert found.status_code == 200, found.text
    assert sorted(found.json()["patients"]) == sorted(seen)
    assert found.json()["events"] == 2
    assert found.json()["actions"] == {"VIEW": 2}
    is_problem(client.get(f"/lgpd/incidents/{iid}/affected", headers=dpo), 422,
               "validation_failed")
    is_problem(client.get(f"/lgpd/incidents/{iid}/affected", headers=dpo, params={
        "actor_id": str(snoop), "ip": "192.0.2.1"}), 422, "validation_failed")
    stored = client.post(f"/lgpd/incidents/{iid}/affected", headers=dpo, json={
        "ip_address": "192.0.2.1", "since": _iso(since), "until": _iso(until)})
    assert stored.status_code == 200, stored.text
    assert stored.json()["affected_patient_count"] == 0


def test_disclosures_need_consent_on_the_consent_basis(client: TestClient, box: Container,
                                                       clinic: uuid.UUID) -> None:
    desk, dpo = headers(box, clinic, "receptionist"), headers(box, clinic, "dpo")
    pid = client.post("/patients", headers=desk, json={"full_name": "Partilha"}).json()["id"]
    sharing = {"patient_id": pid, "recipient_name": "Operadora Saúde S.A.",
               "recipient_address": "Av. Paulista 1000, São Paulo-SP",
               "data_description": "guia de internação", "data_categories": ["clinical"],
               "purpose": "autorização prévia", "legal_basis": "consent"}
    is_problem(client.post("/lgpd/disclosures", headers=desk, json=sharing), 428,
               "consent_required")
    granted = client.post("/consents", headers=desk, json={
        "patient_id": pid, "purpose": "data_sharing", "terms_version": "d1",
        "terms_hash": "c" * 64, "collection_method": "online_form"})
    assert granted.status_code == 201, granted.text
    made = client.post("/lgpd/disclosures", headers=desk, json=sharing)
    assert made.status_code == 201, made.text
    assert made.json()["consent_record_id"] == granted.json()["id"]
    by_dpo = client.post("/lgpd/disclosures", headers=dpo, json={
        **sharing, "legal_basis": "legal_obligation", "recipient_name": "Vigilância Sanitária",
        "purpose": "notificação compulsória"})
    assert by_dpo.status_code == 201, by_dpo.text
    is_problem(client.post("/lgpd/disclosures", headers=desk, json={
        **sharing, "legal_basis": "legitimate_interest"}), 422, "validation_failed")
    listed = client.get(f"/lgpd/patients/{pid}/disclosures", headers=desk)
    assert listed.status_code == 200, listed.text
    assert [d["id"] for d in listed.json()["items"]] == [by_dpo.json()["id"], made.json()["id"]]
    assert listed.json()["total"] == 2
    assert client.get(f"/lgpd/patients/{pid}/disclosures",
                      headers=headers(box, clinic, "professional")).status_code == 200
    is_problem(client.get(f"/lgpd/patients/{uuid.uuid4()}/disclosures", headers=desk), 404,
               "not_found")
    is_problem(client.post("/lgpd/disclosures", headers=desk,
                           json={**sharing, "extra": 1}), 422, "validation_failed")


# ----------------------------------------------------------------------------- CLI

ATTACH = (
    "import sys, typer\n"
    "from neonpro.entrypoints.cli.lgpd_incidents import disclosures, incidents\n"
    "app = typer.Typer()\n"
    "app.command('incidents')(incidents)\n"
    "app.command('disclosures')(disclosures)\n"
    "app(sys.argv[1:])\n"
)


def test_cli_lists_incidents_and_disclosures(fresh_database_url: str, roles: Roles,
                                             tmp_path: Path) -> None:
    url = fresh_database_url
    migrate.upgrade(url, roles)
    keys = tmp_path / "keys.json"
    generate_key_file(keys)
    settings = make_settings(url, key_file=keys)
    cli_box = Container(settings, database_url=url, keyring=load_keyring(settings))
    me = Actor(uuid.uuid4(), "dpo")
    clinic = clinics.create_clinic(cli_box.service_uow(me), ClinicCreate(name="CLI")).id
    now = datetime.now(UTC)
    late = incident_svc.register_incident(cli_box.uow(clinic, me), IncidentCreate(
        detected_at=now - timedelta(days=9), description="segredo interno"))
    pid = patients.register_patient(cli_box.uow(clinic, me), PatientCreate(full_name="P")).id
    consents.grant_consent(cli_box.uow(clinic, me), ConsentCreate(
        patient_id=pid, purpose=ConsentPurpose.DATA_SHARING, terms_version="d1",
        terms_hash=hashlib.sha256(b"d").hexdigest(), collection_method=CollectionMethod.WRITTEN))
    disclosure_svc.record_disclosure(cli_box.uow(clinic, me), DisclosureCreate(
        patient_id=pid, recipient_name="Lab", data_description="exames",
        purpose="análise", legal_basis=LegalBasis.CONSENT))
    cli_box.close()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "NEONPRO_DATABASE_URL": url, "NEONPRO_KEY_FILE": str(keys)}
        return subprocess.run([sys.executable, "-c", ATTACH, *args], capture_output=True,
                              text=True, env=env, timeout=120, check=False)

    listed = run("incidents", "--clinic", str(clinic), "--overdue", "--json")
    assert listed.returncode == 1, listed.stderr  # one incident is overdue
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["overdue"]) for r in rows] == [(str(late.id), True)]
    assert "segredo" not in listed.stdout  # the description stays out of the output
    table = run("incidents", "--clinic", str(clinic))
    assert table.returncode == 1
    assert "YES" in table.stdout
    shared = run("disclosures", "--clinic", str(clinic), "--patient", str(pid), "--json")
    assert shared.returncode == 0, shared.stderr
    [row] = json.loads(shared.stdout)
    assert (row["recipient_name"], row["legal_basis"]) == ("Lab", "consent")
    empty = run("disclosures", "--clinic", str(clinic), "--patient", str(uuid.uuid4()))
    assert empty.returncode == 1  # an unknown patient is an error, not an empty log
    assert "not found" in empty.stderr
