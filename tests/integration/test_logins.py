"""One login per role: each kind of work connects as its own role, and the application's
login cannot become anyone else, whatever SQL runs on its connection.

Adversary: someone running SQL on the application's connection (an injection, or the
application's credentials in the wrong hands).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from neonpro.adapters.db import migrate
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.logins import ensure_logins, login_url, role_password, scram_matches
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.services import clinics, erasure, patients
from tests.conftest import make_keyring, make_settings
from tests.sessions import service_session, tenant_session

ME = Actor(uuid.UUID("00000000-0000-0000-0000-0000000010c1"), "admin")


def _app_dsn(db: Database) -> str:
    return db.url_for("app").replace("postgresql+psycopg://", "postgresql://")


def test_each_kind_of_work_connects_as_its_own_login(db: Database) -> None:
    clinic = uuid.uuid4()
    with tenant_session(db, clinic, ME.id, "admin") as s:
        tenant = s.execute(text("SELECT session_user, current_user")).one()
    with service_session(db, ME.id) as s:
        service = s.execute(text("SELECT session_user, current_user")).one()
    assert tuple(tenant) == (db.roles.app, db.roles.app)
    assert tuple(service) == (db.roles.service, db.roles.service)
    migrated = create_engine(login_url(db.owner_url, db.roles.owner), poolclass=NullPool)
    with migrated.connect() as conn:
        owner = conn.execute(text("SELECT tableowner FROM pg_tables WHERE tablename = "
                                  "'patients'")).scalar_one()
    migrated.dispose()
    assert owner == db.roles.owner  # the migrations ran as the owner's login itself


def test_the_logins_have_no_power_over_the_cluster_and_the_app_no_membership(
        db: Database) -> None:
    with db.engine().connect() as conn:
        rows = {r[0]: r[1:] for r in conn.execute(text(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, "
            "rolreplication, rolbypassrls FROM pg_roles WHERE rolname = ANY(:r)"),
            {"r": [db.roles.owner, db.roles.app, db.roles.service, db.roles.legal_hold]})}
        memberships = conn.execute(text(
            "SELECT g.rolname FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid "
            "JOIN pg_roles u ON u.oid = a.member WHERE u.rolname = ANY(:r)"),
            {"r": [db.roles.app, db.roles.legal_hold]}).scalars().all()
    for role, (login, superuser, createrole, createdb, replication, bypass) in rows.items():
        assert login, role
        assert (superuser, createrole, createdb, replication) == (False,) * 4, role
        assert bypass == (role == db.roles.service), role
    assert memberships == []


ESCAPES = [
    "SET ROLE neonpro_owner",
    "SET ROLE neonpro_service",
    "SET ROLE postgres",
    "SET LOCAL ROLE neonpro_legal_hold",
    "SELECT set_config('role', 'neonpro_owner', true)",
    "SELECT set_config('role', 'neonpro_service', false)",
    "SET SESSION AUTHORIZATION neonpro_owner",
    "SET SESSION AUTHORIZATION postgres",
    "CREATE ROLE neonpro_escape LOGIN SUPERUSER",
    "GRANT neonpro_owner TO neonpro_app",
    "GRANT neonpro_service TO neonpro_app",
    "ALTER ROLE neonpro_app BYPASSRLS",
    "ALTER ROLE neonpro_app SUPERUSER",
    "SELECT neonpro_chain_head('audit_events', '00000000-0000-0000-0000-000000000000')",
    "SELECT * FROM audit_ref_keys",
    "SELECT neonpro_context_mac('1', '', '', '', '', '', '', '')",
    "SELECT neonpro_feed_channel('00000000-0000-0000-0000-000000000000')",
    "SELECT neonpro_remove_consent_evidence(NULL, NULL, 'erasure')",
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_sql_on_the_application_login_cannot_change_role(db: Database, escape: str) -> None:
    with psycopg.connect(_app_dsn(db)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(escape)
        conn.rollback()
        assert conn.execute("SELECT current_user, session_user").fetchone() == (
            db.roles.app, db.roles.app)


def test_reset_role_leaves_the_application_login_itself(db: Database) -> None:
    with psycopg.connect(_app_dsn(db), autocommit=True) as conn:
        conn.execute("RESET ROLE")
        conn.execute("SET ROLE NONE")
        conn.execute("SELECT set_config('role', 'none', false)")
        row = conn.execute("SELECT current_user, (SELECT rolsuper FROM pg_roles "
                           "WHERE rolname = current_user)").fetchone()
    assert row == (db.roles.app, False)


def test_the_bootstrap_revokes_a_membership_granted_by_hand(
        fresh_database_url: str, roles: Roles) -> None:
    admin = create_engine(fresh_database_url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f"GRANT {roles.owner} TO {roles.app}"))
        conn.execute(text(f"ALTER ROLE {roles.app} CREATEROLE"))
    migrate.upgrade(fresh_database_url, roles)
    with admin.connect() as conn:
        member = conn.execute(text("SELECT pg_has_role(:a, :o, 'MEMBER')"),
                              {"a": roles.app, "o": roles.owner}).scalar_one()
        createrole = conn.execute(text("SELECT rolcreaterole FROM pg_roles WHERE rolname = :a"),
                                  {"a": roles.app}).scalar_one()
    admin.dispose()
    assert (member, createrole) == (False, False)


@pytest.fixture
def other_roles(admin_url: str) -> Iterator[Roles]:
    suffix = uuid.uuid4().hex[:6]
    made = Roles(f"t_owner_{suffix}", f"t_app_{suffix}", f"t_service_{suffix}",
                 f"t_hold_{suffix}")
    yield made
    engine = create_engine(admin_url, poolclass=NullPool)
    with engine.begin() as conn:
        for role in (made.owner, made.app, made.service, made.legal_hold):
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
    engine.dispose()


def test_derived_passwords_reach_the_server_as_scram_verifiers_once(
        admin_url: str, other_roles: Roles) -> None:
    engine = create_engine(admin_url, poolclass=NullPool)
    with engine.begin() as conn:
        ensure_logins(conn, other_roles, "bootstrap secret")
    with engine.begin() as conn:
        first = dict(conn.execute(text("SELECT rolname, rolpassword FROM pg_authid "
                                       "WHERE rolname LIKE 't\\_%' AND rolname LIKE :s"),
                                  {"s": f"%{other_roles.app[-6:]}"}).all())
        ensure_logins(conn, other_roles, "bootstrap secret")  # nothing to change
        second = dict(conn.execute(text("SELECT rolname, rolpassword FROM pg_authid "
                                        "WHERE rolname LIKE :s"),
                                   {"s": f"%{other_roles.app[-6:]}"}).all())
    engine.dispose()
    assert first == second
    assert len(first) == 4
    for role, verifier in first.items():
        assert verifier.startswith("SCRAM-SHA-256$")
        assert scram_matches(verifier, role_password("bootstrap secret", role))
        assert not scram_matches(verifier, role_password("another secret", role))


def test_a_legal_hold_read_connects_as_the_legal_hold_login(database_url: str) -> None:
    box = Container(make_settings(database_url), database_url=database_url,
                    keyring=make_keyring())
    try:
        clinic = clinics.create_clinic(box.service_uow(ME), ClinicCreate(name="Hold")).id
        patient = patients.register_patient(box.uow(clinic, ME), PatientCreate(
            full_name="Paciente Retida", patient_notes="nota")).id
        erasure.erase_patient(box.admin_uow(clinic, ME), patient)
        held = erasure.legal_hold_read(box, box.cipher, clinic, patient, ME, "ordem judicial 123")
        assert held.patient.id == patient
        engine = box.database.engine("legal_hold")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT session_user")).scalar_one() == (
                box.database.roles.legal_hold)
    finally:
        box.close()


def test_production_never_derives_a_login(database_url: str) -> None:
    from neonpro.config import Environment, Settings  # noqa: PLC0415

    settings = Settings(_env_file=None, environment=Environment.PRODUCTION,  # type: ignore[call-arg]
                        database_url=database_url, app_database_url=database_url,
                        service_database_url=database_url)
    with pytest.raises(RuntimeError, match="NEONPRO_LEGAL_HOLD_DATABASE_URL"):
        Database(settings).url_for("legal_hold")


def test_sql_on_the_application_login_cannot_write_audited_rows_as_another_clinic(
        db: Database) -> None:
    """Switching ``app.clinic_id`` inside a bound transaction: RLS follows the setting,
    but every audited change writes an audit event, and that refuses a context changed
    after the transaction's first statement bound it."""
    with service_session(db, ME.id) as s:
        a, b = (s.execute(text("INSERT INTO clinics (name) VALUES (:n) RETURNING id"),
                          {"n": n}).scalar_one() for n in ("Escape A", "Escape B"))
    with pytest.raises(DBAPIError, match="not the one its first statement bound"), \
            tenant_session(db, a, ME.id, "admin") as s:
        s.execute(text("SELECT set_config('app.clinic_id', :b, true)"), {"b": str(b)})
        s.execute(text("INSERT INTO professionals (clinic_id, full_name) VALUES (:b, 'X')"),
                  {"b": b})
    with pytest.raises(DBAPIError, match="bound once"), tenant_session(db, a, ME.id) as s:
        s.execute(text("SELECT neonpro_bind_context(:b, :a, 'admin', '', '', '', '')"),
                  {"b": str(b), "a": str(ME.id)})


