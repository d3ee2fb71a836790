"""The database itself refuses a reference from one clinic's row to another clinic's (or, where
the rule is the patient's, another patient's) row (issue 16, migration 0014).

The adversary runs SQL on the application's own login, bound to clinic A exactly as the
application binds itself (``neonpro_bind_context``), past every service check: row-level
security hides clinic B's rows from it, but a foreign key is checked past row-level
security, so only a key that includes ``clinic_id`` (and ``patient_id``) refuses the link.
Every attempt must fail with a foreign-key violation: not a permission error, not zero rows.
The erasure ledger, which only the erasure engine's service role appends to, names its
request under a trigger that answers as a foreign key would (``erasure_sql.request_ddl``).

The tests of the rules 0014 added fail on a database migrated to 0013 only: there the
same statements commit (``test_0013_let_the_links_through_and_0014_refuses_to_hide_them``
shows it, and that the upgrade then stops with a message naming no value).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import psycopg.errors
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError

from neonpro.adapters.db import migrate
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.errors import translate
from neonpro.adapters.db.security import Roles
from neonpro.domain.errors import Conflict, ValidationFailed
from tests.conftest import make_settings
from tests.factories import ACTOR, T0, seed_clinic, seed_world
from tests.sessions import service_session, tenant_session

World = dict[str, dict[str, uuid.UUID]]
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def _as_app(url: str, roles: Roles, clinic: uuid.UUID,
            role: str | None = None) -> Iterator[psycopg.Connection[Any]]:
    """One transaction of SQL run as the application role (or ``role``) in ``clinic``: the
    role, then the bound context, the application's own first statements. Rolled back at
    the end."""
    with psycopg.connect(_plain(url)) as conn:
        conn.execute("SELECT set_config('role', %s, true)", (role or roles.app,))
        conn.execute("SELECT neonpro_bind_context(%s, %s, 'admin', '', '', '', '')",
                     (str(clinic), str(ACTOR)))
        try:
            yield conn
        finally:
            conn.rollback()


def _refused(url: str, roles: Roles, clinic: uuid.UUID, sql: str,
             params: dict[str, Any], role: str | None = None,
             ) -> psycopg.errors.ForeignKeyViolation:
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as caught, \
            _as_app(url, roles, clinic, role) as conn:
        conn.execute(sql, params)
    return caught.value


@pytest.fixture(scope="module")
def world(db: Database) -> World:
    with service_session(db, ACTOR) as session:
        a, b = seed_clinic(session, "A"), seed_clinic(session, "B")
        seeded = {"a": seed_world(session, a), "b": seed_world(session, b)}
        # a second patient of clinic A, with a consent of its own
        other = uuid.uuid4()
        session.execute(text(
            "INSERT INTO patients (clinic_id, id, medical_record_number, full_name) "
            "VALUES (:c, :id, :mrn, 'Outra Paciente')"),
            {"c": a, "id": other, "mrn": f"MRN-{other.hex[:8]}"})
        seeded["a"]["other_patient"] = other
        # an erasure of clinic A's patient on the grounds of its own request
        cited = uuid.uuid4()
        session.execute(text(
            "INSERT INTO erasure_ledger (clinic_id, id, patient_id, request_id, outcome) "
            "VALUES (:c, :id, :p, :r, 'blocked')"),
            {"c": a, "id": cited, "p": seeded["a"]["patients"],
             "r": seeded["a"]["data_subject_requests"]})
    return seeded


# --- the references 0014 made composite: each of these commits on a database at 0013 ---

PROFESSIONAL_INSERT = (
    "INSERT INTO professionals (clinic_id, full_name, user_id) "
    "VALUES (current_setting('app.clinic_id')::uuid, 'Dr. Intrusa', %(user)s)")
PROFESSIONAL_UPDATE = "UPDATE professionals SET user_id = %(user)s WHERE id = %(id)s"
DISCLOSURE_INSERT = (
    "INSERT INTO disclosures (clinic_id, patient_id, recipient_name, data_description, "
    "purpose, legal_basis, consent_record_id) VALUES (current_setting('app.clinic_id')::uuid, "
    "%(patient)s, 'Lab', 'exames', 'diagnosis', 'consent', %(consent)s)")


def test_a_professional_cannot_link_another_clinics_staff_account(
        database_url: str, roles: Roles, world: World) -> None:
    refused = _refused(database_url, roles, world["a"]["clinics"], PROFESSIONAL_INSERT,
                       {"user": world["b"]["staff_users"]})
    assert refused.diag.constraint_name == (
        "fk_professionals_clinic_id_user_id_clinic_memberships")


def test_a_professional_cannot_be_relinked_to_another_clinics_staff_account(
        database_url: str, roles: Roles, world: World) -> None:
    refused = _refused(database_url, roles, world["a"]["clinics"], PROFESSIONAL_UPDATE,
                       {"user": world["b"]["staff_users"], "id": world["a"]["professionals"]})
    assert refused.diag.constraint_name == (
        "fk_professionals_clinic_id_user_id_clinic_memberships")


def test_a_professional_cannot_link_an_account_that_is_no_member(
        database_url: str, roles: Roles, world: World, db: Database) -> None:
    """A staff account of no clinic at all (a bare staff_users row) is no member either."""
    loner = uuid.uuid4()
    with service_session(db, ACTOR) as session:
        session.execute(text(
            "INSERT INTO staff_users (id, email, display_name, password_hash) "
            "VALUES (:id, :email, 'Sem Clinica', 'x')"),
            {"id": loner, "email": f"loner-{loner.hex[:8]}@example.test"})
    _refused(database_url, roles, world["a"]["clinics"], PROFESSIONAL_INSERT, {"user": loner})


def test_a_disclosure_cannot_rest_on_another_patients_consent(
        database_url: str, roles: Roles, world: World) -> None:
    a = world["a"]
    refused = _refused(database_url, roles, a["clinics"], DISCLOSURE_INSERT,
                       {"patient": a["other_patient"], "consent": a["consent_records"]})
    assert refused.diag.constraint_name == "fk_disclosures_same_patient_consent_records"


REVOCATION_INSERT = (
    "INSERT INTO consent_records (clinic_id, patient_id, purpose, legal_basis, status, "
    "given_at, revoked_at, terms_version, terms_hash, supersedes_id) VALUES "
    "(current_setting('app.clinic_id')::uuid, %(patient)s, 'marketing', 'consent', "
    "'revoked', %(start)s, %(start)s, 'v1', repeat('a', 64), %(old)s)")


def test_a_consent_cannot_supersede_another_patients_consent(
        database_url: str, roles: Roles, world: World) -> None:
    """Another patient's row would take that consent's one successor: never revocable."""
    a = world["a"]
    refused = _refused(database_url, roles, a["clinics"], REVOCATION_INSERT,
                       {"patient": a["other_patient"], "old": a["consent_records"],
                        "start": T0 + timedelta(days=1)})
    assert refused.diag.constraint_name == "fk_consent_records_same_patient_consent_records"


def test_the_legitimate_links_still_commit(database_url: str, roles: Roles,
                                           world: World) -> None:
    """The same statements with this clinic's own member and this patient's own consent."""
    a = world["a"]
    with _as_app(database_url, roles, a["clinics"]) as conn:
        conn.execute(PROFESSIONAL_UPDATE, {"user": a["staff_users"], "id": a["professionals"]})
        conn.execute(DISCLOSURE_INSERT, {"patient": a["patients"],
                                         "consent": a["consent_records"]})
        conn.execute(DISCLOSURE_INSERT, {"patient": a["other_patient"], "consent": None})
        conn.execute(REVOCATION_INSERT, {"patient": a["patients"], "old": a["consent_records"],
                                         "start": T0 + timedelta(days=1)})


def test_removing_a_membership_unlinks_the_professional(
        database_url: str, roles: Roles, world: World) -> None:
    a = world["a"]
    with _as_app(database_url, roles, a["clinics"]) as conn:
        conn.execute("DELETE FROM clinic_memberships WHERE user_id = %s", (a["staff_users"],))
        linked = conn.execute("SELECT user_id FROM professionals WHERE id = %s",
                              (a["professionals"],)).fetchone()
    assert linked == (None,)


def test_the_violation_answers_422_on_the_field_without_any_value(
        db: Database, world: World) -> None:
    a, b = world["a"], world["b"]
    with pytest.raises(DBAPIError) as caught, tenant_session(db, a["clinics"], ACTOR) as s:
        s.execute(text(PROFESSIONAL_UPDATE.replace("%(user)s", ":user")
                       .replace("%(id)s", ":id")),
                  {"user": b["staff_users"], "id": a["professionals"]})
    error = translate(caught.value)
    assert isinstance(error, ValidationFailed)
    assert (error.field, error.reason) == ("user_id", "is not a staff member of this clinic")
    assert not UUID_TEXT.search(str(error))
    with pytest.raises(DBAPIError) as caught, tenant_session(db, a["clinics"], ACTOR) as s:
        s.execute(text(DISCLOSURE_INSERT.replace("%(patient)s", ":patient")
                       .replace("%(consent)s", ":consent")),
                  {"patient": a["other_patient"], "consent": a["consent_records"]})
    error = translate(caught.value)
    assert isinstance(error, ValidationFailed)
    assert error.field == "consent_record_id"
    assert not UUID_TEXT.search(str(error))


LEDGER_INSERT = (
    "INSERT INTO erasure_ledger (clinic_id, patient_id, request_id, outcome) VALUES "
    "(current_setting('app.clinic_id')::uuid, %(patient)s, %(request)s, 'anonymized')")
REQUEST_KEY = "fk_erasure_ledger_request_data_subject_requests"


def test_an_erasure_cannot_name_another_clinics_or_patients_request(
        database_url: str, roles: Roles, world: World) -> None:
    """The erasure engine's role (the only one that appends to the ledger) bound to clinic
    A: another clinic's request, or another patient's, is no grounds."""
    a, b = world["a"], world["b"]
    for request in (b["data_subject_requests"], a["data_subject_requests"]):
        patient = a["other_patient"] if request == a["data_subject_requests"] else a["patients"]
        refused = _refused(database_url, roles, a["clinics"], LEDGER_INSERT,
                           {"patient": patient, "request": request}, role=roles.service)
        assert refused.diag.constraint_name == REQUEST_KEY


def test_an_erasure_may_name_its_own_request_or_one_this_database_never_held(
        database_url: str, roles: Roles, world: World) -> None:
    """A restore re-applies entries decided after its backup: their request is unknown here."""
    a = world["a"]
    with _as_app(database_url, roles, a["clinics"], roles.service) as conn:
        conn.execute(LEDGER_INSERT, {"patient": a["patients"],
                                     "request": a["data_subject_requests"]})
        conn.execute(LEDGER_INSERT, {"patient": a["patients"], "request": uuid.uuid4()})


def test_the_application_role_cannot_write_the_erasure_ledger_at_all(
        database_url: str, roles: Roles, world: World) -> None:
    a, b = world["a"], world["b"]
    with pytest.raises(psycopg.errors.InsufficientPrivilege), \
            _as_app(database_url, roles, a["clinics"]) as conn:
        conn.execute(LEDGER_INSERT, {"patient": a["patients"],
                                     "request": b["data_subject_requests"]})


@pytest.mark.parametrize("change", [
    "UPDATE data_subject_requests SET patient_id = %(other)s WHERE id = %(request)s",
    "UPDATE data_subject_requests SET id = gen_random_uuid() WHERE id = %(request)s",
    "DELETE FROM data_subject_requests WHERE id = %(request)s",
])
def test_a_request_an_erasure_names_cannot_move_to_another_patient_or_go(
        database_url: str, roles: Roles, world: World, change: str) -> None:
    a = world["a"]
    refused = _refused(database_url, roles, a["clinics"], change,
                       {"other": a["other_patient"], "request": a["data_subject_requests"]})
    assert refused.diag.constraint_name == REQUEST_KEY


def test_a_request_no_erasure_names_may_still_be_corrected(
        database_url: str, roles: Roles, world: World) -> None:
    b = world["b"]  # clinic B's request grounds no erasure
    with _as_app(database_url, roles, b["clinics"]) as conn:
        changed = conn.execute(
            "UPDATE data_subject_requests SET patient_id = patient_id, status = 'in_progress' "
            "WHERE id = %s", (b["data_subject_requests"],)).rowcount
    assert changed == 1


def test_the_moved_request_answers_409_without_any_value(db: Database, world: World) -> None:
    a = world["a"]
    with pytest.raises(DBAPIError) as caught, tenant_session(db, a["clinics"], ACTOR) as s:
        s.execute(text("UPDATE data_subject_requests SET patient_id = :other WHERE id = :r"),
                  {"other": a["other_patient"], "r": a["data_subject_requests"]})
    error = translate(caught.value)
    assert isinstance(error, Conflict)
    assert str(error) == "data_subject_request is still referenced by other records"


# --- the references that already held the clinic (before 0014): still refused ---

ALREADY_COMPOSITE: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "appointments.patient_id": (
        "INSERT INTO appointments (clinic_id, patient_id, professional_id, start_time, "
        "end_time, created_by) VALUES (current_setting('app.clinic_id')::uuid, %(patient)s, "
        "%(professional)s, %(start)s, %(end)s, %(actor)s)",
        {"patient": ("b", "patients"), "professional": ("a", "professionals")}),
    "appointments.professional_id": (
        "UPDATE appointments SET professional_id = %(professional)s WHERE id = %(appointment)s",
        {"professional": ("b", "professionals"), "appointment": ("a", "appointments")}),
    "appointments.service_type_id": (
        "UPDATE appointments SET service_type_id = %(svc)s WHERE id = %(appointment)s",
        {"svc": ("b", "service_types"), "appointment": ("a", "appointments")}),
    "appointments.rescheduled_from_id": (
        "UPDATE appointments SET rescheduled_from_id = %(old)s WHERE id = %(appointment)s",
        {"old": ("b", "appointments"), "appointment": ("a", "appointments")}),
    "patients.primary_professional_id": (
        "UPDATE patients SET primary_professional_id = %(professional)s WHERE id = %(patient)s",
        {"professional": ("b", "professionals"), "patient": ("a", "patients")}),
    "consent_records.patient_id": (
        "INSERT INTO consent_records (clinic_id, patient_id, purpose, legal_basis, status, "
        "given_at, terms_version, terms_hash) VALUES (current_setting('app.clinic_id')::uuid, "
        "%(patient)s, 'marketing', 'consent', 'granted', %(start)s, 'v1', repeat('a', 64))",
        {"patient": ("b", "patients")}),
    "consent_records.supersedes_id": (
        "INSERT INTO consent_records (clinic_id, patient_id, purpose, legal_basis, status, "
        "revoked_at, terms_version, terms_hash, supersedes_id) VALUES "
        "(current_setting('app.clinic_id')::uuid, %(patient)s, 'marketing', 'consent', "
        "'revoked', %(start)s, 'v1', repeat('a', 64), %(old)s)",
        {"patient": ("a", "patients"), "old": ("b", "consent_records")}),
    "data_subject_requests.patient_id": (
        "UPDATE data_subject_requests SET patient_id = %(patient)s WHERE id = %(dsr)s",
        {"patient": ("b", "patients"), "dsr": ("a", "data_subject_requests")}),
    "disclosures.patient_id": (
        "INSERT INTO disclosures (clinic_id, patient_id, recipient_name, data_description, "
        "purpose, legal_basis) VALUES (current_setting('app.clinic_id')::uuid, %(patient)s, "
        "'Lab', 'exames', 'diagnosis', 'health_protection')",
        {"patient": ("b", "patients")}),
    "disclosures.consent_record_id": (
        DISCLOSURE_INSERT, {"patient": ("a", "patients"), "consent": ("b", "consent_records")}),
    "appointment_risk_scores.appointment_id": (
        "INSERT INTO appointment_risk_scores (clinic_id, appointment_id, score, model_id, "
        "model_version) VALUES (current_setting('app.clinic_id')::uuid, %(appointment)s, 5, "
        "%(model)s, 'v1')",
        {"appointment": ("b", "appointments"), "model": ("a", "no_show_models")}),
    "appointment_risk_scores.model_id": (
        "UPDATE appointment_risk_scores SET model_id = %(model)s WHERE appointment_id = "
        "%(appointment)s",
        {"model": ("b", "no_show_models"), "appointment": ("a", "appointments")}),
}


@pytest.mark.parametrize("reference", sorted(ALREADY_COMPOSITE))
def test_every_other_reference_refuses_another_clinics_row(
        database_url: str, roles: Roles, world: World, reference: str) -> None:
    sql, picks = ALREADY_COMPOSITE[reference]
    params: dict[str, Any] = {name: world[side][key] for name, (side, key) in picks.items()}
    params.update(start=T0 + timedelta(days=400), end=T0 + timedelta(days=400, minutes=30),
                  actor=ACTOR)
    _refused(database_url, roles, world["a"]["clinics"], sql, params)


# --- without 0014 ---

def _seed_at(url: str) -> World:
    database = Database(make_settings(url))
    try:
        with service_session(database, ACTOR) as session:
            a, b = seed_clinic(session, "A"), seed_clinic(session, "B")
            seeded = {"a": seed_world(session, a), "b": seed_world(session, b)}
        return seeded  # noqa: RET504  (the seed commits when the session block ends)
    finally:
        database.close()


def test_0013_let_the_links_through_and_0014_refuses_to_hide_them(
        fresh_database_url: str, roles: Roles) -> None:
    """At 0013 the adversary's links commit (the tests above fail there); the upgrade to 0014
    then stops, with the rule, the count and the query that finds the rows but no value,
    and changes nothing; the rows fixed, the upgrade goes through."""
    url = fresh_database_url
    migrate.upgrade(url, roles, "0013")
    world = _seed_at(url)
    a, b = world["a"], world["b"]
    with _as_app(url, roles, a["clinics"]) as conn:
        conn.execute(PROFESSIONAL_UPDATE, {"user": b["staff_users"], "id": a["professionals"]})
        conn.commit()
    with pytest.raises(DBAPIError) as caught:
        migrate.upgrade(url, roles)
    message = str(caught.value.orig)
    assert "migration 0014: 1 professionals link a staff account" in message
    assert caught.value.orig.diag.message_hint.startswith(  # type: ignore[union-attr]
        "the rows, as a role that bypasses row-level security: SELECT clinic_id, id FROM")
    assert not UUID_TEXT.search(message)
    assert not UUID_TEXT.search(caught.value.orig.diag.message_hint or "")  # type: ignore[union-attr]
    assert migrate.current_revisions(url) == ("0013",)
    with _as_app(url, roles, a["clinics"]) as conn:
        conn.execute("UPDATE professionals SET user_id = NULL WHERE user_id = %s",
                     (b["staff_users"],))
        conn.commit()
    migrate.upgrade(url, roles)
    assert migrate.revisions(url).at_head


def test_0014_refuses_a_disclosure_resting_on_another_patients_consent(
        fresh_database_url: str, roles: Roles) -> None:
    """Disclosures are a ledger (no row is ever changed): the upgrade stops and says so; the
    fix is the operator's, never the migration's."""
    url = fresh_database_url
    migrate.upgrade(url, roles, "0013")
    world = _seed_at(url)
    a, b = world["a"], world["b"]
    with _as_app(url, roles, a["clinics"]) as conn:
        conn.execute(DISCLOSURE_INSERT, {"patient": a["patients"],
                                         "consent": a["consent_records"]})  # legitimate
        conn.commit()
    with _as_app(url, roles, b["clinics"]) as conn:
        other = uuid.uuid4()
        conn.execute("INSERT INTO patients (clinic_id, id, medical_record_number, full_name) "
                     "VALUES (current_setting('app.clinic_id')::uuid, %s, %s, 'Outra')",
                     (other, f"MRN-{other.hex[:8]}"))
        conn.execute(DISCLOSURE_INSERT, {"patient": other, "consent": b["consent_records"]})
        conn.commit()
    with pytest.raises(DBAPIError) as caught:
        migrate.upgrade(url, roles)
    message = str(caught.value.orig)
    assert "migration 0014: 1 disclosures rest on a consent of another patient" in message
    assert not UUID_TEXT.search(message)
    assert migrate.current_revisions(url) == ("0013",)


def test_0014_refuses_an_erasure_that_names_another_clinics_request(
        fresh_database_url: str, roles: Roles) -> None:
    url = fresh_database_url
    migrate.upgrade(url, roles, "0013")
    world = _seed_at(url)
    a, b = world["a"], world["b"]
    with _as_app(url, roles, a["clinics"], roles.service) as conn:
        conn.execute(LEDGER_INSERT, {"patient": a["patients"],
                                     "request": b["data_subject_requests"]})
        conn.execute(LEDGER_INSERT, {"patient": a["patients"],  # unknown here: let through
                                     "request": uuid.uuid4()})
        conn.commit()
    with pytest.raises(DBAPIError) as caught:
        migrate.upgrade(url, roles)
    message = str(caught.value.orig)
    assert "migration 0014: 1 erasure ledger entries name a data-subject request" in message
    assert not UUID_TEXT.search(message)
    assert migrate.current_revisions(url) == ("0013",)
