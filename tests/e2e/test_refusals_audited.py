"""Refusals are security events (issue 13, defect 9): every 403 of a role check leaves an
audit event, durably (the refused request's work rolls back, the event does not), that
verifies in the clinic's chain; an allowed role leaves none.

The routes and their roles are read from the application itself (each route's role-check
dependency carries its allowed roles), not listed here: a route added later is covered."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import text

from neonpro.adapters.db.audit import verify_chains
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import Forbidden
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.vocabulary import ClinicRole
from neonpro.entrypoints.api.app import create_app
from neonpro.entrypoints.api.deps import EVERYONE, OVERSIGHT, Caller, caller_with
from neonpro.services import clinics
from tests.e2e.api_helpers import headers, is_problem
from tests.sessions import tenant_session

SYSTEM = Actor(uuid.uuid4(), "system")
Denial = dict[str, Any]


def _roles(dependant: Any) -> frozenset[ClinicRole] | None:
    for dep in dependant.dependencies:
        found = getattr(dep.call, "roles", None)
        if found is None:
            found = _roles(dep)
        if found is not None:
            return frozenset(found)
    return None


def _restricted(app: FastAPI) -> list[tuple[APIRoute, str, frozenset[ClinicRole]]]:
    """(route, method, allowed roles) of every route some role may not use."""
    table = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        allowed = _roles(route.dependant)
        if allowed is not None and allowed != EVERYONE:
            table.extend((route, method, allowed) for method in sorted(route.methods))
    return table


def _url(route: APIRoute) -> str:
    path = route.path
    for name in route.param_convertors:
        path = path.replace("{" + name + "}", str(uuid.uuid4()))
    return path


def _denials(box: Container, clinic: uuid.UUID, actor: uuid.UUID) -> list[Denial]:
    with tenant_session(box.database, clinic, SYSTEM.id) as s:
        rows = s.execute(text(
            "SELECT actor_role, resource_type, resource_id, patient_ref IS NOT NULL AS ref, "
            "status, risk_level, details, seq FROM audit_events "
            "WHERE actor_id = :a AND action = 'PERMISSION_DENIED'"), {"a": actor}).mappings()
        return [dict(r) for r in rows]


@pytest.fixture(scope="module")
def clinic(box: Container) -> uuid.UUID:
    return clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Recusas")).id


@pytest.fixture(scope="module")
def app_client(box: Container) -> Iterator[tuple[FastAPI, TestClient]]:
    app = create_app(box)

    @app.get("/test/refused-in-route")
    def refused_in_route(caller: Any = Depends(caller_with(EVERYONE))) -> None:  # noqa: B008
        raise Forbidden("refused by a check of the route's own")

    @app.get("/test/refused-in-transaction")
    def refused_in_transaction(caller: Caller = Depends(caller_with(EVERYONE))) -> None:  # noqa: B008
        with caller.uow():
            raise Forbidden("refused inside a unit of work")

    with TestClient(app, raise_server_exceptions=False) as client:
        yield app, client


def test_the_permission_table_is_not_empty(app_client: tuple[FastAPI, TestClient]) -> None:
    app, _ = app_client
    families = {route.tags[0] for route, _, _ in _restricted(app)}
    # what issue 13 names (the audit trail, exports) and the rest of the oversight work
    assert {"audit", "lgpd", "consents", "patients", "appointments", "professionals",
            "service types", "telemedicine", "no-show risk"} <= families


def test_every_role_refusal_is_audited_and_verifies(
        app_client: tuple[FastAPI, TestClient], box: Container, clinic: uuid.UUID) -> None:
    app, client = app_client
    refused: list[tuple[uuid.UUID, str, str, frozenset[ClinicRole], APIRoute]] = []
    for route, method, allowed in _restricted(app):
        for role in sorted(set(ClinicRole) - allowed):
            user = uuid.uuid4()
            answer = client.request(method, _url(route), headers=headers(box, clinic, role, user),
                                    json={} if route.body_field is not None else None)
            is_problem(answer, 403, "forbidden")
            refused.append((user, role, f"{method} {route.path}", allowed, route))
    assert len(refused) > 50
    box.seal_audit()
    for user, role, attempted, allowed, route in refused:
        [event] = _denials(box, clinic, user)
        high = ClinicRole.DPO in allowed and allowed <= OVERSIGHT
        assert event == {
            "actor_role": role, "resource_type": route.tags[0],
            "resource_id": event["resource_id"], "ref": "{patient_id}" in route.path,
            "status": "blocked", "risk_level": "high" if high else "medium",
            "details": {"error": "forbidden", "attempted": attempted,
                        "allowed_roles": sorted(r.value for r in allowed)},
            "seq": event["seq"]}, attempted
        assert event["seq"] is not None  # sealed into the clinic's chain
        assert (event["resource_id"] is None) == ("_id}" not in route.path), attempted
    reports = verify_chains(box.database, SYSTEM, box.keyring, clinic)
    assert reports
    assert all(r.ok for r in reports), [r.as_dict() for r in reports if not r.ok]


def test_an_allowed_role_leaves_no_refusal(
        app_client: tuple[FastAPI, TestClient], box: Container, clinic: uuid.UUID) -> None:
    app, client = app_client
    for n, (route, method, allowed) in enumerate(_restricted(app)):
        ordered = sorted(allowed)
        role = ordered[n % len(ordered)]  # each allowed role in turn across the table
        user = uuid.uuid4()
        answer = client.request(method, _url(route), headers=headers(box, clinic, role, user),
                                json={} if route.body_field is not None else None)
        assert answer.status_code != 403, (method, route.path, role, answer.text)
        assert answer.status_code < 500, (method, route.path, role, answer.text)
        assert _denials(box, clinic, user) == [], (method, route.path, role)


def test_clinical_fields_refused_to_the_desk_are_audited(
        app_client: tuple[FastAPI, TestClient], box: Container, clinic: uuid.UUID) -> None:
    _, client = app_client
    desk_user = uuid.uuid4()
    desk = headers(box, clinic, "receptionist", desk_user)
    refused = client.post("/patients", headers=desk,
                          json={"full_name": "Recusado", "patient_notes": "segredo clínico"})
    is_problem(refused, 403, "forbidden")
    pid = client.post("/patients", headers=headers(box, clinic, "admin"),
                      json={"full_name": "Aceito"}).json()["id"]
    is_problem(client.patch(f"/patients/{pid}", headers=desk,
                            json={"version": 1, "internal_notes": "x"}), 403, "forbidden")
    events = sorted(_denials(box, clinic, desk_user), key=lambda e: e["details"]["attempted"])
    assert [(e["resource_type"], e["ref"], e["risk_level"], e["details"]) for e in events] == [
        ("patients", True, "medium", {"error": "forbidden",
                                      "attempted": "PATCH /patients/{patient_id}",
                                      "fields": ["internal_notes"]}),
        ("patients", False, "medium", {"error": "forbidden", "attempted": "POST /patients",
                                       "fields": ["patient_notes"]}),
    ]
    assert "segredo" not in str(events)


def test_a_403_raised_anywhere_is_audited_once(
        app_client: tuple[FastAPI, TestClient], box: Container, clinic: uuid.UUID) -> None:
    _, client = app_client
    in_route, in_tx = uuid.uuid4(), uuid.uuid4()
    is_problem(client.get("/test/refused-in-route",
                          headers=headers(box, clinic, "professional", in_route)),
               403, "forbidden")
    is_problem(client.get("/test/refused-in-transaction",
                          headers=headers(box, clinic, "professional", in_tx)),
               403, "forbidden")
    [route_event] = _denials(box, clinic, in_route)
    assert route_event["details"] == {"error": "forbidden",
                                      "attempted": "GET /test/refused-in-route"}
    [tx_event] = _denials(box, clinic, in_tx)  # the unit of work's, not a second one
    assert tx_event["details"] == {"error": "forbidden"}


def test_a_refused_write_with_an_idempotency_key_replays_its_403(
        app_client: tuple[FastAPI, TestClient], box: Container, clinic: uuid.UUID) -> None:
    """The refusal's own transaction is no part of the request's work: it does not mark the
    key's work done, and the kept 403 is what a retry gets."""
    _, client = app_client
    user = uuid.uuid4()
    desk = {**headers(box, clinic, "receptionist", user), "Idempotency-Key": str(uuid.uuid4())}
    body = {"full_name": "Dra. Nova"}
    first = client.post("/professionals", headers=desk, json=body)
    is_problem(first, 403, "forbidden")
    again = client.post("/professionals", headers=desk, json=body)
    is_problem(again, 403, "forbidden")
    assert again.headers.get("idempotent-replayed") == "true"
    assert len(_denials(box, clinic, user)) == 1


