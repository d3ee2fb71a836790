"""Health of a distributed schema (``neonpro db health`` on a Citus coordinator).

The coordinator's catalog says nothing about the shards: a worker unreachable from another,
a table no longer distributed as ``citus_sql`` says, or a shard whose row-level security,
triggers or policies differ from its table's (an owner who switched a guard off on a
worker, where Citus refuses ``DISABLE TRIGGER`` on the distributed table) would all go
unseen by the single-server checks. This check asks every node:

* ``links``: every node reaches every other (``citus_check_cluster_node_health``);
* ``kinds``: each table is a reference table or distributed by ``clinic_id`` in the tenant
  tables' co-location group, as revision 0017 made it;
* ``shards``: every placement of every table has row-level security enabled and forced,
  its triggers in the same states and its policies with the same expressions as its table
  on the coordinator;
* ``commits``: no worker runs with ``synchronous_commit = off`` (a transaction raises it to
  ``on`` on the coordinator only; a worker's part commits under the worker's setting);
* ``functions``: every node has the same neonpro functions with the same bodies.

Each problem is one line naming the table, the node or the shard, never a row's value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from neonpro.adapters.db.citus_nodes import HAS_CITUS
from neonpro.adapters.db.citus_sql import DISTRIBUTED, DISTRIBUTION_COLUMN, citus_tables
from neonpro.adapters.db.models import Base

if TYPE_CHECKING:
    from neonpro.adapters.db.database import Database

# on a table or one of its shards: row-level security enabled and forced; its triggers by
# state (enabled, always, replica-only, disabled: a guard set to fire on replicas only never
# fires); its policies' expressions (a policy rewritten to USING (true) differs)
_GUARDS = ("SELECT (c.relrowsecurity AND c.relforcerowsecurity)::text || '/' || "
           "(SELECT count(*) FILTER (WHERE tgenabled = 'O') || '/' || "
           " count(*) FILTER (WHERE tgenabled = 'A') || '/' || "
           " count(*) FILTER (WHERE tgenabled = 'R') || '/' || "
           " count(*) FILTER (WHERE tgenabled = 'D') FROM pg_trigger "
           " WHERE tgrelid = c.oid AND NOT tgisinternal) || '/' || "
           "(SELECT coalesce(md5(string_agg(e, ',' ORDER BY e)), '') FROM ("
           " SELECT p.polcmd::text || p.polpermissive::text || "
           "   coalesce(pg_get_expr(p.polqual, p.polrelid), '') || '|' || "
           "   coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') AS e "
           " FROM pg_policy p WHERE p.polrelid = c.oid) policies) "
           "FROM pg_class c WHERE c.oid = '%s'::regclass")
# the same functions of ours, with the same bodies, on every node (one replaced on a worker
# only would run there, where the shards' triggers and policies call it)
_FUNCTIONS = text(
    "SELECT n.nodename || ':' || n.nodeport, r.result FROM run_command_on_all_nodes("
    "$$SELECT md5(string_agg(e, ',' ORDER BY e)) FROM (SELECT p.oid::regprocedure::text "
    "|| md5(p.prosrc) AS e FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace "
    "AND p.proname LIKE 'neonpro\\_%') functions$$) r JOIN pg_dist_node n USING (nodeid) "
    "ORDER BY 1")
_LINKS = text("SELECT from_nodename, from_nodeport, to_nodename, to_nodeport "
              "FROM citus_check_cluster_node_health() WHERE NOT coalesce(result, false)")
_KINDS = text(
    "SELECT logicalrelid::regclass::text, partmethod, repmodel, colocationid, "
    "  CASE WHEN partmethod = 'h' THEN column_to_column_name(logicalrelid, partkey) END "
    "FROM pg_dist_partition")
_LAZY_COMMITS = text(
    "SELECT n.nodename || ':' || n.nodeport FROM run_command_on_all_nodes("
    "'SHOW synchronous_commit') r JOIN pg_dist_node n USING (nodeid) "
    # the coordinator raises it per transaction (DURABLE_COMMIT): the workers do not
    "WHERE n.groupid > 0 AND (NOT r.success OR r.result = 'off') ORDER BY 1")
_WORKERS = text("SELECT count(*) FROM pg_dist_node WHERE groupid > 0 AND isactive")


def is_distributed(db: Database) -> bool:
    with db.engine().connect() as conn:
        return bool(conn.execute(text(HAS_CITUS)).scalar())


def check(db: Database) -> dict[str, Any]:
    """The distributed schema's health: ``ok`` and the problems found, by kind."""
    kinds = citus_tables(Base.metadata)
    with db.engine().connect() as conn:
        workers = int(conn.execute(_WORKERS).scalar_one())
        links = [f"{a}:{b} cannot reach {c}:{d}" for a, b, c, d in conn.execute(_LINKS)]
        wrong_kinds = _wrong_kinds(conn, kinds)
        shards = [problem for table in sorted(kinds) for problem in _shards(conn, table)]
        lazy: list[str] = list(conn.execute(_LAZY_COMMITS).scalars())
        functions = _functions_unlike(conn)
    return {"ok": workers > 0 and not (links or wrong_kinds or shards or lazy or functions),
            "workers": workers, "links_down": links, "tables_not_as_migrated": wrong_kinds,
            "shards_unlike_their_table": shards, "nodes_with_synchronous_commit_off": lazy,
            "nodes_whose_functions_differ": functions}


