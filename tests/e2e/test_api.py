"""The HTTP API end to end (in-process ASGI client on the test database)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from neonpro.adapters.auth import hash_password
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.ports_auth import IssuedToken
from neonpro.domain.schemas.clinic import ClinicCreate, StaffUserCreate
from neonpro.domain.vocabulary import ClinicRole
from neonpro.services import auth, clinics
from tests.e2e.api_helpers import headers, is_problem
from tests.valid import cpf

SP = ZoneInfo("America/Sao_Paulo")
SYSTEM = Actor(uuid.uuid4(), "system")


@pytest.fixture(scope="module")
def two_clinics(box: Container) -> tuple[uuid.UUID, uuid.UUID]:
    a = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="API A")).id
    b = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="API B")).id
    return a, b


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}  # nothing more for strangers
    metrics = client.get("/metrics").text
    assert "neonpro_http_requests_total" in metrics
    assert "neonpro_db_pool_size" in metrics


def test_missing_or_bad_token_is_401(client: TestClient) -> None:
    is_problem(client.get("/patients"), 401, "unauthenticated")
    bad = client.get("/patients", headers={"Authorization": "Bearer not-a-token"})
    assert bad.headers["www-authenticate"] == "Bearer"
    is_problem(bad, 401, "unauthenticated")


def test_signed_tokens_for_no_clinic_or_with_malformed_claims_are_401(
        client: TestClient, box: Container, two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    """A token signed with the right key still names a clinic that must exist (not the nil
    clinic of the system chain), and every claim must be a string of its kind."""
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    import jwt  # noqa: PLC0415

    secret = box.settings.jwt_secret.get_secret_value()  # type: ignore[union-attr]
    now = datetime.now(UTC)
    base = {"sub": str(uuid.uuid4()), "clinic_id": str(two_clinics[0]), "role": "admin",
            "iss": box.settings.jwt_issuer, "iat": now, "nbf": now,
            "exp": now + timedelta(minutes=5), "jti": uuid.uuid4().hex}

    def sent(**claims: object) -> object:
        token = jwt.encode({**base, **claims}, secret, algorithm="HS256")
        return client.get("/patients", headers={"Authorization": f"Bearer {token}"})

    # a signed token is not enough: it must have been issued (its session recorded)
    is_problem(sent(), 401, "unauthenticated")
    auth.open_development_session(box.service_uow(SYSTEM), IssuedToken(
        "", base["jti"], uuid.UUID(base["sub"]), two_clinics[0], ClinicRole.ADMIN,
        base["exp"]))
    assert sent().status_code == 200  # type: ignore[attr-defined]
    is_problem(sent(jti=uuid.uuid4().hex), 401, "unauthenticated")  # never issued
    for claims in ({"clinic_id": str(uuid.uuid4())}, {"clinic_id": str(uuid.UUID(int=0))},
                   {"clinic_id": [str(two_clinics[0])]}, {"clinic_id": {"a": 1}},
                   {"sub": [base["sub"]]}, {"role": ["admin"]}, {"role": "root"},
                   {"jti": 7}, {"clinic_id": 12345}, {"sub": None}):
        is_problem(sent(**claims), 401, "unauthenticated")
    for path in ("/audit/events", "/audit/verify"):  # the system chain stays out of reach
        token = jwt.encode({**base, "clinic_id": str(uuid.UUID(int=0)), "role": "dpo"},
                           secret, algorithm="HS256")
        is_problem(client.get(path, headers={"Authorization": f"Bearer {token}"}), 401,
                   "unauthenticated")


def test_patient_lifecycle(client: TestClient, box: Container,
                           two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, _ = two_clinics
    admin = headers(box, a, "admin")
    number = cpf(901)
    created = client.post("/patients", headers=admin, json={
        "full_name": "Helena Araújo", "cpf": number, "phone_primary": "(81) 99876-5432",
        "patient_notes": "hipertensa"})
    assert created.status_code == 201, created.text
    patient = created.json()
    assert patient["cpf"] == number
    assert patient["patient_notes"] == "hipertensa"
    pid = patient["id"]
    assert client.get(f"/patients/{pid}", headers=admin).json()["full_name"] == "Helena Araújo"
    changed = client.patch(f"/patients/{pid}", headers=admin, json={"version": 1, "city": "Recife"})
    assert changed.json()["version"] == 2
    is_problem(client.patch(f"/patients/{pid}", headers=admin,
                            json={"version": 1, "city": "Olinda"}), 409, "stale_version")
    dup = is_problem(client.post("/patients", headers=admin,
                                 json={"full_name": "Outra", "cpf": number}), 409, "conflict")
    assert number not in str(dup)
    found = client.get("/patients", headers=admin, params={"name": "helena araujo"}).json()
    assert [p["id"] for p in found["items"]] == [pid]
    keyset = client.get("/patients", headers=admin, params={"cursor": "", "limit": 1})
    assert keyset.status_code == 200
    assert client.delete(f"/patients/{pid}", headers=admin,
                         params={"version": 2}).status_code == 204
    is_problem(client.get(f"/patients/{pid}", headers=admin), 404, "not_found")


def test_validation_errors_name_fields_and_never_echo(
    client: TestClient, box: Container, two_clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    admin = headers(box, two_clinics[0], "admin")
    body = is_problem(client.post("/patients", headers=admin, json={
        "full_name": "X", "cpf": "111.444.777-36", "email": "secret.person@"}),
        422, "validation_failed")
    fields = {e["field"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert {"cpf", "email"} <= fields
    assert "777" not in str(body)
    assert "secret.person" not in str(body)
    is_problem(client.post("/patients", headers=admin, json={"full_name": "Y", "shoe": 42}),
               422, "validation_failed")
    malformed = client.post("/patients", headers={**admin, "content-type": "application/json"},
                            content=b"{not json")
    is_problem(malformed, 400, "malformed_body")
    is_problem(client.get("/patients", headers=admin, params={"cursor": "%%%"}),
               422, "validation_failed")
    huge = client.post("/patients", headers=admin,
                       json={"full_name": "Z", "patient_notes": "a" * 70_000})
    is_problem(huge, 413, "body_too_large")


def test_roles_decide_operations(client: TestClient, box: Container,
                                 two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, _ = two_clinics
    admin, desk, dpo = (headers(box, a, r) for r in ("admin", "receptionist", "dpo"))
    pid = client.post("/patients", headers=admin, json={
        "full_name": "Nota Clínica", "patient_notes": "diagnóstico"}).json()["id"]
    seen = client.get(f"/patients/{pid}", headers=desk).json()
    assert seen["patient_notes"] is None
    assert client.get(f"/patients/{pid}", headers=dpo).json()["patient_notes"] is None
    is_problem(client.patch(f"/patients/{pid}", headers=desk,
                            json={"version": 1, "patient_notes": "x"}), 403, "forbidden")
    is_problem(client.delete(f"/patients/{pid}", headers=desk), 403, "forbidden")
    is_problem(client.post("/patients", headers=dpo, json={"full_name": "No"}), 403, "forbidden")
    is_problem(client.get("/audit/events", headers=desk), 403, "forbidden")
    assert client.get("/audit/events", headers=dpo).status_code == 200


def test_a_token_for_clinic_a_never_reaches_clinic_b(
    client: TestClient, box: Container, two_clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = two_clinics
    in_b = client.post("/patients", headers=headers(box, b, "admin"),
                       json={"full_name": "Paciente de B"}).json()["id"]
    admin_a = headers(box, a, "admin")
    is_problem(client.get(f"/patients/{in_b}", headers=admin_a), 404, "not_found")
    is_problem(client.patch(f"/patients/{in_b}", headers=admin_a,
                            json={"version": 1, "city": "X"}), 404, "not_found")
    names = [p["full_name"] for p in client.get(
        "/patients", headers=admin_a, params={"limit": 200, "active": "true"}).json()["items"]]
    assert "Paciente de B" not in names


def _day(offset: int = 10) -> date:
    day = date.today() + timedelta(days=offset)  # noqa: DTZ011
    return day + timedelta(days=(0 - day.weekday()) % 7)  # a Monday


def test_booking_flow(client: TestClient, box: Container,
                      two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, _ = two_clinics
    admin, desk, doc = (headers(box, a, r) for r in ("admin", "receptionist", "professional"))
    prof = client.post("/professionals", headers=admin, json={
        "full_name": "Dr. API", "work_start_time": "08:00", "work_end_time": "18:00",
        "appointment_buffer_minutes": 0}).json()["id"]
    svc = client.post("/service-types", headers=admin,
                      json={"name": "Consulta", "duration_minutes": 30}).json()["id"]
    pid = client.post("/patients", headers=desk, json={"full_name": "Agenda"}).json()["id"]
    start = datetime.combine(_day(), time(9), tzinfo=SP)
    slot = {"patient_id": pid, "professional_id": prof, "service_type_id": svc,
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(minutes=30)).isoformat()}
    booked = client.post("/appointments", headers=desk, json=slot)
    assert booked.status_code == 201, booked.text
    appt = booked.json()
    is_problem(client.post("/appointments", headers=desk, json=slot), 409, "double_booking")
    early = {**slot, "start_time": start.replace(hour=6).isoformat(),
             "end_time": start.replace(hour=6, minute=30).isoformat()}
    is_problem(client.post("/appointments", headers=desk, json=early), 422, "booking_rule")
    moved = client.post(f"/appointments/{appt['id']}/reschedule", headers=desk, json={
        "version": 1, "start_time": start.replace(hour=10).isoformat(),
        "end_time": start.replace(hour=10, minute=30).isoformat()}).json()
    assert moved["rescheduled_from_id"] == appt["id"]
    mid = moved["id"]
    step = client.post(f"/appointments/{mid}/confirm", headers=desk, json={"version": 1}).json()
    step = client.post(f"/appointments/{mid}/check-in", headers=desk,
                       json={"version": step["version"]}).json()
    is_problem(client.post(f"/appointments/{mid}/start", headers=desk,
                           json={"version": step["version"]}), 403, "forbidden")
    step = client.post(f"/appointments/{mid}/start", headers=doc,
                       json={"version": step["version"]}).json()
    done = client.post(f"/appointments/{mid}/complete", headers=doc,
                       json={"version": step["version"]})
    assert done.json()["status"] == "completed"
    is_problem(client.post(f"/appointments/{mid}/cancel", headers=desk,
                           json={"version": done.json()["version"], "reason": "patient"}),
               409, "invalid_transition")
    cal = client.get("/calendar", headers=desk, params={
        "start": start.replace(hour=0).isoformat(), "end": start.replace(hour=23).isoformat()})
    assert {e["id"]: e["status"] for e in cal.json()} == {appt["id"]: "rescheduled",
                                                          mid: "completed"}
    assert {e["patient_name"] for e in cal.json()} == {"Agenda"}


def test_consents_over_http(client: TestClient, box: Container,
                            two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, _ = two_clinics
    desk, dpo = headers(box, a, "receptionist"), headers(box, a, "dpo")
    pid = client.post("/patients", headers=desk, json={"full_name": "Consente"}).json()["id"]
    grant = client.post("/consents", headers=desk, json={
        "patient_id": pid, "purpose": "marketing", "terms_version": "m1",
        "terms_hash": "a" * 64, "collection_method": "online_form"})
    assert grant.status_code == 201, grant.text
    revoked = client.post(f"/consents/{grant.json()['id']}/revoke", headers=desk)
    assert revoked.json()["status"] == "revoked"
    history = client.get(f"/patients/{pid}/consents", headers=dpo).json()
    assert [c["status"] for c in history] == ["granted", "revoked"]
    assert client.get("/consents/compliance", headers=dpo).status_code == 200


def test_login_throttle_and_logout(client: TestClient, box: Container,
                                   two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, _ = two_clinics
    email = f"staff{uuid.uuid4().hex[:8]}@clinica.example"
    clinics.add_staff_member(box.service_uow(SYSTEM), a, StaffUserCreate(
        email=email, display_name="Staff", password_hash=hash_password("correct horse")),
        ClinicRole.RECEPTIONIST)
    ok = client.post("/auth/login", json={"email": email, "password": "correct horse"})
    assert ok.status_code == 200, ok.text
    token = ok.json()["access_token"]
    assert ok.json()["role"] == "receptionist"
    me = {"Authorization": f"Bearer {token}"}
    assert client.get("/clinic", headers=me).json()["id"] == str(a)
    assert client.post("/auth/logout", headers=me).status_code == 204
    # signed out: the very token is refused from the next request on
    is_problem(client.get("/clinic", headers=me), 401, "unauthenticated")
    wrong = client.post("/auth/login", json={"email": email, "password": "nope"})
    is_problem(wrong, 401, "unauthenticated")
    unknown = client.post("/auth/login", json={"email": "who@x.example", "password": "nope"})
    assert unknown.json() == wrong.json()  # no account enumeration
    for _ in range(box.settings.login_max_failures - 1):
        last = client.post("/auth/login", json={"email": email, "password": "nope"})
    is_problem(last, 401, "unauthenticated")
    # the pair's attempts are spent: the right password waits like a wrong one, and like an
    # e-mail nobody has, before any password is checked (no oracle for the guesser)
    right = client.post("/auth/login", json={"email": email, "password": "correct horse"})
    again = client.post("/auth/login", json={"email": email, "password": "nope"})
    for _ in range(box.settings.login_max_failures + 1):
        nobody = client.post("/auth/login", json={"email": "who@x.example", "password": "x"})
    for answer in (right, again, nobody):
        is_problem(answer, 429, "too_many_attempts")
        assert int(answer.headers["Retry-After"]) > 0
    assert right.json() == again.json() == nobody.json()
    events = client.get("/audit/events", headers=headers(box, a, "dpo"),
                        params={"action": "LOGIN_FAILED"}).json()["items"]
    assert len(events) >= box.settings.login_max_failures


def test_telemedicine_needs_consent_428(client: TestClient, box: Container,
                                        two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, _ = two_clinics
    admin, doc = headers(box, a, "admin"), headers(box, a, "professional")
    prof = client.post("/professionals", headers=admin, json={
        "full_name": "Dr. Tele", "appointment_buffer_minutes": 0,
        "can_work_weekends": True}).json()["id"]
    pid = client.post("/patients", headers=admin, json={"full_name": "Tele"}).json()["id"]
    start = datetime.combine(_day(20), time(15), tzinfo=SP)
    appt = client.post("/appointments", headers=admin, json={
        "patient_id": pid, "professional_id": prof, "appointment_type": "telemedicine",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(minutes=20)).isoformat()}).json()["id"]
    is_problem(client.post(f"/appointments/{appt}/telemedicine/start", headers=doc),
               428, "consent_required")
    client.post("/consents", headers=admin, json={
        "patient_id": pid, "purpose": "telemedicine", "terms_version": "t1",
        "terms_hash": "b" * 64, "collection_method": "online_form"})
    started = client.post(f"/appointments/{appt}/telemedicine/start", headers=doc)
    assert started.status_code == 201, started.text
    session = started.json()["session_id"]
    assert client.post(f"/appointments/{appt}/telemedicine/join", headers=doc, json={
        "session_id": session, "participant": "patient"}).status_code == 204
    assert client.post(f"/appointments/{appt}/telemedicine/end", headers=doc,
                       json={"session_id": session}).status_code == 204


def test_erasure_over_http(client: TestClient, box: Container,
                           two_clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, _ = two_clinics
    admin, dpo, desk = (headers(box, a, r) for r in ("admin", "dpo", "receptionist"))
    pid = client.post("/patients", headers=admin, json={
        "full_name": "Esquecer", "patient_notes": "prontuário"}).json()["id"]
    is_problem(client.get(f"/lgpd/patients/{pid}/erasure", headers=desk), 403, "forbidden")
    plan = client.get(f"/lgpd/patients/{pid}/erasure", headers=dpo).json()
    assert {d["category"]: d["action"] for d in plan}["clinical"] == "block"
    done = client.post(f"/lgpd/patients/{pid}/erasure", headers=dpo)
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "blocked"
    is_problem(client.get(f"/patients/{pid}", headers=admin), 404, "not_found")