def test_a_refusal_never_marks_the_keys_work_done(
        app_client: tuple[FastAPI, TestClient], box: Container, clinic: uuid.UUID,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the refusal's transaction part of the request's claim, its commit would mark the
    key's work committed: with the answer then lost, a retry would hear the refused request
    was carried out (409 request_already_applied)."""
    from neonpro.entrypoints.api import idempotency  # noqa: PLC0415

    _, client = app_client
    admin = headers(box, clinic, "admin")
    prof = client.post("/professionals", headers=admin, json={
        "full_name": "Dra. Gate", "can_work_weekends": True}).json()["id"]
    pid = client.post("/patients", headers=admin, json={"full_name": "Sem Termo"}).json()["id"]
    start = datetime.combine(date.today() + timedelta(days=9), time(16),  # noqa: DTZ011
                             tzinfo=ZoneInfo("America/Sao_Paulo"))
    appt = client.post("/appointments", headers=admin, json={
        "patient_id": pid, "professional_id": prof, "appointment_type": "telemedicine",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(minutes=20)).isoformat()}).json()["id"]
    monkeypatch.setattr(idempotency.svc, "finish", lambda *_a, **_k: None)  # the answer is lost
    keys = []
    for role, path, body, status in (
            ("receptionist", "/professionals", {"full_name": "Dra. Perdida"}, 403),  # role
            ("professional", f"/appointments/{appt}/telemedicine/start", None, 428)):  # gate
        key = str(uuid.uuid4())
        answer = client.post(path, json=body, headers={
            **headers(box, clinic, role), "Idempotency-Key": key})
        assert answer.status_code == status, answer.text
        keys.append(key)
    with tenant_session(box.database, clinic, SYSTEM.id) as s:
        states = [s.execute(text(
            "SELECT state FROM idempotency_keys WHERE key_hash = :h"),
            {"h": hashlib.sha256(b"neonpro-idempotency-key\0" + k.encode()).digest()},
        ).scalar_one() for k in keys]
    assert "committed" not in states


def test_a_refusal_that_cannot_be_recorded_is_a_503(
        app_client: tuple[FastAPI, TestClient], box: Container, clinic: uuid.UUID,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Never an unrecorded refusal: the caller is still refused, and told to retry."""
    import psycopg  # noqa: PLC0415

    from neonpro.entrypoints.api import deps  # noqa: PLC0415

    def down(*_a: object, **_k: object) -> None:
        raise psycopg.OperationalError("server closed the connection")

    _, client = app_client
    monkeypatch.setattr(deps, "record_denial", down)  # how the role checks record
    desk = headers(box, clinic, "receptionist")
    is_problem(client.get("/audit/events", headers=desk), 503, "database_unavailable")
    is_problem(client.get("/test/refused-in-route", headers=desk), 503, "database_unavailable")
