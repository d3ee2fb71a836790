"""Distributing a database that already holds data (``neonpro db distribute``).

A database built on one server, restored onto a Citus coordinator, is already at the
migrations' head: revisions 0017-0021 ran there with their single-server effects (none
distributes anything), so ``neonpro db upgrade`` changes nothing and every table stays on
the coordinator. This runs what those revisions run on a Citus database, as they are today
(``citus_sql.distribute_sql``): the tables distributed (their rows copied to the shards in
the same transaction), the functions that differ on Citus, the evidence grant, the feed's
outbox; and the functions made before the extension are sent to the workers. As the
tables' owner, in three transactions: the tables with their rows, the functions sent, the
functions that differ on Citus (in one, Citus deadlocked with itself); if a later one fails,
running the command again finishes it (a distributed table is left as it is).

Refused, with the reason, where it cannot be right: no Citus extension, no worker
registered, or the schema not at the migrations' head (the Citus statements are today's).
Running it again on a distributed database changes nothing.
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from sqlalchemy import make_url

from neonpro.adapters.db import migrate
from neonpro.adapters.db.citus_nodes import HAS_CITUS
from neonpro.adapters.db.citus_sql import citus_kinds, distribute_sql
from neonpro.adapters.db.models import Base
from neonpro.adapters.db.security import Roles
from neonpro.domain.operations import CannotDistribute, Distributed

_WORKERS = "SELECT count(*) FROM pg_dist_node WHERE groupid > 0 AND isactive"
_DISTRIBUTED = ("SELECT count(*) FROM pg_dist_partition "
                "WHERE logicalrelid::regclass::text = ANY(%s)")


def distribute(url: str, roles: Roles) -> Distributed:
    """Distribute the database at ``url`` (a superuser's or the owner's login)."""
    head = migrate.head_revision()
    if migrate.current_revisions(url) != (head,):
        msg = (f"the schema is not at the migrations' head ({head}): run neonpro db upgrade "
               "first")
        raise CannotDistribute(msg)
    kinds = citus_kinds(Base.metadata)
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    statements = [st.replace("{service}", roles.service) for st in distribute_sql(kinds)]
    tables, functions = statements[:3], statements[3:]  # the settings and the tables; the rest
    with psycopg.connect(plain) as conn:
        _check(conn)
        before = _count(conn, _DISTRIBUTED, (list(kinds),))
        conn.execute(_as_owner(roles))
        # the rows are copied into the shards, where the guards would refuse them (a sealed
        # audit event inserted): the owner switches its triggers off for the copy and puts
        # each back as it was (Citus sends that on to the shards), in this transaction
        states = _triggers(conn, list(kinds)) if before == 0 else []
        for table in {table for table, _name, _state in states}:
            conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(
                sql.Identifier(table)))
        for statement in tables:
            conn.execute(statement)
        for table, name, state in states:
            conn.execute(sql.SQL("ALTER TABLE {} {} {}").format(
                sql.Identifier(table), sql.SQL(_ENABLE[state]), sql.Identifier(name)))
        conn.commit()
        # functions made before the extension are on the coordinator only (Citus sends a
        # function to the workers when it is created with Citus there, or when told): the
        # triggers on the shards call them on the workers
        conn.execute(_as_owner(roles))
        conn.execute(_SEND_FUNCTIONS)
        conn.commit()
        # then the functions that differ on Citus: replacing one (which Citus sends to the
        # workers) in the transaction that distributed the tables deadlocked (measured)
        conn.execute(_as_owner(roles))
        conn.execute("SET LOCAL citus.enable_unsafe_triggers = on")
        for statement in functions:
            conn.execute(statement)
        conn.commit()
        after = _count(conn, _DISTRIBUTED, (list(kinds),))
        workers = _count(conn, _WORKERS)
    return Distributed(after - before, workers)


_SEND_FUNCTIONS = (
    "SELECT count(create_distributed_function(p.oid::regprocedure)) FROM pg_proc p "
    "WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f' "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass "
    "                AND d.objid = p.oid AND d.deptype = 'e') "
    "AND NOT EXISTS (SELECT 1 FROM pg_dist_object o WHERE o.classid = 'pg_proc'::regclass "
    "                AND o.objid = p.oid)")
_TRIGGERS = ("SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t "
             "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal "
             "AND c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s) "
             "ORDER BY 1, 2")
_ENABLE = {"O": "ENABLE TRIGGER", "A": "ENABLE ALWAYS TRIGGER", "R": "ENABLE REPLICA TRIGGER",
           "D": "DISABLE TRIGGER"}


def _triggers(conn: psycopg.Connection[tuple[object, ...]],
              tables: list[str]) -> list[tuple[str, str, str]]:
    return [(str(t), str(n), str(e)) for t, n, e in conn.execute(_TRIGGERS, (tables,))]


def _as_owner(roles: Roles) -> sql.Composed:
    return sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(roles.owner))


def _check(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    if conn.execute(HAS_CITUS).fetchone() != (True,):
        msg = ("this database has no Citus extension: CREATE EXTENSION citus on the "
               "coordinator and every worker, and register the workers (citus_add_node)")
        raise CannotDistribute(msg)
    if _count(conn, _WORKERS) == 0:
        msg = "no worker is registered: SELECT citus_add_node('<host>', <port>) first"
        raise CannotDistribute(msg)


def _count(conn: psycopg.Connection[tuple[object, ...]], query: str,
           args: tuple[object, ...] = ()) -> int:
    row = conn.execute(query, args).fetchone()
    return int(row[0]) if row else 0  # type: ignore[call-overload]

