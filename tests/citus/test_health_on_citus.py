"""``db health`` and ``db check`` on a distributed schema (issue 19, item 2).

On one server the live catalog is the whole truth; on Citus the shards on the workers are
not in the coordinator's catalog. The adversaries: the owner switching a guard off on a
worker's shard (where Citus refuses ``DISABLE TRIGGER`` on the distributed table) or lifting
a shard's forced row-level security, and the owner dropping a policy through the
coordinator. Each is found; the freshly migrated cluster is clean."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from neonpro.adapters.db import citus_health, schema_check
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.health import check_health
from neonpro.adapters.db.security import Roles
from neonpro.devtools import citus
from tests.citus.conftest import migrated_database
from tests.conftest import make_settings

DATABASE = "neonpro_health"


@pytest.fixture(scope="module")
def url(citus_cluster: citus.LocalCluster, roles: Roles) -> Iterator[str]:
    with migrated_database(citus_cluster, roles, DATABASE) as url:
        yield url


@pytest.fixture(scope="module")
def db(url: str) -> Iterator[Database]:
    database = Database(make_settings(url))
    try:
        yield database
    finally:
        database.close()


def _a_shard(cluster: citus.LocalCluster, table: str) -> tuple[int, str]:
    """(worker port, shard name) of one placement of ``table`` on a worker."""
    with psycopg.connect(cluster.url(database=DATABASE), autocommit=True) as conn:
        row = conn.execute(
            "SELECT n.nodeport, shard_name(s.logicalrelid, s.shardid) FROM pg_dist_shard s "
            "JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid) "
            "WHERE s.logicalrelid = %s::regclass AND n.groupid > 0 ORDER BY s.shardid LIMIT 1",
            (table,)).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def _on_worker(cluster: citus.LocalCluster, port: int, *statements: str) -> None:
    """As the tables' owner would, on the worker itself, past the coordinator."""
    with psycopg.connect(cluster.url(port, DATABASE), autocommit=True) as conn:
        conn.execute("SET citus.enable_manual_changes_to_shards = on")
        for statement in statements:
            conn.execute(statement)


def test_a_freshly_migrated_cluster_is_healthy_and_matches_the_migrations(db: Database) -> None:
    report = check_health(db, drift=True)
    assert report["checks"]["citus"] == {
        "ok": True, "workers": 2, "links_down": [], "tables_not_as_migrated": [],
        "shards_unlike_their_table": [], "nodes_with_synchronous_commit_off": [],
        "nodes_whose_functions_differ": []}
    assert report["checks"]["drift"] == {"ok": True, "checked": True, "differences": []}
    assert report["ok"], report


def test_a_trigger_switched_off_on_a_workers_shard_is_found(
        db: Database, citus_cluster: citus.LocalCluster) -> None:
    port, shard = _a_shard(citus_cluster, "patients")
    _on_worker(citus_cluster, port, f"ALTER TABLE {shard} DISABLE TRIGGER USER")
    try:
        found = citus_health.check(db)
        assert check_health(db, drift=True)["ok"] is False
    finally:
        _on_worker(citus_cluster, port, f"ALTER TABLE {shard} ENABLE TRIGGER USER")
    assert not found["ok"]
    [problem] = found["shards_unlike_their_table"]
    assert problem.startswith(f"patients: shard {shard.rsplit('_', 1)[1]} on 127.0.0.1:{port}")
    assert "triggers disabled: 3 (the table: 0)" in problem
    assert citus_health.check(db)["ok"]


def test_the_readiness_probe_does_not_ask_every_shard(db: Database) -> None:
    """Readiness answers the load balancer: one flaky worker link must not take every API
    instance out at once; the operator's `db health` asks the nodes."""
    assert "citus" not in check_health(db)["checks"]
    assert "citus" in check_health(db, drift=True)["checks"]


def test_a_guard_set_to_fire_on_replicas_only_is_found(
        db: Database, citus_cluster: citus.LocalCluster) -> None:
    """A trigger in replica mode never fires in a normal session: as good as disabled."""
    port, shard = _a_shard(citus_cluster, "consent_records")
    with psycopg.connect(citus_cluster.url(port, DATABASE), autocommit=True) as conn:
        conn.execute("SET citus.override_table_visibility = off")
        guard = conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass "
                             "AND NOT tgisinternal AND tgenabled = 'A' LIMIT 1",
                             (shard,)).fetchone()
    assert guard is not None
    _on_worker(citus_cluster, port, f'ALTER TABLE {shard} ENABLE REPLICA TRIGGER "{guard[0]}"')
    try:
        found = citus_health.check(db)
    finally:
        _on_worker(citus_cluster, port, f'ALTER TABLE {shard} ENABLE ALWAYS TRIGGER "{guard[0]}"')
    [problem] = found["shards_unlike_their_table"]
    assert "triggers enabled on replicas only: 1 (the table: 0)" in problem


