"""The migrations on a Citus coordinator: they run, the logins reach every worker and can log
in there, so the coordinator can open its connections to the workers as the login that runs
a distributed statement (the issue's first failure was ``role "neonpro_owner" is not
permitted to log in``), and revision 0017 distributes every table as docs/scaling.md says."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from neonpro.adapters.db import migrate
from neonpro.adapters.db.citus_sql import DISTRIBUTED, citus_tables
from neonpro.adapters.db.models import Base
from neonpro.adapters.db.security import Roles
from neonpro.devtools import citus

A = uuid.UUID("00000000-0000-0000-0000-00000000000a")
B = uuid.UUID("00000000-0000-0000-0000-00000000000b")


@pytest.fixture(scope="module")
def migrated(citus_cluster: citus.LocalCluster, roles: Roles) -> citus.LocalCluster:
    migrate.upgrade(citus_cluster.url(), roles)
    return citus_cluster


def test_every_login_exists_on_every_worker_and_can_log_in(
        migrated: citus.LocalCluster, roles: Roles) -> None:
    logins = [roles.owner, roles.app, roles.service, roles.legal_hold]
    for port in migrated.workers:
        with psycopg.connect(migrated.url(port), autocommit=True) as conn:
            found = dict(conn.execute("SELECT rolname, rolcanlogin FROM pg_roles "
                                      "WHERE rolname = ANY(%s)", (logins,)).fetchall())
        assert found == dict.fromkeys(logins, True), port
        for login in logins:  # the coordinator connects to the worker as the login
            with psycopg.connect(migrated.url(port, login=login), autocommit=True) as conn:
                assert conn.execute("SELECT current_user").fetchone() == (login,)


def test_the_application_login_reads_a_distributed_table_through_the_coordinator(
        migrated: citus.LocalCluster, roles: Roles) -> None:
    """A tenant table shaped like ours (row-level security forced, the policy on
    ``app.clinic_id``), distributed by clinic: the clinic set with ``SET LOCAL`` (propagated
    to the shards) sees its rows and none of another's; ``set_config`` does not reach them."""
    with psycopg.connect(migrated.url(), autocommit=True) as conn:
        conn.execute(f"SET ROLE {roles.owner}")
        conn.execute("CREATE TABLE probe (clinic_id uuid, n int, PRIMARY KEY (clinic_id, n))")
        conn.execute("SELECT create_distributed_table('probe', 'clinic_id')")
        conn.execute("ALTER TABLE probe ENABLE ROW LEVEL SECURITY")
        conn.execute("ALTER TABLE probe FORCE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY tenant ON probe USING (clinic_id = "
                     "NULLIF(current_setting('app.clinic_id', true), '')::uuid)")
        conn.execute(f"GRANT SELECT ON probe TO {roles.app}")
        conn.execute("RESET ROLE")
        conn.execute("INSERT INTO probe VALUES (%s, 1), (%s, 2), (%s, 3)", (A, B, B))
    try:
        with psycopg.connect(migrated.url(login=roles.app)) as conn:
            conn.execute("SELECT set_config('app.clinic_id', %s, true)", (str(A),))
            assert conn.execute("SELECT count(*) FROM probe").fetchone() == (0,)
            conn.rollback()
            conn.execute("SET LOCAL citus.propagate_set_commands = 'local'")
            conn.execute(f"SET LOCAL app.clinic_id = '{B}'")
            assert conn.execute("SELECT n FROM probe ORDER BY n").fetchall() == [(2,), (3,)]
            conn.rollback()
            assert conn.execute("SELECT count(*) FROM probe").fetchone() == (0,)
    finally:
        with psycopg.connect(migrated.url(), autocommit=True) as conn:
            conn.execute("DROP TABLE probe")


def test_every_table_is_distributed_as_the_docs_say(migrated: citus.LocalCluster) -> None:
    """Reference tables (kind ``n``) for the global ones and clinics; every tenant table
    (and the feed's outbox) hash-distributed by clinic_id, all in one co-location group."""
    with psycopg.connect(migrated.url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT logicalrelid::regclass::text, partmethod, colocationid, "
            "column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition").fetchall()
    found = {name: (method, group, key) for name, method, group, key in rows}
    kinds = citus_tables(Base.metadata)
    assert set(found) == set(kinds)
    for name, kind in kinds.items():
        method, _, key = found[name]
        assert (method, key) == (("h", "clinic_id") if kind == DISTRIBUTED else ("n", None))
    assert len({found[n][1] for n, k in kinds.items() if k == DISTRIBUTED}) == 1


def test_a_context_changed_after_binding_is_refused_on_the_worker(
        migrated: citus.LocalCluster, roles: Roles) -> None:
    """SQL running as the application binds its context, then switches the actor with a
    propagated ``SET LOCAL``: the audit event, written on the worker that holds the clinic's
    shard, is refused there (the worker checks the HMAC against the coordinator's
    transaction id); the same event with the bound context goes in."""
    actor, other = str(uuid.uuid4()), str(uuid.uuid4())
    insert = ("INSERT INTO audit_events (clinic_id, action, resource_type) "
              "VALUES (%s, 'VIEW', 'patients')")
    with psycopg.connect(migrated.url(login=roles.app)) as conn:
        conn.execute("SELECT neonpro_bind_context(%s, %s, 'admin', '', '', '', '')",
                     (str(A), actor))
        conn.execute(insert, (A,))
        conn.rollback()
        conn.execute("SELECT neonpro_bind_context(%s, %s, 'admin', '', '', '', '')",
                     (str(A), actor))
        conn.execute("SET LOCAL citus.propagate_set_commands = 'local'")
        conn.execute(f"SET LOCAL app.actor_id = '{other}'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege,  # refused by the worker
                           match=r"(?s)first statement.*while executing command on"):
            conn.execute(insert, (A,))
