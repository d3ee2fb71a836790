"""A restored database stays closed to the application until its erasures are proven
re-applied (docs/operations.md).

A restore brings back rows as they were when the backup (or the target time) was taken; an
erasure decided later is re-applied from the erasure ledgers it can read: the live
database's and those of later backups. When the live ledger cannot be read, erasures decided
after the newest backup are unknown, and the restored database may hold a patient's name,
CPF and phone that the patient had erased. Such a database is put on hold:

* ``REVOKE USAGE ON SCHEMA public`` from the application and legal-hold roles (and from
  PUBLIC, through which every role has it by default): the database refuses every query of
  theirs, however the application connects (the service role, which finishes the job,
  keeps access);
* ``ALTER DATABASE ... SET neonpro.restore_hold = '<why>'``: a marker in the catalog, so the
  migrations do not grant the usage back, the health check fails (``/health/ready``
  503) and ``neonpro serve`` refuses to start, naming the command that finishes the job.

The hold is lifted by that command once the erasures are proven re-applied, or by an
explicit acceptance of the risk (recorded in the audit trail). Both need the restore's
login (the database's owner or a superuser).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from neonpro.adapters.db.security import Roles

SETTING = "neonpro.restore_hold"
PUBLIC_SETTING = "neonpro.restore_hold_public"  # PUBLIC had usage of public before the hold
# read from the catalog, not current_setting(): a session opened before the hold was
# placed or lifted keeps the value it started with
READ = (
    "SELECT substr(c, length('neonpro.restore_hold=') + 1) FROM pg_db_role_setting s "
    "JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) c "
    "WHERE d.datname = current_database() AND s.setrole = 0 "
    "AND starts_with(c, 'neonpro.restore_hold=')")
PUBLIC_HAS_USAGE = (
    "SELECT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(coalesce(n.nspacl, "
    "acldefault('n', n.nspowner))) a WHERE n.nspname = 'public' AND a.grantee = 0 "
    "AND a.privilege_type = 'USAGE')")
DATABASE_SETTINGS = (
    "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
    "WHERE d.datname = current_database() AND s.setrole = 0")


def hold(conn: psycopg.Connection[Any], roles: Roles, reason: str) -> None:
    """Close the connected database to the application role (its login must own it).

    Usage of schema ``public`` is taken from PUBLIC too (PostgreSQL grants it to everyone
    by default, the application role included); whether PUBLIC had it is remembered, so
    lifting the hold gives back exactly what was there."""
    database = _name(conn)
    row = conn.execute(PUBLIC_HAS_USAGE).fetchone()
    if row is not None and row[0]:
        _set(conn, database, PUBLIC_SETTING, "usage")
    _set(conn, database, SETTING, reason[:500])
    conn.execute(sql.SQL("REVOKE USAGE ON SCHEMA public FROM PUBLIC, {}, {}").format(
        sql.Identifier(roles.app), sql.Identifier(roles.legal_hold)))
    conn.commit()


def lift(conn: psycopg.Connection[Any], roles: Roles) -> None:
    """Open the connected database to the application role again."""
    database = _name(conn)
    settings = conn.execute(DATABASE_SETTINGS).fetchone()
    had_public = settings is not None and f"{PUBLIC_SETTING}=usage" in (settings[0] or [])
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(
        sql.Identifier(roles.app), sql.Identifier(roles.legal_hold)))
    if had_public:
        conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
    for name in (SETTING, PUBLIC_SETTING):
        conn.execute(sql.SQL("ALTER DATABASE {} RESET {}").format(
            sql.Identifier(database), sql.Identifier(*name.split("."))))
    conn.commit()


def _set(conn: psycopg.Connection[Any], database: str, name: str, value: str) -> None:
    conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
        sql.Identifier(database), sql.Identifier(*name.split(".")), sql.Literal(value)))


def reason_of(conn: psycopg.Connection[Any]) -> str | None:
    """Why the connected database is on hold, or None."""
    row = conn.execute(READ).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _name(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None  # noqa: S101
    return str(row[0])
