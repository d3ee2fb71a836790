"""Drift of the live database: a schema changed by hand is named by ``check_live`` and by
the health report's drift check (issue 13, defect 8: a column added by hand and a policy
dropped by hand went unreported by ``db check`` and ``db health``)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.db import health, migrate, schema_check
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.health import check_health
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.services import backup as backup_svc
from tests.conftest import create_database, drop_database, make_settings
from tests.integration.test_backup import source, target  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def template_url(admin_url: str, roles: Roles) -> Iterator[str]:
    """A database migrated to head once; each test works on a copy of it."""
    url = create_database(admin_url, "drifttmpl")
    try:
        migrate.upgrade(url, roles)
        yield url
    finally:
        drop_database(admin_url, url)


@pytest.fixture
def live_url(admin_url: str, template_url: str) -> Iterator[str]:
    copy = create_database(admin_url, "drift")
    drop_database(admin_url, copy)  # the name only: re-created from the template
    engine = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{make_url(copy).database}" '
                          f'TEMPLATE "{make_url(template_url).database}"'))
    engine.dispose()
    try:
        yield copy
    finally:
        drop_database(admin_url, copy)


def _by_hand(url: str, *statements: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def _health_drift(url: str) -> dict[str, object]:
    db = Database(make_settings(url), url=url)
    try:
        report = check_health(db, drift=True)
    finally:
        db.close()
    drift = report["checks"]["drift"]
    if not drift["ok"]:
        assert report["ok"] is False  # drift fails the report (db health exits 1)
    return dict(drift)


HAND_CHANGES = {
    "extra column": (
        ["ALTER TABLE patients ADD COLUMN hand_notes text"],
        "column patients.hand_notes: in the live database, not in the migrations"),
    "dropped column": (
        ["ALTER TABLE service_types DROP COLUMN description"],
        "column service_types.description: missing from the live database"),
    "dropped policy": (
        ["DROP POLICY patients_tenant_delete ON patients"],
        "policy patients.patients_tenant_delete: missing from the live database"),
    "altered policy": (
        ["ALTER POLICY patients_tenant_select ON patients USING (true)"],
        "policy patients.patients_tenant_select: differs from the migrations (using)"),
    "dropped trigger": (
        ["DROP TRIGGER appointments_touch_updated_at ON appointments"],
        "trigger appointments.appointments_touch_updated_at: missing from the live database"),
    "disabled trigger": (
        ["ALTER TABLE appointments DISABLE TRIGGER appointments_touch_updated_at"],
        "trigger appointments.appointments_touch_updated_at: differs from the migrations "
        "(enabled)"),
    "extra grant to the app role": (
        ["GRANT TRUNCATE ON clinics TO neonpro_app"],
        "grant TRUNCATE on clinics to neonpro_app: in the live database, not in the "
        "migrations"),
    "revoked grant": (
        ["REVOKE DELETE ON patients FROM neonpro_app"],
        "grant DELETE on patients to neonpro_app: missing from the live database"),
    "RLS disabled": (
        ["ALTER TABLE professionals DISABLE ROW LEVEL SECURITY"],
        "table professionals: differs from the migrations (row level security)"),
    "FORCE off": (
        ["ALTER TABLE service_types NO FORCE ROW LEVEL SECURITY"],
        "table service_types: differs from the migrations (forced row level security)"),
    "dropped index": (
        ["DROP INDEX ix_professionals_clinic_id_is_active"],
        "index professionals.ix_professionals_clinic_id_is_active: missing from the live "
        "database"),
    "extra table": (
        ["CREATE TABLE hand_made (id int PRIMARY KEY, note text)",
         "GRANT SELECT ON hand_made TO neonpro_app"],
        "table hand_made: in the live database, not in the migrations"),
    "extra view": (
        ["CREATE VIEW hand_view AS SELECT id FROM clinics"],
        "relation hand_view: in the live database, not in the migrations"),
    "extra function": (
        ["CREATE FUNCTION hand_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'"],
        "function hand_fn(): in the live database, not in the migrations"),
    "function body replaced": (
        ["CREATE OR REPLACE FUNCTION neonpro_touch_updated_at() RETURNS trigger "
         "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"],
        "function neonpro_touch_updated_at(): differs from the migrations (body)"),
}


@pytest.mark.parametrize("case", list(HAND_CHANGES), ids=list(HAND_CHANGES))
def test_a_hand_change_is_named(live_url: str, admin_url: str, roles: Roles, case: str) -> None:
    statements, expected = HAND_CHANGES[case]
    _by_hand(live_url, *statements)

    report = schema_check.check_live(live_url, admin_url, roles)
    assert expected in report.differences, report.differences
    assert not report.clean
    if case not in ("dropped column",):  # a dropped column takes its grants with it
        assert report.differences == [expected]  # one line, the table's parts not repeated

    drift = _health_drift(live_url)
    assert drift["ok"] is False
    assert expected in drift["differences"]  # type: ignore[operator]


def test_lines_name_objects_never_values(live_url: str, admin_url: str, roles: Roles) -> None:
    _by_hand(live_url,
             "ALTER TABLE patients ADD COLUMN hand_secret text DEFAULT 'hunter2-value'",
             "ALTER POLICY patients_tenant_select ON patients USING (id::text <> 'x-value')")
    report = schema_check.check_live(live_url, admin_url, roles)
    assert len(report.differences) == 2
    assert not any("value" in line or "current_setting" in line
                   for line in report.differences), report.differences


def test_a_clean_migrated_database_has_no_drift(
    live_url: str, admin_url: str, roles: Roles
) -> None:
    report = schema_check.check_live(live_url, admin_url, roles)
    assert report.migrated
    assert report.clean, report.differences
    drift = _health_drift(live_url)
    assert drift == {"ok": True, "checked": True, "differences": []}


def test_an_unmigrated_database_is_not_compared(
    fresh_database_url: str, admin_url: str, roles: Roles
) -> None:
    report = schema_check.check_live(fresh_database_url, admin_url, roles)
    assert not report.migrated
    assert report.clean


def test_a_database_behind_head_is_compared_with_its_own_revision(
    fresh_database_url: str, admin_url: str, roles: Roles
) -> None:
    history = [rev for rev, _down, _doc in migrate.history()]
    previous = history[-2]
    migrate.upgrade(fresh_database_url, roles, previous)
    report = schema_check.check_live(fresh_database_url, admin_url, roles)
    assert len(report.differences) == 1, report.differences  # not the whole of head's changes
    assert f"at {previous}" in report.differences[0]

    _by_hand(fresh_database_url, "DROP POLICY patients_tenant_delete ON patients")
    report = schema_check.check_live(fresh_database_url, admin_url, roles)
    assert "policy patients.patients_tenant_delete: missing from the live database" \
        in report.differences


def test_a_restored_database_has_no_drift(
    source: tuple[Container, uuid.UUID], target: str, admin_url: str, roles: Roles  # noqa: F811
) -> None:
    """pg_restore leaves an ACL equal to the default as NULL where the migrations wrote it
    out (audit_ref_keys: the owner's own privileges): the same privileges, no drift."""
    box, _clinic = source
    backup = backup_svc.create_backup(box)
    assert backup_svc.restore_backup(box, backup, target).ok
    report = schema_check.check_live(target, admin_url, roles)
    assert report.migrated
    assert report.clean, report.differences


def test_without_createdb_the_health_drift_check_says_it_could_not_tell(
    live_url: str, admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema_check, "_EXPECTED", {})  # a new process: nothing remembered
    name = f"neonpro_test_nocreatedb_{secrets.token_hex(3)}"
    password = secrets.token_hex(8)
    _by_hand(admin_url, f"CREATE ROLE {name} LOGIN NOCREATEDB PASSWORD '{password}'")
    _by_hand(live_url, f"GRANT SELECT ON alembic_version TO {name}")  # as the owner could
    url = make_url(live_url).set(username=name, password=password)
    plain = url.render_as_string(hide_password=False)
    db = Database(make_settings(plain), url=plain)
    try:
        drift = health._drift(db)
    finally:
        db.close()
        _by_hand(live_url, f"REVOKE SELECT ON alembic_version FROM {name}")
        _by_hand(admin_url, f"DROP ROLE {name}")
    assert drift["ok"] is True
    assert drift["checked"] is False
    assert "CREATEDB" in drift["reason"]