def test_the_application_login_bound_to_no_clinic_cannot_write_a_clinics_event(
        db: Database) -> None:
    """Only a login that bypasses row-level security (the service) names, in a
    cross-clinic transaction, the clinic each of its events concerns."""
    with service_session(db, ME.id) as s:
        clinic = s.execute(text("INSERT INTO clinics (name) VALUES ('Sem contexto') "
                                "RETURNING id")).scalar_one()
    with psycopg.connect(_app_dsn(db)) as conn:
        conn.execute("SELECT neonpro_bind_context('', %s, 'admin', '', '', '', '')",
                      (str(ME.id),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="clinic of its"):
            conn.execute("INSERT INTO audit_events (clinic_id, action) VALUES (%s, 'VIEW')",
                         (clinic,))
    with service_session(db, ME.id) as s:  # the service may, for its cross-clinic work
        s.execute(text("INSERT INTO audit_events (clinic_id, action) VALUES (:c, 'VIEW')"),
                  {"c": clinic})
    with pytest.raises(DBAPIError, match="actor_id is the transaction"), \
            service_session(db, ME.id) as s:  # but never as someone else
        s.execute(text("INSERT INTO audit_events (clinic_id, action, actor_id) "
                       "VALUES (:c, 'VIEW', gen_random_uuid())"), {"c": clinic})
