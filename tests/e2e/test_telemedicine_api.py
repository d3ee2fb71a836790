"""Telemedicine over HTTP: the consent gate at every join, and sessions scoped to their
appointment and clinic (issue 13, defect 3)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.services import clinics
from tests.e2e.api_helpers import headers, is_problem

SP = ZoneInfo("America/Sao_Paulo")
SYSTEM = Actor(uuid.uuid4(), "system")


@pytest.fixture(scope="module")
def two_clinics(box: Container) -> tuple[uuid.UUID, uuid.UUID]:
    a = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Tele A")).id
    b = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Tele B")).id
    return a, b


def _remote_appointment(client: TestClient, admin: dict[str, str]) -> tuple[str, str]:
    """A telemedicine appointment (its patient, its id) with a professional of its own."""
    prof = client.post("/professionals", headers=admin, json={
        "full_name": "Dra. Remota", "appointment_buffer_minutes": 0,
        "can_work_weekends": True}).json()["id"]
    pid = client.post("/patients", headers=admin, json={"full_name": "Remoto"}).json()["id"]
    day = date.today() + timedelta(days=12)  # noqa: DTZ011
    start = datetime.combine(day, time(14), tzinfo=SP)
    booked = client.post("/appointments", headers=admin, json={
        "patient_id": pid, "professional_id": prof, "appointment_type": "telemedicine",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(minutes=20)).isoformat()})
    assert booked.status_code == 201, booked.text
    return pid, booked.json()["id"]


def _grant(client: TestClient, admin: dict[str, str], pid: str) -> str:
    granted = client.post("/consents", headers=admin, json={
        "patient_id": pid, "purpose": "telemedicine", "terms_version": "t1",
        "terms_hash": "c" * 64, "collection_method": "online_form"})
    assert granted.status_code == 201, granted.text
    return str(granted.json()["id"])


def _start(client: TestClient, appt: str, doc: dict[str, str]) -> str:
    started = client.post(f"/appointments/{appt}/telemedicine/start", headers=doc)
    assert started.status_code == 201, started.text
    return str(started.json()["session_id"])


def test_join_after_revocation_is_428_and_audited(
        client: TestClient, box: Container, two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, _ = two_clinics
    admin, dpo = headers(box, a, "admin"), headers(box, a, "dpo")
    doctor = uuid.uuid4()
    doc = headers(box, a, "professional", doctor)
    pid, appt = _remote_appointment(client, admin)
    consent = _grant(client, admin, pid)
    session = _start(client, appt, doc)
    join = {"session_id": session, "participant": "patient"}
    assert client.post(f"/appointments/{appt}/telemedicine/join", headers=doc,
                       json=join).status_code == 204
    revoked = client.post(f"/consents/{consent}/revoke", headers=admin)
    assert revoked.status_code == 200, revoked.text
    refused = client.post(f"/appointments/{appt}/telemedicine/join", headers=doc, json=join)
    is_problem(refused, 428, "consent_required")
    # the refusal is an audit event of the refused actor, sealed into the clinic's chain
    box.seal_audit()
    events = client.get("/audit/events", headers=dpo, params={
        "action": "PERMISSION_DENIED", "actor_id": str(doctor)}).json()["items"]
    assert [(e["status"], e["details"]) for e in events] == [
        ("blocked", {"error": "consent_required"})]
    assert events[0]["seq"] is not None
    assert events[0]["request_id"] == refused.headers["x-request-id"]
    assert client.get("/audit/verify", headers=dpo).json()["ok"] is True
    # a new grant: the latest decision wins, the patient may join again
    _grant(client, admin, pid)
    assert client.post(f"/appointments/{appt}/telemedicine/join", headers=doc,
                       json=join).status_code == 204


def test_unknown_and_foreign_sessions_are_404(
        client: TestClient, box: Container, two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, b = two_clinics
    admin_a, doc_a = headers(box, a, "admin"), headers(box, a, "professional")
    admin_b, doc_b = headers(box, b, "admin"), headers(box, b, "professional")
    pid, appt = _remote_appointment(client, admin_a)
    _grant(client, admin_a, pid)
    never = str(uuid.uuid4())
    for step, body in (("join", {"session_id": never, "participant": "patient"}),
                       ("leave", {"session_id": never, "participant": "patient"}),
                       ("recording-consent", {"session_id": never, "granted": False}),
                       ("end", {"session_id": never})):
        is_problem(client.post(f"/appointments/{appt}/telemedicine/{step}", headers=doc_a,
                               json=body), 404, "not_found")
    session = _start(client, appt, doc_a)
    their_pid, theirs = _remote_appointment(client, admin_b)
    _grant(client, admin_b, their_pid)
    join = {"session_id": session, "participant": "patient"}
    # clinic B learns nothing of A's session: not through A's appointment id, nor its own
    first = client.post(f"/appointments/{appt}/telemedicine/join", headers=doc_b, json=join)
    second = client.post(f"/appointments/{theirs}/telemedicine/join", headers=doc_b, json=join)
    is_problem(first, 404, "not_found")
    is_problem(second, 404, "not_found")
    assert client.post(f"/appointments/{appt}/telemedicine/join", headers=doc_a,
                       json=join).status_code == 204
