"""The database owner as a tamperer: its own login, every guard trigger switched off.

The owner can always disable the triggers of the tables it owns; what it cannot do without
the audit key is produce hashes that verify. Tests run the owner's statements through
here, then check that ``verify`` (or the database) catches them.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.db.logins import login_url
from neonpro.adapters.db.security import GUARDED_TABLES
from neonpro.bootstrap import Container


def owner_url(box: Container) -> str:
    """The owner's own login (the test servers' URL is a superuser's)."""
    return login_url(box.database.owner_url, box.database.roles.owner)


def as_owner(box: Container, *statements: str, guards_off: bool = True) -> None:
    """Run ``statements`` in one transaction as the owner, guards disabled (and restored
    as they were: the guards fire ALWAYS)."""
    from tests.conftest import CITUS  # noqa: PLC0415  (conftest imports this module's users)

    if CITUS and guards_off:
        _as_owner_on_citus(box, statements)
        return
    engine = create_engine(owner_url(box), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if guards_off:
                for table in GUARDED_TABLES:
                    conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            for statement in statements:
                conn.execute(text(statement))
            if guards_off:
                for table in GUARDED_TABLES:
                    conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
                    for trigger in (f"{table}_guard", f"{table}_no_truncate"):
                        conn.execute(text(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}"))
    finally:
        engine.dispose()


# where each guarded table's placements are: the shards on the workers, a reference table's
# copies on every node (the coordinator's included)
_PLACEMENTS = """
SELECT n.nodename, n.nodeport, s.logicalrelid::regclass::text,
       shard_name(s.logicalrelid, s.shardid)
  FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
  JOIN pg_dist_node n USING (groupid)
 WHERE s.logicalrelid::regclass::text = ANY(%s)"""
_STATES = "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal"
_ENABLE = {"O": "ENABLE TRIGGER", "A": "ENABLE ALWAYS TRIGGER", "R": "ENABLE REPLICA TRIGGER",
           "D": "DISABLE TRIGGER"}


def _as_owner_on_citus(box: Container, statements: tuple[str, ...]) -> None:
    """The owner on a Citus cluster: Citus refuses ``DISABLE TRIGGER`` on a distributed
    table, but the owner owns every shard too: it switches the guards (and forced row-level
    security) off on the shards, on each node, runs ``statements`` through the coordinator
    (a ``TRUNCATE`` on the shards themselves, past the coordinator's statement trigger), and
    puts everything back as it was (separate transactions: a tamperer needs no atomicity)."""
    url = make_url(owner_url(box)).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        placements = conn.execute(_PLACEMENTS, (list(GUARDED_TABLES),)).fetchall()
    nodes: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for host, port, table, shard in placements:
        nodes.setdefault((host, port), []).append((table, shard))
    saved = {node: _switch_off(url.set(host=node[0], port=node[1]), [s for _, s in shards])
             for node, shards in nodes.items()}
    try:
        with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
            for statement in statements:
                if statement.startswith("TRUNCATE "):
                    _truncate_shards(url, nodes, statement.split()[1])
                else:
                    conn.execute(statement)  # type: ignore[arg-type]
    finally:
        for (host, port), (states, forced) in saved.items():
            with _node(url.set(host=host, port=port)) as conn:
                for shard, name, state in states:
                    conn.execute(f'ALTER TABLE {shard} {_ENABLE[state]} "{name}"')
                for shard in forced:
                    conn.execute(f"ALTER TABLE {shard} FORCE ROW LEVEL SECURITY")


def _node(url: Any) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
    conn.execute("SET citus.enable_manual_changes_to_shards = on")
    conn.execute("SET citus.override_table_visibility = off")  # shards show in pg_class
    return conn


def _switch_off(url: Any, shards: list[str]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Every user trigger and forced row-level security of ``shards`` off on one node: the
    triggers' states before, and the shards that were forced."""
    states, forced = [], []
    with _node(url) as conn:
        for shard in shards:
            states += [(shard, name, state)
                       for name, state in conn.execute(_STATES, (shard,)).fetchall()]
            conn.execute(f"ALTER TABLE {shard} DISABLE TRIGGER USER")
            if conn.execute("SELECT relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
                            (shard,)).fetchone() == (True,):
                conn.execute(f"ALTER TABLE {shard} NO FORCE ROW LEVEL SECURITY")
                forced.append(shard)
    return states, forced


def _truncate_shards(url: Any, nodes: dict[tuple[str, int], list[tuple[str, str]]],
                     table: str) -> None:
    for (host, port), shards in nodes.items():
        with _node(url.set(host=host, port=port)) as conn:
            for name, shard in shards:
                if name == table:
                    conn.execute(f"TRUNCATE {shard}")
