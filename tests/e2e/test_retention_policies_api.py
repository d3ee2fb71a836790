"""Retention policies over HTTP and the CLI (issue 13, defect 5): create, list, retire, with
the legal floors checked, audited, admin and DPO only; the retention engine applies them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.entrypoints.cli import app as cli_app  # noqa: F401  (attaches the commands)
from neonpro.entrypoints.cli import lgpd as lgpd_cli
from neonpro.services import clinics, patients, retention
from tests.e2e.api_helpers import as_member, headers, is_problem, members, one_line
from tests.sessions import service_session

SYSTEM = Actor(uuid.uuid4(), "system")
URL = "/lgpd/retention-policies"
CLINICAL = {"data_category": "clinical", "trigger": "last_clinical_entry",
            "action": "anonymize", "legal_reference": "Lei 13.787/2018 art. 6"}


def _clinic(box: Container, name: str) -> uuid.UUID:
    return clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name=name)).id


def _events(box: Container, clinic: uuid.UUID) -> list[tuple[str, str, dict[str, object]]]:
    with service_session(box.database, SYSTEM.id) as s:
        rows = s.execute(text(
            "SELECT action, actor_role, details FROM audit_events WHERE clinic_id = :c "
            "AND resource_type = 'retention_policies' ORDER BY occurred_at"),
            {"c": clinic}).all()
    return [(r.action, r.actor_role, r.details) for r in rows]


def test_policies_are_created_listed_and_retired_within_the_law(
        client: TestClient, box: Container) -> None:
    clinic, other = _clinic(box, "Policies A"), _clinic(box, "Policies B")
    dpo, admin, desk, doctor = (headers(box, clinic, r) for r in
                                ("dpo", "admin", "receptionist", "professional"))

    created = client.post(URL, headers=dpo, json={**CLINICAL, "period_years": 20})
    assert created.status_code == 201, created.text
    policy = created.json()
    assert policy["period_days"] == 7305  # 20 years, leap days included
    assert policy["retired_at"] is None
    assert policy["created_by"] is not None

    # below the legal floor of its kind of record: 422 naming the floor
    for body, floor in (
        ({**CLINICAL, "trigger": "inactivity", "period_days": 7300}, "20 years"),
        ({**CLINICAL, "trigger": "inactivity", "period_years": 19}, "20 years"),
        ({"data_category": "audit", "trigger": "inactivity", "action": "delete",
          "period_years": 5, "legal_reference": "LGPD art. 16"}, "10 years"),
        ({"data_category": "identification", "trigger": "incident_closed",
          "action": "delete", "period_days": 365, "legal_reference": "ANPD"}, "5 years"),
    ):
        refused = is_problem(client.post(URL, headers=admin, json=body), 422,
                             "below_legal_floor")
        assert floor in str(refused["detail"])
        assert refused["errors"][0]["field"] == "period_days"  # type: ignore[index]
    # keeping is always allowed; other kinds of data have no floor
    kept = client.post(URL, headers=admin, json={**CLINICAL, "trigger": "inactivity",
                                                 "action": "keep", "period_days": 0})
    assert kept.status_code == 201, kept.text
    marketing = client.post(URL, headers=admin, json={
        "data_category": "marketing", "trigger": "consent_revoked", "action": "delete",
        "period_days": 30, "legal_reference": "LGPD art. 15 III"})
    assert marketing.status_code == 201, marketing.text
    # invalid input: 422 naming fields
    for bad in ({**CLINICAL}, {**CLINICAL, "period_days": 7305, "period_years": 20},
                {**CLINICAL, "period_days": -1}, {**CLINICAL, "data_category": "x",
                                                  "period_days": 7305}):
        is_problem(client.post(URL, headers=admin, json=bad), 422, "validation_failed")
    # one active policy per category and trigger
    is_problem(client.post(URL, headers=admin, json={**CLINICAL, "period_years": 25}), 409,
               "conflict")

    # other roles are refused
    for who in (desk, doctor):
        is_problem(client.post(URL, headers=who, json={**CLINICAL, "period_years": 30}), 403,
                   "forbidden")
        is_problem(client.get(URL, headers=who), 403, "forbidden")
        is_problem(client.post(f"{URL}/{policy['id']}/retire", headers=who), 403, "forbidden")

    # another clinic sees none of them and cannot retire them
    other_admin = headers(box, other, "admin")
    assert client.get(URL, headers=other_admin).json() == []
    is_problem(client.post(f"{URL}/{policy['id']}/retire", headers=other_admin), 404,
               "not_found")
    is_problem(client.post(f"{URL}/{uuid.uuid4()}/retire", headers=admin), 404, "not_found")

    # retiring keeps the history; a successor can then be created
    retired = client.post(f"{URL}/{policy['id']}/retire", headers=admin)
    assert retired.status_code == 200, retired.text
    assert retired.json()["retired_at"] is not None
    is_problem(client.post(f"{URL}/{policy['id']}/retire", headers=dpo), 409, "conflict")
    successor = client.post(URL, headers=admin, json={**CLINICAL, "period_years": 25})
    assert successor.status_code == 201, successor.text
    active = {p["id"] for p in client.get(URL, headers=dpo).json()}
    assert policy["id"] not in active
    assert successor.json()["id"] in active
    history = client.get(URL, headers=dpo, params={"include_retired": "true"}).json()
    assert {p["id"] for p in history} == active | {policy["id"]}

    events = _events(box, clinic)
    assert [(a, r) for a, r, _ in events] == [
        ("CREATE", "dpo"), ("CREATE", "admin"), ("CREATE", "admin"), ("UPDATE", "admin"),
        ("CREATE", "admin")]
    assert events[3][2]["retired"] is True
    assert all("legal_reference" not in d for *_, d in events)


def test_the_retention_engine_applies_a_policy_created_over_http(
        client: TestClient, box: Container) -> None:
    clinic = _clinic(box, "Policies Engine")
    admin = headers(box, clinic, "admin")
    me = Actor(uuid.uuid4(), "admin")
    idle = patients.register_patient(box.uow(clinic, me), PatientCreate(
        full_name="Paciente Inativo")).id
    created = client.post(URL, headers=admin, json={
        "data_category": "identification", "trigger": "inactivity", "action": "anonymize",
        "period_days": 365, "legal_reference": "LGPD art. 16"})
    assert created.status_code == 201, created.text
    pid = uuid.UUID(created.json()["id"])
    later = datetime.now(UTC) + timedelta(days=400)
    plan = retention.plan_retention(box, SYSTEM, clinic, now=later)
    assert [(i.policy_id, i.target) for i in plan] == [(pid, idle)]
    report = retention.apply_retention(box, SYSTEM, plan)
    assert report.by_outcome == {"anonymized": 1}

    # a retired policy is no longer applied
    again = patients.register_patient(box.uow(clinic, me), PatientCreate(
        full_name="Outro Inativo")).id
    assert [i.target for i in retention.plan_retention(box, SYSTEM, clinic, now=later)] == [
        again]
    assert client.post(f"{URL}/{pid}/retire", headers=admin).status_code == 200
    assert retention.plan_retention(box, SYSTEM, clinic, now=later) == []


def test_cli_policies(cli_env: tuple[dict[str, str], Container]) -> None:
    env, box = cli_env
    try:
        clinic = _clinic(box, "Policies CLI")
        idle = patients.register_patient(box.uow(clinic, SYSTEM), PatientCreate(
            full_name="Inativa Da Linha")).id
        staff = members(box, clinic)
    finally:
        box.close()
    runner = CliRunner()
    me = ["--clinic", str(clinic), "--user", str(uuid.uuid4())]

    def run(*args: str) -> object:
        return runner.invoke(lgpd_cli.app, as_member(list(args), staff), env=env)

    made = run("policies", "create", *me, "--role", "dpo", "--category", "identification",
               "--trigger", "inactivity", "--action", "anonymize", "--days", "0",
               "--legal-reference", "LGPD art. 16", "--json")
    assert made.exit_code == 0, made.output  # type: ignore[attr-defined]
    policy = json.loads(made.stdout)[0]  # type: ignore[attr-defined]

    for args, says in (
        (["--role", "admin", "--category", "clinical", "--trigger", "last_clinical_entry",
          "--action", "anonymize", "--years", "19"], "20 years"),
        (["--role", "receptionist", "--category", "marketing", "--trigger", "inactivity",
          "--action", "delete", "--days", "30"], "may not manage"),
        (["--role", "admin", "--category", "marketing", "--trigger", "inactivity",
          "--action", "delete"], "period"),
        (["--role", "admin", "--category", "identification", "--trigger", "inactivity",
          "--action", "delete", "--days", "10"], "retire it first"),
        (["--role", "admin", "--category", "marketing", "--trigger", "inactivity",
          "--action", "delete", "--days", "10", "--clinic", str(uuid.uuid4())], "not found"),
    ):
        refused = run("policies", "create", *me, "--legal-reference", "LGPD", *args)
        assert refused.exit_code == 1, refused.output  # type: ignore[attr-defined]
        assert says in refused.stderr  # type: ignore[attr-defined]
        one_line(refused.stderr)  # type: ignore[attr-defined]

    listed = run("policies", "list", *me, "--role", "admin", "--json")
    assert listed.exit_code == 0, listed.output  # type: ignore[attr-defined]
    assert [p["id"] for p in json.loads(listed.stdout)] == [policy["id"]]  # type: ignore[attr-defined]
    table = run("policies", "list", *me, "--role", "admin")
    assert table.exit_code == 0, table.output  # type: ignore[attr-defined]

    # `neonpro lgpd retention` (dry run) plans the created policy
    planned = run("retention", "--clinic", str(clinic), "--json")
    assert planned.exit_code == 0, planned.output  # type: ignore[attr-defined]
    assert [(i["policy_id"], i["target"]) for i in json.loads(planned.stdout)] == [  # type: ignore[attr-defined]
        (policy["id"], str(idle))]

    for args, says in ((["--role", "professional"], "may not manage"),
                       (["--role", "admin", "--clinic", str(uuid.uuid4())], "not found")):
        refused = run("policies", "retire", policy["id"], *me, *args)
        assert refused.exit_code == 1, refused.output  # type: ignore[attr-defined]
        assert says in refused.stderr  # type: ignore[attr-defined]
    gone = run("policies", "retire", policy["id"], *me, "--role", "admin", "--json")
    assert gone.exit_code == 0, gone.output  # type: ignore[attr-defined]
    assert json.loads(gone.stdout)[0]["retired_at"] is not None  # type: ignore[attr-defined]
    assert json.loads(run("retention", "--clinic", str(clinic), "--json").stdout) == []  # type: ignore[attr-defined]
    history = run("policies", "list", *me, "--role", "dpo", "--all", "--json")
    assert [p["id"] for p in json.loads(history.stdout)] == [policy["id"]]  # type: ignore[attr-defined]
