"""The backup tools' direct connections to PostgreSQL (raw psycopg, as the owner's login).

Why not the unit of work: every function here works on a database named by a
:class:`Target` (a restore target, a scratch copy, the live database seen from outside),
which often is not the application's database, may not exist yet, or is being replaced;
several statements cannot run in a transaction at all (``CREATE``/``DROP DATABASE``) or
need the owner's login (roles, grants, the restore hold, the owner-only tables). The
unit of work speaks for the application inside one clinic's tenant; these speak for the
operator about whole databases. Each function says which of these reasons applies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from neonpro.adapters.backup import snapshot as snap
from neonpro.adapters.db import restore_hold
from neonpro.adapters.db.citus_nodes import HAS_CITUS
from neonpro.adapters.db.security import Roles, bootstrap_roles_sql
from neonpro.domain.backup import BackupError, ManifestReads, ServerFacts, Target


def _admin(target: Target) -> psycopg.Connection[Any]:
    """A connection to the maintenance database of ``target``'s server."""
    return psycopg.connect(target.with_database("postgres").url(), autocommit=True,
                           application_name="neonpro-backup")


def database_exists(target: Target) -> bool:
    # not the unit of work: asks the server's catalog about a database that may not exist
    with _admin(target) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                           (target.database,)).fetchone()
    return row is not None


def is_empty(target: Target) -> bool:
    # not the unit of work: a restore target, checked before it is replaced
    with snap.connect(target) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%%' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
        ).fetchone()
    return row is not None and row[0] == 0


def create_database(target: Target, *, replace: bool) -> None:
    # not the unit of work: CREATE and DROP DATABASE cannot run inside a transaction
    with _admin(target) as conn:
        name = sql.Identifier(target.database)
        if replace:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(name))


def drop_database(target: Target) -> None:
    # not the unit of work: DROP DATABASE cannot run inside a transaction
    with _admin(target) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                     .format(sql.Identifier(target.database)))


def ensure_roles(target: Target, roles: Roles) -> None:
    """Roles are cluster-wide: create them (idempotently) before any grant is restored."""
    # not the unit of work: roles belong to the cluster, created by the owner's login
    with _admin(target) as conn:
        conn.execute(bootstrap_roles_sql(roles).encode())


def server_major(target: Target) -> int:
    # not the unit of work: the target may be a freshly created, empty database
    with snap.connect(target) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int / 10000"
                           ).fetchone()
    return int(row[0]) if row else 0


def hold(target: Target, roles: Roles, reason: str) -> None:
    # not the unit of work: REVOKE and ALTER DATABASE need the owner, and the application
    # role is the one being shut out
    with snap.connect(target) as conn:
        restore_hold.hold(conn, roles, reason)


def lift(target: Target, roles: Roles) -> None:
    # not the unit of work: as for hold()
    with snap.connect(target) as conn:
        restore_hold.lift(conn, roles)


def read_stats(target: Target, roles: Roles,
               methods: dict[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Every table's row count and checksum (with the manifest's ``methods``) and the
    audit chain heads of ``target``, read as a manifest is."""
    # not the unit of work: a restored copy, read across every clinic and the owner-only
    # tables, exactly as the manifest was read
    with snap.connect(target) as conn:
        tables = snap.table_stats(conn, roles, methods)
        heads = snap.audit_heads(conn, roles)
        conn.rollback()
    return tables, heads


def read_ledger(target: Target, roles: Roles) -> list[dict[str, Any]]:
    """The erasure ledger of ``target`` (``psycopg.Error`` when it cannot be read)."""
    # not the unit of work: the live database seen by a restore of another one, or a
    # target about to be replaced; the ledger spans every clinic
    with snap.connect(target) as conn:
        return snap.ledger(conn, roles)


def insert_ledger(target: Target, roles: Roles, entries: list[dict[str, Any]]) -> None:
    """Append the ledger entries ``target`` lacks, and commit."""
    # not the unit of work: a restored database gets entries of every clinic, ids kept
    with snap.connect(target) as conn:
        snap.insert_ledger(conn, roles, entries)
        conn.commit()


@dataclass(frozen=True)
class Snapshot:
    """An exported snapshot, held open by its REPEATABLE READ transaction."""

    conn: psycopg.Connection[Any]
    roles: Roles
    id: str
    facts: ServerFacts

    def owner_only_tables(self) -> list[str]:
        return snap.owner_only_tables(self.conn, self.roles)

    def manifest_reads(self) -> ManifestReads:
        conn, roles = self.conn, self.roles
        tables = snap.table_stats(conn, roles)
        audit = snap.audit_heads(conn, roles)
        head = snap.migration_head(conn)
        return ManifestReads(tables, audit, head, snap.ledger(conn, roles))


# measured on a coordinator: pg_dump gets the distributed tables' rows (Citus serves the
# COPY from the shards) and a quiet cluster's backup verifies, but each worker is read in a
# snapshot of its own, not the exported one the manifest is read in: under writes the
# backup is no single moment of the cluster
CITUS_REFUSED = (
    "this database is distributed with Citus: pg_dump reads each worker in a snapshot of its "
    "own, so under writes a backup of the coordinator is no single moment of the cluster; "
    "neonpro backup refuses it: back up every node with pgBackRest and "
    "citus_create_restore_point (docs/scaling.md, 'Backups on Citus')")


@contextmanager
def exported_snapshot(target: Target, roles: Roles) -> Iterator[Snapshot]:
    """A REPEATABLE READ transaction, its exported snapshot id, and the server's facts."""
    # not the unit of work: pg_dump joins this very snapshot (--snapshot) while the
    # manifest is read in it (every clinic, the owner-only tables); the unit of work
    # cannot export its snapshot
    with snap.snapshot(target) as (conn, snapshot_id):
        row = conn.execute("SELECT now(), current_setting('server_version'), "
                           "current_setting('server_version_num')::int / 10000").fetchone()
        assert row is not None  # noqa: S101
        if conn.execute(HAS_CITUS).fetchone() == (True,):
            raise BackupError(CITUS_REFUSED)
        yield Snapshot(conn, roles, snapshot_id, ServerFacts(row[0], row[1], row[2]))


def measure_wal_rpo(target: Target, *, wait_s: float) -> tuple[float | None, str]:
    """Commit a WAL record, then wait for the archiver to ship its segment."""
    # not the unit of work: server settings and the archiver's statistics, in autocommit
    with snap.connect(target) as conn:
        conn.autocommit = True
        row = conn.execute("SELECT current_setting('archive_mode'), "
                           "current_setting('archive_command')").fetchone()
        if row is None or row[0] == "off" or not row[1] or row[1] == "(disabled)":
            return None, "no WAL archiving: logical backups alone lose what was written since"
        # a committed transaction that writes WAL, without touching any neonpro table
        lsn_row = conn.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn()), "
                               "txid_current()").fetchone()
        assert lsn_row is not None  # noqa: S101
        segment = str(lsn_row[0])
        written = time.monotonic()
        while time.monotonic() - written < wait_s:
            done = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
            if done and done[0] and str(done[0])[:24] >= segment:
                return round(time.monotonic() - written, 3), "WAL archiving (measured)"
            time.sleep(0.5)
    return wait_s, f"WAL segment not archived within {wait_s:.0f} s"
