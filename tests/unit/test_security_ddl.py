from __future__ import annotations

from neonpro.adapters.db.models import Base
from neonpro.adapters.db.security import Roles, expected_ddl


def test_every_table_gets_enabled_and_forced_rls() -> None:
    ddl = "\n".join(expected_ddl(Base.metadata, Roles()))
    for table in Base.metadata.tables:
        assert f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY" in ddl
        assert f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY" in ddl
        assert f"REVOKE ALL ON {table} FROM PUBLIC" in ddl


def test_audit_events_are_never_granted_update_delete_or_truncate() -> None:
    grants = [s for s in expected_ddl(Base.metadata, Roles()) if " ON audit_events TO " in s]
    assert grants
    for grant in grants:
        assert "UPDATE" not in grant
        assert "DELETE" not in grant
        assert "TRUNCATE" not in grant


def test_application_role_cannot_read_password_hashes() -> None:
    ddl = [s for s in expected_ddl(Base.metadata, Roles()) if "ON staff_users TO neonpro_app" in s]
    assert len(ddl) == 1
    assert "password_hash" not in ddl[0]
    assert "email" in ddl[0]