def _functions_unlike(conn: Connection) -> list[str]:
    """The nodes whose neonpro functions differ from the coordinator's (first row)."""
    rows = [(str(node), result) for node, result in conn.execute(_FUNCTIONS)]
    coordinator = conn.execute(text(
        "SELECT nodename || ':' || nodeport FROM pg_dist_node WHERE groupid = 0")).scalar()
    want = dict(rows).get(str(coordinator))
    return [node for node, result in rows if result != want]


def _wrong_kinds(conn: Connection, kinds: dict[str, str]) -> list[str]:
    found = {name: rest for name, *rest in conn.execute(_KINDS)}
    tenant_groups = {found[t][2] for t, kind in kinds.items()
                     if kind == DISTRIBUTED and t in found}
    wrong = []
    for table, kind in sorted(kinds.items()):
        method, model, _group, column = found.get(table, (None, None, None, None))
        if kind == DISTRIBUTED:
            ok = method == "h" and column == DISTRIBUTION_COLUMN and len(tenant_groups) == 1
            want = f"distributed by {DISTRIBUTION_COLUMN}, co-located with the tenant tables"
        else:
            ok, want = method == "n" and model == "t", "a reference table"
        if method is None:
            wrong.append(f"{table}: not in Citus's metadata (want {want})")
        elif not ok:
            wrong.append(f"{table}: not {want}")
    return wrong


def _shards(conn: Connection, table: str) -> list[str]:
    """The placements of ``table`` whose guards differ from the table's own."""
    want: str = conn.execute(text(_GUARDS.replace("%s", table))).scalar_one()
    rows = conn.execute(text(
        "SELECT nodename, nodeport, shardid, success, result "
        "FROM run_command_on_placements(CAST(:t AS regclass), :q)"), {"t": table, "q": _GUARDS})
    problems = []
    for host, port, shard, success, result in rows:
        if not success:
            problems.append(f"{table}: shard {shard} on {host}:{port} did not answer")
        elif result != want:
            problems.append(f"{table}: shard {shard} on {host}:{port} differs from its "
                            f"table ({_explain(want, str(result))})")
    return problems


def _explain(want: str, have: str) -> str:
    names = ("row-level security enabled and forced", "triggers enabled",
             "triggers always enabled", "triggers enabled on replicas only", "triggers disabled",
             "policies (digest)")
    return ", ".join(f"{name}: {h} (the table: {w})"
                     for name, w, h in zip(names, want.split("/"), have.split("/"), strict=False)
                     if w != h)
