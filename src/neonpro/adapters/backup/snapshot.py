"""What a backup's manifest records, read in the very snapshot pg_dump dumps.

``SnapshotReader`` opens a REPEATABLE READ transaction, exports its snapshot for pg_dump
(``--snapshot``) and, in that same snapshot, counts and checksums every table, reads the
audit chain heads, the migration head and the erasure ledger. The same functions run on
a restored database, so a verify compares like with like.

The checksum of a table is order-independent: the sum of the first 60 bits of the MD5 of
each row's text form, with every output setting that shapes that text pinned (time zone,
date and interval style, float digits, bytea format).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from neonpro.adapters.db.security import Roles
from neonpro.domain.backup import Target

_PINNED = (
    "SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true), "
    "set_config('IntervalStyle', 'postgres', true), "
    "set_config('extra_float_digits', '3', true), set_config('bytea_output', 'hex', true)"
)
_TABLES = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1"
)
_LEDGER_COLUMNS = ("id", "clinic_id", "patient_id", "request_id", "decided_at", "decided_by",
                   "outcome", "decisions")


def connect(target: Target) -> psycopg.Connection[Any]:
    return psycopg.connect(target.url(), autocommit=False, application_name="neonpro-backup")


@contextmanager
def snapshot(target: Target) -> Iterator[tuple[psycopg.Connection[Any], str]]:
    """A read-only REPEATABLE READ transaction and its exported snapshot id."""
    with connect(target) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None  # noqa: S101
        try:
            yield conn, str(row[0])
        finally:
            conn.rollback()


def owner_only_tables(conn: psycopg.Connection[Any], roles: Roles) -> list[str]:
    """Tables and sequences the service role may not read (the audit pads, the migration
    head): they are dumped by the owner."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S') AND NOT CASE c.relkind "
        "  WHEN 'S' THEN has_sequence_privilege(%(r)s, c.oid, 'SELECT') "
        "  ELSE has_table_privilege(%(r)s, c.oid, 'SELECT') END ORDER BY 1",
        {"r": roles.service}).fetchall()
    return [r[0] for r in rows]


def _role_for(conn: psycopg.Connection[Any], roles: Roles, table: str) -> str | None:
    """The role that sees every row of ``table`` as pg_dump does: the service role
    (BYPASSRLS), else the owner (tables only the owner may read)."""
    for role in (roles.service, roles.owner):
        row = conn.execute(
            "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %(r)s) "
            "AND has_table_privilege(%(r)s, format('public.%%I', %(t)s::text), 'SELECT')",
            {"r": role, "t": table}).fetchone()
        if row and row[0]:
            return role
    return None


# Two ways to checksum a table, both a sum over rows (order-independent): the 64-bit hash
# of each row's values (PostgreSQL's own hash functions, no text conversion: 5x faster),
# and, for a table with a column type that has no hash function, the MD5 of each row's
# text form (with the output settings pinned).
CHECKSUMS = {
    "hash64": "SELECT count(*), coalesce(sum(hash_record_extended(t, 0)::numeric), 0)::text "
              "FROM public.{} t",
    "md5": "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)"
           "::bigint), 0)::text FROM public.{} t",
}


def table_stats(conn: psycopg.Connection[Any], roles: Roles,
                methods: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """``{table: {"rows": n, "checksum": "...", "method": m}}`` for every table of schema
    public; ``methods`` (a manifest's) makes a restored copy use the same method."""
    conn.execute(_PINNED)
    tables = [r[0] for r in conn.execute(_TABLES).fetchall()]
    out: dict[str, dict[str, Any]] = {}
    for table in tables:
        role = _role_for(conn, roles, table)
        conn.execute("SELECT set_config('role', %s, true)", (role or "none",))
        wanted = (methods or {}).get(table)
        for method in [wanted] if wanted in CHECKSUMS else list(CHECKSUMS):
            query = sql.SQL(CHECKSUMS[method]).format(sql.Identifier(table))
            try:
                with conn.transaction():  # a savepoint: a type without a hash falls back
                    row = conn.execute(query).fetchone()
            except psycopg.errors.UndefinedFunction:
                continue
            assert row is not None  # noqa: S101
            out[table] = {"rows": int(row[0]), "checksum": str(row[1]), "method": method}
            break
    conn.execute("SELECT set_config('role', 'none', true)")
    return out


def _has_table(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",)).fetchone()
    return bool(row and row[0])


def migration_head(conn: psycopg.Connection[Any]) -> str | None:
    if not _has_table(conn, "alembic_version"):
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def audit_heads(conn: psycopg.Connection[Any], roles: Roles) -> dict[str, Any]:
    """Per clinic: the last sealed sequence number and its hash; and unsealed events."""
    if not _has_table(conn, "audit_events"):
        return {"chains": {}, "unsealed": 0}
    conn.execute("SELECT set_config('role', %s, true)", (roles.service,))
    rows = conn.execute(
        "SELECT DISTINCT ON (clinic_id) clinic_id::text, seq, encode(hash, 'hex') "
        "FROM audit_events WHERE seq IS NOT NULL ORDER BY clinic_id, seq DESC").fetchall()
    unsealed = conn.execute("SELECT count(*) FROM audit_events WHERE seq IS NULL").fetchone()
    conn.execute("SELECT set_config('role', 'none', true)")
    return {"chains": {r[0]: {"seq": int(r[1]), "hash": r[2]} for r in rows},
            "unsealed": int(unsealed[0]) if unsealed else 0}


def ledger(conn: psycopg.Connection[Any], roles: Roles) -> list[dict[str, Any]]:
    """Every erasure-ledger entry (identifiers, times and legal decisions; no personal data)."""
    if not _has_table(conn, "erasure_ledger"):
        return []
    conn.execute("SELECT set_config('role', %s, true)", (roles.service,))
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in _LEDGER_COLUMNS)
    cursor = conn.execute(sql.SQL("SELECT {} FROM erasure_ledger ORDER BY decided_at, id")
                          .format(cols))
    rows: list[dict[str, Any]] = []
    for record in cursor.fetchall():
        row = dict(zip(_LEDGER_COLUMNS, record, strict=True))
        for column in ("id", "clinic_id", "patient_id", "request_id", "decided_by"):
            if row[column] is not None:
                row[column] = str(row[column])
        row["decided_at"] = row["decided_at"].isoformat()
        rows.append(row)
    conn.execute("SELECT set_config('role', 'none', true)")
    return rows


def insert_ledger(conn: psycopg.Connection[Any], roles: Roles,
                  entries: list[dict[str, Any]]) -> int:
    """Append the entries this database lacks (same ids); returns how many were added."""
    if not entries:
        return 0
    conn.execute("SELECT set_config('role', %s, true)", (roles.service,))
    added = 0
    with conn.cursor() as cur:
        for e in entries:
            cur.execute(
                "INSERT INTO erasure_ledger (id, clinic_id, patient_id, request_id, decided_at, "
                "decided_by, outcome, decisions) SELECT %(id)s, %(clinic_id)s, %(patient_id)s, "
                "%(request_id)s, %(decided_at)s, %(decided_by)s, %(outcome)s, %(decisions)s "
                "WHERE NOT EXISTS (SELECT FROM erasure_ledger WHERE id = %(id)s)",
                {**e, "decisions": Jsonb(e["decisions"])})
            added += cur.rowcount
    conn.execute("SELECT set_config('role', 'none', true)")
    return added
