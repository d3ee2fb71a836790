"""Legal-hold reads of blocked records over HTTP and the CLI (issue 13, defect 4): DPO and
admin only, with a justification kept encrypted in the audit trail, which still verifies."""

from __future__ import annotations

import json
import uuid

import psycopg
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from neonpro.adapters.db.audit import seal_pending, verify_chains
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.entrypoints.cli import app as cli_app  # noqa: F401  (attaches the commands)
from neonpro.entrypoints.cli import lgpd as lgpd_cli
from neonpro.services import clinics, erasure, patients
from tests.e2e.api_helpers import as_member, headers, is_problem, members, one_line
from tests.sessions import service_session

SYSTEM = Actor(uuid.uuid4(), "system")
ADMIN = Actor(uuid.uuid4(), "admin")
NOTE = "asma grave, em acompanhamento"
REASON = "Ordem judicial 0001234-55.2026.8.26.0100 (processo trabalhista)"


def _world(box: Container, name: str) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A clinic, a patient blocked by an erasure (clinical record kept) and a plain one."""
    clinic = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name=name)).id
    held = patients.register_patient(box.uow(clinic, ADMIN), PatientCreate(
        full_name="Paciente Bloqueada", patient_notes=NOTE)).id
    erasure.erase_patient(box.admin_uow(clinic, ADMIN), held)
    plain = patients.register_patient(box.uow(clinic, ADMIN), PatientCreate(
        full_name="Paciente Comum")).id
    return clinic, held, plain


def _hold_events(box: Container, clinic: uuid.UUID) -> list[tuple[str, str, dict[str, str]]]:
    with service_session(box.database, SYSTEM.id) as s:
        rows = s.execute(text(
            "SELECT action, actor_role, details FROM audit_events WHERE clinic_id = :c "
            "AND action IN ('LEGAL_HOLD_READ', 'PERMISSION_DENIED') ORDER BY occurred_at"),
            {"c": clinic}).all()
    return [(r.action, r.actor_role, r.details) for r in rows]


def test_dpo_and_admin_read_a_blocked_record_with_a_justification(
        client: TestClient, box: Container) -> None:
    clinic, held, plain = _world(box, "Hold API A")
    other, other_held, _ = _world(box, "Hold API B")
    dpo, admin, desk, doctor = (headers(box, clinic, r) for r in
                                ("dpo", "admin", "receptionist", "professional"))
    url = f"/lgpd/patients/{held}/legal-hold/read"

    for who in (dpo, admin):
        read = client.post(url, headers=who, json={"justification": REASON})
        assert read.status_code == 200, read.text
        body = read.json()
        assert body["patient"]["id"] == str(held)
        assert body["patient"]["patient_notes"] == NOTE
        assert body["patient"]["blocked_at"] is not None
    # the ordinary API still does not see it
    is_problem(client.get(f"/patients/{held}", headers=admin), 404, "not_found")

    # a stated justification is required, bounded
    is_problem(client.post(url, headers=dpo), 422, "validation_failed")
    is_problem(client.post(url, headers=dpo, json={}), 422, "validation_failed")
    for bad in ("", "   ", "curta", "x" * 1001):
        problem = is_problem(client.post(url, headers=dpo, json={"justification": bad}),
                             422, "validation_failed")
        assert problem["errors"] == [{"field": "justification",
                                      "reason": problem["errors"][0]["reason"]}]  # type: ignore[index]
    # every other role is refused
    for who in (desk, doctor):
        is_problem(client.post(url, headers=who, json={"justification": REASON}), 403,
                   "forbidden")
    # another clinic's blocked patient: not found, whoever asks
    is_problem(client.post(f"/lgpd/patients/{other_held}/legal-hold/read", headers=dpo,
                           json={"justification": REASON}), 404, "not_found")
    is_problem(client.post(url, headers=headers(box, other, "dpo"),
                           json={"justification": REASON}), 404, "not_found")
    # a patient who is not blocked is read the ordinary way: a clear conflict
    is_problem(client.post(f"/lgpd/patients/{plain}/legal-hold/read", headers=dpo,
                           json={"justification": REASON}), 409, "not_blocked")
    is_problem(client.post(f"/lgpd/patients/{uuid.uuid4()}/legal-hold/read", headers=dpo,
                           json={"justification": REASON}), 404, "not_found")
    # an Idempotency-Key does not turn a read into a replay: each read is audited afresh
    keyed = {**dpo, "Idempotency-Key": "hold-read-1"}
    for _ in range(2):
        assert client.post(url, headers=keyed, json={"justification": REASON}).status_code == 200
    assert "Idempotent-Replayed" not in client.post(
        url, headers=keyed, json={"justification": REASON}).headers

    events = _hold_events(box, clinic)
    reads = [(role, details) for action, role, details in events
             if action == "LEGAL_HOLD_READ"]
    assert [role for role, _ in reads] == ["dpo", "admin", "dpo", "dpo", "dpo"]
    for _, details in reads:
        # the justification is free text: encrypted in the trail, readable with the keys
        assert REASON not in json.dumps(details)
        assert "0001234" not in json.dumps(details)
        assert erasure.reveal_justification(box.cipher, details) == REASON
    assert not any(action == "LEGAL_HOLD_READ" for action, *_ in _hold_events(box, other))
    seal_pending(box.database, box.keyring, SYSTEM)
    reports = verify_chains(box.database, SYSTEM, box.keyring, clinic)
    assert reports
    assert all(r.ok for r in reports), [(r.broken_at, r.reason) for r in reports]


def test_the_openapi_documents_the_legal_hold_read(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/lgpd/patients/{patient_id}/legal-hold/read"]["post"]
    assert op["tags"] == ["lgpd"]
    assert "Idempotency-Key" not in [p["name"] for p in op.get("parameters", [])]


def test_cli_legal_hold_read(cli_env: tuple[dict[str, str], Container]) -> None:
    env, box = cli_env
    try:
        clinic, held, plain = _world(box, "Hold CLI")
        staff = members(box, clinic)
    finally:
        box.close()
    runner = CliRunner()

    def run(*args: str) -> object:
        return runner.invoke(lgpd_cli.app, as_member(["legal-hold-read", *args], staff),
                             env=env)

    user = str(uuid.uuid4())
    base = ["--clinic", str(clinic), "--user", user]
    done = run(str(held), *base, "--role", "dpo", "--justification", REASON)
    assert done.exit_code == 0, done.output  # type: ignore[attr-defined]
    record = json.loads(done.stdout)  # type: ignore[attr-defined]
    assert record["patient"]["patient_notes"] == NOTE

    for args, says in (
        ([str(held), *base, "--role", "receptionist", "--justification", REASON],
         "may not read"),
        ([str(held), *base, "--role", "professional", "--justification", REASON],
         "may not read"),
        ([str(held), *base, "--role", "admin", "--justification", "   "], "justification"),
        ([str(plain), *base, "--role", "admin", "--justification", REASON], "not blocked"),
        ([str(held), "--clinic", str(uuid.uuid4()), "--user", user, "--role", "dpo",
          "--justification", REASON], "not found"),
    ):
        refused = run(*args)
        assert refused.exit_code == 1, refused.output  # type: ignore[attr-defined]
        assert says in refused.stderr  # type: ignore[attr-defined]
        assert "Traceback" not in refused.output  # type: ignore[attr-defined]
        one_line(refused.stderr)  # type: ignore[attr-defined]
    stranger = runner.invoke(lgpd_cli.app, ["legal-hold-read", str(held), *base, "--role",
                                            "dpo", "--justification", REASON], env=env)
    assert stranger.exit_code == 1  # type: ignore[attr-defined]  (no member of the clinic)
    assert "is not an active dpo" in stranger.stderr  # type: ignore[attr-defined]
    with psycopg.connect(env["NEONPRO_DATABASE_URL"].replace("+psycopg", "")) as conn:
        refused_events = conn.execute(
            "SELECT count(*) FROM audit_events WHERE clinic_id = %s AND actor_id = %s "
            "AND action = 'PERMISSION_DENIED'", (clinic, uuid.UUID(user))).fetchone()
    assert refused_events == (1,)  # acting as someone one is not is a security event
    missing = run(str(held), *base, "--role", "dpo")
    assert missing.exit_code == 2  # type: ignore[attr-defined]  (usage: --justification)
