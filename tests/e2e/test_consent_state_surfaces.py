"""The issue-13 consent scenario (grant marketing twice, revoke the newest) through the
operator's and the API's surfaces: `neonpro lgpd confirm`, `neonpro consent state|check`,
`GET /patients/{id}/consent-state`, the confirmation and the exports over HTTP."""

from __future__ import annotations

import hashlib
import json
import uuid

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import CollectionMethod, ConsentPurpose
from neonpro.entrypoints.cli import consent as consent_cli
from neonpro.entrypoints.cli import lgpd as lgpd_cli
from neonpro.services import clinics, consents, patients
from tests.e2e.api_helpers import headers, is_problem

ME = Actor(uuid.uuid4(), "admin")
TERMS = hashlib.sha256(b"marketing").hexdigest()


def _scenario(box: Container, clinic: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """A patient who granted marketing twice and revoked the newest grant."""
    pid = patients.register_patient(box.uow(clinic, ME),
                                    PatientCreate(full_name="Titular Revogado")).id
    ids = [consents.grant_consent(box.uow(clinic, ME), ConsentCreate(
        patient_id=pid, purpose=ConsentPurpose.MARKETING, terms_version=v, terms_hash=TERMS,
        collection_method=CollectionMethod.DIGITAL_SIGNATURE)).id
        for v in ("marketing-v1", "marketing-v2")]
    revocation = consents.revoke_consent(box.uow(clinic, ME), ids[1]).id
    return pid, revocation


def test_cli_confirm_state_and_check_agree(
        cli_env: tuple[dict[str, str], Container]) -> None:
    env, box = cli_env
    try:
        clinic = clinics.create_clinic(box.service_uow(ME), ClinicCreate(name="CLI state")).id
        pid, revocation = _scenario(box, clinic)
    finally:
        box.close()
    runner = CliRunner()

    confirmed = runner.invoke(lgpd_cli.app, ["confirm", str(pid), "--clinic", str(clinic),
                                             "--json"], env=env)
    assert confirmed.exit_code == 0, confirmed.output
    answer = json.loads(confirmed.stdout)
    assert not any(b["purpose"] == "marketing" for b in answer["legal_bases"])
    assert [(w["purpose"], w["status"]) for w in answer["withdrawn"]] == [
        ("marketing", "revoked")]

    state = runner.invoke(consent_cli.app, ["state", "--clinic", str(clinic), "--patient",
                                            str(pid), "--json"], env=env)
    assert state.exit_code == 0, state.output
    [marketing] = json.loads(state.stdout)
    assert (marketing["purpose"], marketing["state"], marketing["decision"],
            marketing["decision_id"]) == ("marketing", "withdrawn", "revoked", str(revocation))
    table = runner.invoke(consent_cli.app, ["state", "--clinic", str(clinic), "--patient",
                                            str(pid)], env=env)
    assert table.exit_code == 0, table.output
    assert "withdrawn" in table.stdout

    check = runner.invoke(consent_cli.app, ["check", "--clinic", str(clinic), "--json"],
                          env=env)
    assert check.exit_code == 0, check.output  # the older grant is no finding: not current
    assert [f for f in json.loads(check.stdout) if f["patient_id"] == str(pid)] == []

    unknown = runner.invoke(consent_cli.app, ["state", "--clinic", str(clinic), "--patient",
                                              str(uuid.uuid4())], env=env)
    assert unknown.exit_code != 0
    assert "Traceback" not in unknown.output


def test_api_state_confirmation_and_exports_agree(client: TestClient, box: Container) -> None:
    clinic = clinics.create_clinic(box.service_uow(ME), ClinicCreate(name="API state")).id
    other = clinics.create_clinic(box.service_uow(ME), ClinicCreate(name="API other")).id
    pid, revocation = _scenario(box, clinic)
    dpo = headers(box, clinic, "dpo")

    state = client.get(f"/patients/{pid}/consent-state", headers=headers(box, clinic,
                                                                          "receptionist"))
    assert state.status_code == 200, state.text
    assert [(s["purpose"], s["state"], s["decision_id"]) for s in state.json()] == [
        ("marketing", "withdrawn", str(revocation))]
    is_problem(client.get(f"/patients/{pid}/consent-state", headers=headers(box, other, "dpo")),
               404, "not_found")

    patient = client.get(f"/patients/{pid}", headers=dpo).json()
    assert (patient["data_consent_status"], patient["data_consent_version"]) == (
        "withdrawn", None)
    confirmation = client.get(f"/lgpd/patients/{pid}/confirmation", headers=dpo).json()
    assert not any(b["purpose"] == "marketing" for b in confirmation["legal_bases"])
    assert [w["purpose"] for w in confirmation["withdrawn"]] == ["marketing"]

    doc = client.get(f"/lgpd/patients/{pid}/export", headers=dpo).json()
    assert doc["patient"]["data_consent_status"] == "withdrawn"
    assert [(s["purpose"], s["state"]) for s in doc["consent_state"]] == [
        ("marketing", "withdrawn")]
    bundle = client.get(f"/lgpd/patients/{pid}/export", headers=dpo,
                        params={"format": "fhir"}).json()
    statuses = [e["resource"]["status"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == "Consent"]
    assert sorted(statuses) == ["inactive", "inactive", "inactive"]  # v1, v2, revocation

    findings = client.get("/consents/compliance", headers=dpo).json()
    assert [f for f in findings if f["patient_id"] == str(pid)] == []
