"""What the database itself refuses: cross-clinic references, double booking, audit edits."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from neonpro.adapters.db.database import Database
from neonpro.adapters.db.models import Appointment
from tests.factories import ACTOR, T0, seed_clinic, seed_world
from tests.sessions import service_session, tenant_session


@pytest.fixture(scope="module")
def two(db: Database) -> dict[str, dict[str, uuid.UUID]]:
    with service_session(db, ACTOR) as session:
        a, b = seed_clinic(session, "A"), seed_clinic(session, "B")
        seeded = {"a": seed_world(session, a), "b": seed_world(session, b)}
    return seeded  # noqa: RET504  (the seed commits when the session block ends)


def _book(session: Session, ids: dict[str, uuid.UUID], start_min: int, end_min: int,
          status: str = "scheduled", patient: uuid.UUID | None = None) -> None:
    session.execute(insert(Appointment).values(
        clinic_id=ids["clinics"], patient_id=patient or ids["patients"],
        professional_id=ids["professionals"], start_time=T0 + timedelta(days=7, minutes=start_min),
        end_time=T0 + timedelta(days=7, minutes=end_min), status=status, created_by=ACTOR,
    ))


def test_appointment_cannot_point_at_another_clinics_patient(
    db: Database, two: dict[str, dict[str, uuid.UUID]]
) -> None:
    with pytest.raises(IntegrityError, match="fk_appointments_clinic_id_patient_id_patients"), \
            service_session(db, ACTOR) as session:  # service role: RLS is not what stops it
        _book(session, two["a"], 900, 930, patient=two["b"]["patients"])


def test_double_booking_is_refused(db: Database, two: dict[str, dict[str, uuid.UUID]]) -> None:
    a = two["a"]
    with tenant_session(db, a["clinics"], ACTOR) as session:
        _book(session, a, 0, 60)
    with pytest.raises(IntegrityError, match="ex_appointments_no_overlap"), \
            tenant_session(db, a["clinics"], ACTOR) as session:
        _book(session, a, 30, 90)


def test_back_to_back_is_accepted(db: Database, two: dict[str, dict[str, uuid.UUID]]) -> None:
    a = two["a"]
    with tenant_session(db, a["clinics"], ACTOR) as session:
        _book(session, a, 120, 150)
        _book(session, a, 150, 180)
        _book(session, a, 90, 120)


@pytest.mark.parametrize("status", ["cancelled", "no_show", "rescheduled"])
def test_inactive_appointments_do_not_block(
    db: Database, two: dict[str, dict[str, uuid.UUID]], status: str
) -> None:
    a = two["a"]
    offset = {"cancelled": 300, "no_show": 400, "rescheduled": 500}[status]
    with tenant_session(db, a["clinics"], ACTOR) as session:
        _book(session, a, offset, offset + 60, status=status)
        _book(session, a, offset + 10, offset + 50)


def test_the_same_slot_in_another_clinic_is_independent(
    db: Database, two: dict[str, dict[str, uuid.UUID]]
) -> None:
    b = two["b"]
    with tenant_session(db, b["clinics"], ACTOR) as session:
        _book(session, b, 0, 60)


def test_end_must_follow_start(db: Database, two: dict[str, dict[str, uuid.UUID]]) -> None:
    a = two["a"]
    with pytest.raises(IntegrityError, match="ck_appointments_end_after_start"), \
            tenant_session(db, a["clinics"], ACTOR) as session:
        _book(session, a, 1000, 1000)


@pytest.mark.parametrize("kind", ["tenant", "service"])
@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET action = 'VIEW'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
])
def test_audit_events_refuse_changes(
    db: Database, two: dict[str, dict[str, uuid.UUID]], kind: str, statement: str
) -> None:
    a = two["a"]["clinics"]
    session_cm = tenant_session(db, a, ACTOR) if kind == "tenant" else service_session(db, ACTOR)
    with pytest.raises(DBAPIError, match="permission denied"), session_cm as session:
        session.execute(text(statement))


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET action = 'VIEW'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
])
def test_audit_trigger_refuses_even_with_a_grant(
    db: Database, two: dict[str, dict[str, uuid.UUID]], statement: str
) -> None:
    """Defence in depth: a mistaken GRANT does not open the audit table."""
    assert two
    with db.engine().connect() as conn:
        with conn.begin():
            conn.execute(text(f"SET LOCAL ROLE {db.roles.owner}"))
            conn.execute(text(
                f"GRANT UPDATE, DELETE, TRUNCATE ON audit_events TO {db.roles.service}"))
        try:
            with pytest.raises(DBAPIError, match="append-only"), service_session(db, ACTOR) as s:
                s.execute(text(statement))
        finally:
            with conn.begin():
                conn.execute(text(f"SET LOCAL ROLE {db.roles.owner}"))
                conn.execute(text(
                    f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM {db.roles.service}"))


def test_audit_events_accept_inserts(db: Database, two: dict[str, dict[str, uuid.UUID]]) -> None:
    a = two["a"]["clinics"]
    count = text("SELECT count(*) FROM audit_events")
    with tenant_session(db, a, ACTOR) as session:
        before = session.execute(count).scalar_one()
        session.execute(text(
            "INSERT INTO audit_events (clinic_id, action) VALUES (:c, 'VIEW')"
        ), {"c": a})
        after = session.execute(count).scalar_one()
    assert after == before + 1


def test_audit_events_cannot_be_inserted_sealed(
    db: Database, two: dict[str, dict[str, uuid.UUID]]
) -> None:
    a = two["a"]["clinics"]
    with pytest.raises(DBAPIError, match="inserted unsealed"), tenant_session(db, a, ACTOR) as s:
        s.execute(text("INSERT INTO audit_events (clinic_id, action, seq, hash) "
                       "VALUES (:c, 'VIEW', 99, '\\x00')"), {"c": a})