def test_a_policy_opened_on_a_workers_shard_is_found(
        db: Database, citus_cluster: citus.LocalCluster) -> None:
    port, shard = _a_shard(citus_cluster, "patients")
    with psycopg.connect(citus_cluster.url(port, DATABASE), autocommit=True) as conn:
        conn.execute("SET citus.override_table_visibility = off")
        policy = conn.execute("SELECT polname, pg_get_expr(polqual, polrelid) FROM pg_policy "
                              "WHERE polrelid = %s::regclass AND polcmd = 'r'",
                              (shard,)).fetchone()
    assert policy is not None
    _on_worker(citus_cluster, port, f'ALTER POLICY "{policy[0]}" ON {shard} USING (true)')
    try:
        found = citus_health.check(db)
    finally:
        _on_worker(citus_cluster, port,
                   f'ALTER POLICY "{policy[0]}" ON {shard} USING ({policy[1]})')
    [problem] = found["shards_unlike_their_table"]
    assert "policies (digest)" in problem
    assert citus_health.check(db)["ok"]


def test_a_function_replaced_on_one_worker_is_found(
        db: Database, citus_cluster: citus.LocalCluster) -> None:
    worker = citus_cluster.workers[1]
    with psycopg.connect(citus_cluster.url(worker, DATABASE), autocommit=True) as conn:
        original = conn.execute("SELECT pg_get_functiondef('neonpro_table_of(oid)'::regprocedure)"
                                ).fetchone()
    assert original is not None
    _on_worker(citus_cluster, worker, "SET citus.enable_ddl_propagation = off",
               "CREATE OR REPLACE FUNCTION neonpro_table_of(p_rel oid) RETURNS text "
               "LANGUAGE sql STABLE AS $$ SELECT 'clinics'::text $$")
    try:
        found = citus_health.check(db)
    finally:
        _on_worker(citus_cluster, worker, "SET citus.enable_ddl_propagation = off",
                   str(original[0]))
    assert found["nodes_whose_functions_differ"] == [f"127.0.0.1:{worker}"]
    assert citus_health.check(db)["ok"]


def test_a_shards_forced_row_level_security_lifted_is_found(
        db: Database, citus_cluster: citus.LocalCluster) -> None:
    port, shard = _a_shard(citus_cluster, "audit_events")
    _on_worker(citus_cluster, port, f"ALTER TABLE {shard} NO FORCE ROW LEVEL SECURITY")
    try:
        found = citus_health.check(db)
    finally:
        _on_worker(citus_cluster, port, f"ALTER TABLE {shard} FORCE ROW LEVEL SECURITY")
    assert not found["ok"]
    assert [p.split(" (", 1)[1] for p in found["shards_unlike_their_table"]] == [
        "row-level security enabled and forced: false (the table: true))"]
    assert citus_health.check(db)["ok"]


def test_a_worker_committing_without_waiting_for_its_disk_is_found(
        db: Database, citus_cluster: citus.LocalCluster) -> None:
    """A transaction asks ``synchronous_commit = on`` of the coordinator only: a worker set
    to ``off`` server-wide would acknowledge its part before it is on disk."""
    worker = citus_cluster.workers[0]
    _on_worker(citus_cluster, worker, "ALTER SYSTEM SET synchronous_commit = off",
               "SELECT pg_reload_conf()")
    try:
        found = citus_health.check(db)
    finally:
        _on_worker(citus_cluster, worker, "ALTER SYSTEM RESET synchronous_commit",
                   "SELECT pg_reload_conf()")
    assert found["nodes_with_synchronous_commit_off"] == [f"127.0.0.1:{worker}"]
    assert not found["ok"]


def test_comparing_a_distributed_database_needs_a_superuser(
        citus_cluster: citus.LocalCluster, roles: Roles) -> None:
    owner = citus_cluster.url(database=DATABASE, login=roles.owner)
    report = schema_check.check_live(owner, owner, roles)
    assert report.differences == [
        "citus: the live database is distributed; comparing it needs a scratch Citus "
        "database on every node, which only a superuser's URL can make (schema not "
        "compared)"]


def test_a_policy_dropped_through_the_coordinator_is_drift(
        url: str, citus_cluster: citus.LocalCluster, roles: Roles) -> None:
    """Last: it leaves the module's database changed."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET ROLE {roles.owner}")
        policy = conn.execute("SELECT polname FROM pg_policy "
                              "WHERE polrelid = 'appointments'::regclass LIMIT 1").fetchone()
        assert policy is not None
        conn.execute(f'DROP POLICY "{policy[0]}" ON appointments')
    report = schema_check.check_live(url, url, roles)
    assert f"policy appointments.{policy[0]}: missing from the live database" in \
        report.differences
    port, shard = _a_shard(citus_cluster, "appointments")
    with psycopg.connect(citus_cluster.url(port, DATABASE), autocommit=True) as conn:
        conn.execute("SET citus.override_table_visibility = off")
        left = conn.execute("SELECT count(*) FROM pg_policy WHERE polrelid = %s::regclass "
                            "AND polname = %s", (shard, policy[0])).fetchone()
    assert left == (0,)  # Citus dropped it from the shards too: not a shard problem
