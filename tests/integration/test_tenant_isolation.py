"""Tenant isolation by row-level security, on every table, through sessions and raw SQL."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import column, delete, func, select, table, text, update
from sqlalchemy.exc import DBAPIError

from neonpro.adapters.db.database import Database
from neonpro.adapters.db.models import Base
from neonpro.adapters.db.security import (
    INSERT_ONLY_TABLES,
    OWNER_ONLY_TABLES,
    SERVICE_ONLY_TABLES,
    SERVICE_READ_ONLY_TABLES,
)
from tests.conftest import make_settings
from tests.factories import ACTOR, seed_clinic, seed_world
from tests.sessions import read_only_session, service_session, set_clinic, tenant_session

# tables the application role may touch at all; the others are covered below
APP_TABLES = sorted(set(Base.metadata.tables) - set(SERVICE_READ_ONLY_TABLES)
                    - set(OWNER_ONLY_TABLES) - set(SERVICE_ONLY_TABLES))
TABLES = APP_TABLES
TENANT_KEY = {name: ("id" if name == "clinics" else "clinic_id") for name in TABLES}
GLOBAL = {"staff_users"}
READABLE = sorted(set(TABLES) - set(INSERT_ONLY_TABLES))  # commit tokens: write-only


@pytest.fixture(scope="module")
def world(db: Database) -> dict[str, dict[str, uuid.UUID]]:
    with service_session(db, ACTOR) as session:
        a, b = seed_clinic(session, "A"), seed_clinic(session, "B")
        seeded = {"a": seed_world(session, a), "b": seed_world(session, b)}
    return seeded  # noqa: RET504  (the seed commits when the session block ends)


def test_the_seed_covers_every_table(world: dict[str, dict[str, uuid.UUID]]) -> None:
    assert set(world["a"]) == set(TABLES)


@pytest.mark.parametrize("name", sorted(set(READABLE) - GLOBAL))
def test_tenant_sees_only_its_own_rows(
    db: Database, world: dict[str, dict[str, uuid.UUID]], name: str
) -> None:
    a, b = world["a"]["clinics"], world["b"]["clinics"]
    key = column(TENANT_KEY[name])
    with tenant_session(db, a, ACTOR) as session:
        seen = set(session.execute(select(key).select_from(table(name))).scalars())
    assert seen == {a}
    assert b not in seen


@pytest.mark.parametrize("name", READABLE)
def test_no_clinic_set_sees_nothing(db: Database, name: str,
                                    world: dict[str, dict[str, uuid.UUID]]) -> None:
    assert world
    with db.engine().connect() as conn, conn.begin():
        conn.execute(text("SELECT set_config('role', :r, true)"), {"r": db.roles.app})
        count = conn.execute(select(func.count()).select_from(table(name))).scalar_one()
    assert count == 0


def test_staff_users_visible_only_through_membership(
    db: Database, world: dict[str, dict[str, uuid.UUID]]
) -> None:
    with tenant_session(db, world["a"]["clinics"], ACTOR) as session:
        users = set(session.execute(text("SELECT id FROM staff_users")).scalars())
    assert users == {world["a"]["staff_users"]}


def test_application_role_cannot_read_password_hashes(
    db: Database, world: dict[str, dict[str, uuid.UUID]]
) -> None:
    with pytest.raises(DBAPIError, match="permission denied"), tenant_session(db,
        world["a"]["clinics"], ACTOR
    ) as session:
        session.execute(text("SELECT password_hash FROM staff_users"))


def test_cannot_insert_a_row_for_another_clinic(
    db: Database, world: dict[str, dict[str, uuid.UUID]]
) -> None:
    with pytest.raises(DBAPIError, match="row-level security"), tenant_session(db,
        world["a"]["clinics"], ACTOR
    ) as session:
        session.execute(text(
            "INSERT INTO service_types (clinic_id, name, duration_minutes) "
            "VALUES (:b, 'stolen', 10)"
        ), {"b": world["b"]["clinics"]})


# (the ledgers, consent_records among them, grant no UPDATE or DELETE at all: test_ledgers)
@pytest.mark.parametrize("name", ["patients", "appointments", "professionals", "clinics",
                                  "security_incidents"])
def test_cannot_update_or_delete_another_clinics_rows(
    db: Database, world: dict[str, dict[str, uuid.UUID]], name: str
) -> None:
    b_id = world["b"][name]
    t = table(name, column("id"))
    with tenant_session(db, world["a"]["clinics"], ACTOR) as session:
        changed = session.execute(update(t).where(t.c.id == b_id).values(id=b_id)).rowcount  # type: ignore[attr-defined]
        if name != "clinics":
            changed += session.execute(delete(t).where(t.c.id == b_id)).rowcount  # type: ignore[attr-defined]
    assert changed == 0
    with service_session(db, ACTOR) as session:
        query = select(func.count()).select_from(t).where(t.c.id == b_id)
        assert session.execute(query).scalar_one() == 1


def test_cannot_move_a_row_into_another_clinic(
    db: Database, world: dict[str, dict[str, uuid.UUID]]
) -> None:
    # on Citus the distribution column never changes: the move is refused before the policy
    with pytest.raises(DBAPIError, match=r"row-level security|partition value of rows is not "
                       r"allowed"), tenant_session(db, world["a"]["clinics"], ACTOR) as session:
        session.execute(text("UPDATE service_types SET clinic_id = :b WHERE id = :id"),
                        {"b": world["b"]["clinics"], "id": world["a"]["service_types"]})


def test_raw_psycopg_through_the_application_role(
    database_url: str, world: dict[str, dict[str, uuid.UUID]]
) -> None:
    a, b = world["a"]["clinics"], world["b"]["clinics"]
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        with conn.transaction():
            conn.execute("SET LOCAL ROLE neonpro_app")
            set_clinic(conn, a)
            clinics = {r[0] for r in conn.execute("SELECT clinic_id FROM patients")}
            updated = conn.execute("UPDATE patients SET full_name = 'x' WHERE clinic_id = %s",
                                   (b,)).rowcount
        assert clinics == {a}
        assert updated == 0
        with conn.transaction():
            conn.execute("SET LOCAL ROLE neonpro_app")
            assert conn.execute("SELECT count(*) FROM patients").fetchone() == (0,)


def test_pooled_connection_carries_no_tenant_into_the_next_transaction(
    database_url: str, world: dict[str, dict[str, uuid.UUID]]
) -> None:
    single = Database(make_settings(database_url, pool_size=1, max_overflow=0))
    try:
        with tenant_session(single, world["a"]["clinics"], ACTOR) as session:
            first = session.execute(text(
                "SELECT pg_backend_pid(), current_user, current_setting('app.clinic_id')"
            )).one()
        assert first[1] == "neonpro_app"
        assert first[2] == str(world["a"]["clinics"])
        with single.engine("app").connect() as conn:
            after = conn.execute(text(
                "SELECT pg_backend_pid(), current_user, "
                "coalesce(current_setting('app.clinic_id', true), ''), "
                "(SELECT count(*) FROM patients)"
            )).one()
        assert after[0] == first[0]  # the same pooled connection: the application's login
        assert after[1] == "neonpro_app"
        assert after[2] == ""
        assert after[3] == 0
    finally:
        single.close()


def test_read_only_session_refuses_writes(
    db: Database, world: dict[str, dict[str, uuid.UUID]]
) -> None:
    with pytest.raises(DBAPIError, match="read-only transaction"), read_only_session(db,
        world["a"]["clinics"], ACTOR
    ) as session:
        session.execute(text("UPDATE patients SET full_name = 'x'"))


def test_read_only_session_sees_its_clinic_and_no_other(
    db: Database, world: dict[str, dict[str, uuid.UUID]]
) -> None:
    """Its settings are set unbound; on Citus they must reach the workers' row-level
    security (``set_config`` did not: the transaction saw nothing there)."""
    with read_only_session(db, world["a"]["clinics"], ACTOR) as session:
        seen = set(session.execute(text("SELECT id FROM patients")).scalars())
    assert world["a"]["patients"] in seen
    assert world["b"]["patients"] not in seen


@pytest.mark.parametrize("name", TABLES)
def test_cannot_insert_a_copy_of_another_clinics_row(
    db: Database, world: dict[str, dict[str, uuid.UUID]], name: str
) -> None:
    """Every table refuses, for clinic A, a row carrying clinic B's id (RLS or no grant)."""
    t = Base.metadata.tables[name]
    key = TENANT_KEY[name] if name not in GLOBAL else "id"
    row_id = world["b"][name]
    id_col = {"clinic_memberships": "user_id", "appointment_risk_scores": "appointment_id",
              "commit_tokens": "token", "idempotency_keys": "claim"}.get(name, "id")
    with service_session(db, ACTOR) as session:
        row = dict(session.execute(select(t).where(t.c[id_col] == row_id)).mappings().one())
    for generated in [c.name for c in t.columns if c.computed is not None]:
        del row[generated]
    if "id" in row:
        row["id"] = uuid.uuid4()
    if "seq" in row:
        row.update(seq=None, prev_hash=None, hash=None, key_id=None)
    assert key in row
    # an audit event is refused even before row-level security: its clinic is the
    # transaction's, not the insert's
    refused = r"row-level security|permission denied|belongs to the clinic of its transaction"
    with pytest.raises(DBAPIError, match=refused), \
            tenant_session(db, world["a"]["clinics"], ACTOR) as session:
        session.execute(t.insert().values(**row))


