"""The health check reports each failure it claims to detect."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.db import migrate
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.embedded import EmbeddedPostgres
from neonpro.adapters.db.health import check_health
from neonpro.adapters.db.security import Roles
from tests.conftest import make_settings


def _owner_sql(url: str, sql: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.fixture
def migrated_url(fresh_database_url: str, roles: Roles) -> str:
    migrate.upgrade(fresh_database_url, roles)
    return fresh_database_url


def _health(url: str, **settings: object) -> dict[str, object]:
    db = Database(make_settings(url, **settings))
    try:
        return check_health(db)
    finally:
        db.close()


def test_healthy_database_passes_every_check(db: Database) -> None:
    report = check_health(db)
    assert report["ok"], report
    checks = report["checks"]
    assert checks["connectivity"]["latency_ms"] >= 0
    assert checks["migrations"]["current"] == [checks["migrations"]["head"]]
    assert checks["rls"]["not_forced"] == []
    assert checks["tenant_role"]["role"] == "neonpro_app"


def test_unmigrated_database_fails_migrations_and_rls(fresh_database_url: str) -> None:
    report = _health(fresh_database_url)
    assert not report["ok"]
    checks = report["checks"]
    assert not checks["migrations"]["ok"]  # type: ignore[index]
    assert checks["migrations"]["current"] == []  # type: ignore[index]
    assert not checks["rls"]["ok"]  # type: ignore[index]


def test_rls_disabled_or_not_forced_is_named(migrated_url: str) -> None:
    _owner_sql(migrated_url, "ALTER TABLE patients NO FORCE ROW LEVEL SECURITY")
    _owner_sql(migrated_url, "ALTER TABLE appointments DISABLE ROW LEVEL SECURITY")
    report = _health(migrated_url)
    rls = report["checks"]["rls"]  # type: ignore[index]
    assert not report["ok"]
    assert rls["not_forced"] == ["patients"]
    assert rls["not_enabled"] == ["appointments"]


def test_tenant_role_with_bypassrls_fails(migrated_url: str) -> None:
    name = f"neonpro_test_bypass_{secrets.token_hex(3)}"
    _owner_sql(migrated_url, f"CREATE ROLE {name} LOGIN BYPASSRLS")
    _owner_sql(migrated_url, "GRANT EXECUTE ON FUNCTION neonpro_bind_context(text, text, text, "
                             f"text, text, text, text) TO {name}")
    try:
        report = _health(migrated_url, app_role=name)
        tenant = report["checks"]["tenant_role"]  # type: ignore[index]
        assert not report["ok"]
        assert tenant["bypassrls"] is True
    finally:
        _owner_sql(migrated_url, f"REVOKE ALL ON FUNCTION neonpro_bind_context(text, text, text, "
                                 f"text, text, text, text) FROM {name}")
        _owner_sql(migrated_url, f"DROP ROLE {name}")


def test_application_login_with_a_membership_fails(migrated_url: str, roles: Roles) -> None:
    """A membership granted by hand (the way back to another role's powers) is named."""
    _owner_sql(migrated_url, f"GRANT {roles.service} TO {roles.app}")
    try:
        report = _health(migrated_url)
        tenant = report["checks"]["tenant_role"]  # type: ignore[index]
        assert not report["ok"]
        assert tenant["member_of"] == [roles.service]
    finally:
        _owner_sql(migrated_url, f"REVOKE {roles.service} FROM {roles.app}")


def test_tenant_role_that_owns_the_tables_fails(migrated_url: str, roles: Roles) -> None:
    report = _health(migrated_url, app_role=roles.owner, owner_role="neonpro_other_owner")
    tenant = report["checks"]["tenant_role"]  # type: ignore[index]
    assert not report["ok"]
    assert tenant["owns_tables"] is True


@pytest.fixture
def embedded() -> Iterator[EmbeddedPostgres]:
    base = Path(tempfile.mkdtemp(prefix="neonpro-health-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base)
    try:
        yield server
    finally:
        server.destroy()


@pytest.mark.slow
def test_stopped_embedded_server_is_reported(embedded: EmbeddedPostgres, roles: Roles) -> None:
    url = embedded.start()
    migrate.upgrade(url, roles)
    db = Database(make_settings(url), url=url)
    try:
        assert check_health(db)["ok"]
        embedded.stop()
        report = check_health(db)
        assert not report["ok"]
        assert report["checks"]["connectivity"]["ok"] is False
        assert set(report["checks"]) == {"connectivity"}
    finally:
        db.close()
