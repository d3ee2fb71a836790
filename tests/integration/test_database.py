"""The managed client against a real server: per-environment settings, roles, pool stats."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from neonpro.adapters.db.database import Database
from tests.conftest import make_settings
from tests.sessions import service_session, tenant_session

CLINIC = uuid.UUID("00000000-0000-0000-0000-0000000000c1")
ACTOR = uuid.UUID("00000000-0000-0000-0000-0000000000a1")


def test_connections_carry_the_environments_timeouts(database_url: str) -> None:
    db = Database(make_settings(database_url, statement_timeout_ms=1234))
    try:
        with tenant_session(db, CLINIC, ACTOR) as session:
            timeout, tz = session.execute(
                text("SELECT current_setting('statement_timeout'), current_setting('TimeZone')")
            ).one()
        assert timeout == "1234ms"
        assert tz == "UTC"
    finally:
        db.close()


def test_sessions_set_role_clinic_and_actor_in_the_transaction(db: Database) -> None:
    with tenant_session(db, CLINIC, ACTOR, "receptionist") as session:
        row = session.execute(text(
            "SELECT current_user, current_setting('app.clinic_id'), "
            "current_setting('app.actor_id'), current_setting('app.actor_role')"
        )).one()
    assert tuple(row) == ("neonpro_app", str(CLINIC), str(ACTOR), "receptionist")
    with service_session(db, ACTOR) as session:
        row = session.execute(text(
            "SELECT current_user, current_setting('app.clinic_id'), r.rolbypassrls "
            "FROM pg_roles r WHERE r.rolname = current_user"
        )).one()
    assert tuple(row) == ("neonpro_service", "", True)


def test_failed_block_rolls_back(db: Database) -> None:
    try:
        with service_session(db, ACTOR) as session:
            session.execute(text("INSERT INTO clinics (name) VALUES ('rolled back')"))
            raise RuntimeError("boom")  # noqa: TRY301
    except RuntimeError:
        pass
    with service_session(db, ACTOR) as session:
        count = session.execute(
            text("SELECT count(*) FROM clinics WHERE name = 'rolled back'")
        ).scalar_one()
    assert count == 0


def test_a_transaction_commits_only_when_told(db: Database) -> None:
    """No hidden commit: a block that does not call ``commit()`` leaves nothing behind."""
    name = f"uncommitted {uuid.uuid4()}"
    with db.transaction("service", None, ACTOR) as session:
        session.execute(text("INSERT INTO clinics (name) VALUES (:n)"), {"n": name})
    with db.transaction("service", None, ACTOR) as session:
        session.execute(text("INSERT INTO clinics (name) VALUES (:n)"), {"n": name + " kept"})
        session.commit()
    with db.transaction("service", None, ACTOR) as session:
        found = session.execute(text("SELECT name FROM clinics WHERE name LIKE :n"),
                                {"n": name + "%"}).scalars().all()
    assert found == [name + " kept"]


def test_pool_stats_report_usage(database_url: str) -> None:
    db = Database(make_settings(database_url, pool_size=3))
    try:
        with tenant_session(db, CLINIC, ACTOR):
            stats = next(iter(db.pool_stats().values()))
            assert stats.size == 3
            assert stats.checked_out == 1
        stats = next(iter(db.pool_stats().values()))
        assert stats.checked_out == 0
        assert "@" not in next(iter(db.pool_stats()))  # no credentials in the key
    finally:
        db.close()