@pytest.mark.parametrize(
    "name", sorted(SERVICE_READ_ONLY_TABLES + OWNER_ONLY_TABLES + SERVICE_ONLY_TABLES))
def test_application_role_has_no_access_to_chain_and_key_tables(
    db: Database, world: dict[str, dict[str, uuid.UUID]], name: str
) -> None:
    with pytest.raises(DBAPIError, match="permission denied"), tenant_session(db,
        world["a"]["clinics"], ACTOR
    ) as session:
        session.execute(text(f"SELECT * FROM {name}"))


@pytest.mark.parametrize("name", sorted(INSERT_ONLY_TABLES))
def test_application_role_cannot_read_or_change_commit_tokens_even_its_own(
    db: Database, world: dict[str, dict[str, uuid.UUID]], name: str
) -> None:
    for statement in (f"SELECT * FROM {name}", f"DELETE FROM {name}",
                      f"UPDATE {name} SET committed_at = now()"):
        with pytest.raises(DBAPIError, match="permission denied"), tenant_session(db,
            world["a"]["clinics"], ACTOR
        ) as session:
            session.execute(text(statement))


def test_service_role_cannot_read_the_patient_ref_key(db: Database) -> None:
    with pytest.raises(DBAPIError, match="permission denied"), service_session(db, ACTOR) as s:
        s.execute(text("SELECT inner_pad FROM audit_ref_keys"))
