"""Drift detection: do the migrations build exactly the schema the models describe, and
is the live database still what the migrations built?

Two comparisons, both on catalogs read into comparable rows (tables and RLS flags, columns
and defaults, constraints, indexes, policies, triggers and their enabled state, functions,
table and column grants, extensions):

* **models against migrations** (:func:`check_drift`): two scratch databases are made on
  the same server, one migrated from empty to head, one built from the models plus
  :func:`security.expected_ddl`. Alembic's own autogenerate compare sees tables, columns
  and indexes only; policies, triggers, grants and CHECK constraints would slip through it.
* **live against migrations** (:func:`check_live`): the catalog of the live database is
  compared with a scratch database migrated to the live database's revision on the same
  server (same PostgreSQL version, so the catalog renders the same way); a distributed
  live database with a scratch Citus database on the same cluster (``citus_nodes``). A
  column added by hand, a policy dropped or altered, a trigger disabled, a grant added or
  revoked, RLS switched off: each is one line naming the object and what differs, never a value.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg
from sqlalchemy import Connection, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.db import citus_nodes, migrate
from neonpro.adapters.db.models import Base
from neonpro.adapters.db.security import (
    Roles,
    bootstrap_roles_sql,
    expected_ddl,
    schema_privileges_sql,
)
from neonpro.domain.operations import DriftReport, LiveReport

_NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')"
)

# an ACL as sorted text; NULL (the default privileges) as what it means: a migration's
# explicit ACL equal to the default and a restore's NULL are the same privileges
_acl = ("(SELECT string_agg(x::text, ',' ORDER BY x::text) "
        "FROM unnest(coalesce({acl}, acldefault({kind}, {owner}))) x)")

_RELATION_ACL = _acl.format(acl="c.relacl", owner="c.relowner",
                            kind="(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END)::\"char\"")
_FUNCTION_ACL = _acl.format(acl="p.proacl", owner="p.proowner", kind="'f'")

CATALOG_QUERIES: dict[str, str] = {
    "table": """
        SELECT c.relname, 'rls=' || c.relrowsecurity, 'force=' || c.relforcerowsecurity,
               'owner=' || pg_get_userbyid(c.relowner)
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname <> 'alembic_version'""",
    "relation": f"""
        SELECT c.relname, 'kind=' || c.relkind::text, 'owner=' || pg_get_userbyid(c.relowner),
               'definition=' || CASE WHEN c.relkind IN ('v', 'm')
                                     THEN md5(pg_get_viewdef(c.oid)) ELSE '' END,
               'acl=' || {_RELATION_ACL}
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace
          AND c.relkind IN ('v', 'm', 'S', 'f')""",
    "column": """
        SELECT c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,
               'default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
               'comment=' || coalesce(col_description(c.oid, a.attnum), '')
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND a.attnum > 0 AND NOT a.attisdropped AND c.relname <> 'alembic_version'""",
    "constraint": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace
          AND conrelid <> 0 AND conrelid::regclass::text <> 'alembic_version'""",
    "index": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> 'alembic_version'""",
    "policy": """
        SELECT tablename, policyname, permissive, array_to_string(roles, ','), cmd,
               coalesce(qual, ''), coalesce(with_check, '')
        FROM pg_policies WHERE schemaname = 'public'""",
    "trigger": """
        SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid),
               'enabled=' || t.tgenabled::text
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE NOT t.tgisinternal AND c.relnamespace = 'public'::regnamespace""",
    "function": f"""
        SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               md5(p.prosrc), 'owner=' || pg_get_userbyid(p.proowner),
               'definer=' || p.prosecdef, 'acl=' || {_FUNCTION_ACL},
               'config=' || coalesce(array_to_string(p.proconfig, ','), '')
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND {_NOT_EXTENSION.format(oid="p.oid")}""",
    "grant": """
        SELECT c.relname, CASE WHEN x.grantee = 0 THEN 'PUBLIC'
                               ELSE pg_get_userbyid(x.grantee) END, x.privilege_type
        FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) x
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname <> 'alembic_version'""",
    "column grant": """
        SELECT c.relname || '.' || a.attname,
               CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
               x.privilege_type
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid, aclexplode(a.attacl) x
        WHERE c.relnamespace = 'public'::regnamespace AND a.attacl IS NOT NULL
          AND NOT a.attisdropped""",
    "extension": "SELECT extname FROM pg_extension",
}


# per kind: how many leading columns name the object, and what the other columns are
# (a difference names the object and these, never the values)
IDENTITY: dict[str, tuple[int, tuple[str, ...]]] = {
    "table": (1, ("row level security", "forced row level security", "owner")),
    "relation": (1, ("kind", "owner", "definition", "privileges")),
    "column": (1, ("type", "nullability", "default", "comment")),
    "constraint": (2, ("definition",)),
    "index": (2, ("definition",)),
    "policy": (2, ("permissive", "roles", "command", "using", "with check")),
    "trigger": (2, ("definition", "enabled")),
    "function": (1, ("body", "owner", "security definer", "privileges", "settings")),
    "grant": (3, ()),
    "column grant": (3, ()),
    "extension": (1, ()),
}
# kinds whose objects belong to a table (named by the first column, ``table[.column]``)
_TABLE_PARTS = ("column", "constraint", "index", "policy", "trigger", "grant", "column grant")

Rows = dict[str, list[tuple[str, ...]]]


def catalog_rows(conn: Connection) -> Rows:
    """The catalog of schema ``public``: rows of text per kind."""
    return {kind: [tuple(str(v) for v in row) for row in conn.execute(text(sql)).all()]
            for kind, sql in CATALOG_QUERIES.items()}


def lines_of(rows: Rows) -> dict[str, set[str]]:
    return {kind: {" ".join(row) for row in found} for kind, found in rows.items()}


def snapshot(conn: Connection) -> dict[str, set[str]]:
    """The catalog of schema ``public`` as sets of comparable lines per kind."""
    return lines_of(catalog_rows(conn))


def diff(migrated: dict[str, set[str]], modelled: dict[str, set[str]]) -> DriftReport:
    report = DriftReport()
    for kind in CATALOG_QUERIES:
        a, b = migrated.get(kind, set()), modelled.get(kind, set())
        report.only_in_migrations += sorted(f"{kind} {x}" for x in a - b)
        report.only_in_models += sorted(f"{kind} {x}" for x in b - a)
    return report


def build_from_models(url: str, roles: Roles) -> None:
    """Create the schema the models and the security module describe, as the owner role."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text(bootstrap_roles_sql(roles)))
            for statement in schema_privileges_sql(roles):
                conn.execute(text(statement))
            conn.execute(text(f'SET LOCAL ROLE "{roles.owner}"'))
            Base.metadata.create_all(conn)
            for statement in expected_ddl(Base.metadata, roles):
                conn.execute(text(statement))
            conn.commit()
    finally:
        engine.dispose()


@contextmanager
def scratch_database(admin_url: str, label: str) -> Iterator[str]:
    """A new empty database on the server of ``admin_url``, dropped afterwards."""
    name = f"neonpro_scratch_{label}_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def read_rows(url: str) -> Rows:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return catalog_rows(conn)
    finally:
        engine.dispose()


def read_snapshot(url: str) -> dict[str, set[str]]:
    return lines_of(read_rows(url))


# what the migrations build, per (server, revision, roles): one scratch migration per
# process and revision however many databases are compared (tests, ``db check``)
_EXPECTED: dict[tuple[str, str, Roles], Rows] = {}


def _server_key(conn: Connection) -> str:
    # what any login may read (pg_control_system() needs pg_monitor): where, which
    # version, and which start of the server
    row = conn.execute(text(
        "SELECT concat_ws('/', inet_server_addr(), inet_server_port(), "
        "current_setting('server_version_num'), pg_postmaster_start_time())")).one()
    return f"{conn.engine.url.host}:{conn.engine.url.port}/{row[0]}"


def expected_rows(admin_url: str, roles: Roles, revision: str = "head",
                  nodes: citus_nodes.Nodes | None = None) -> Rows:
    """The catalog the migrations build up to ``revision`` on the server of ``admin_url``
    (a scratch database, migrated and dropped; needs CREATEDB), on the Citus cluster of
    ``nodes`` when given (a scratch Citus database: needs a superuser). Remembered per
    process."""
    if revision == "head":
        revision = migrate.head_revision() or revision
    engine = create_engine(admin_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            server = _server_key(conn)
    finally:
        engine.dispose()
    key = (f"{server}/citus:{nodes}", revision, roles)
    if key not in _EXPECTED:
        scratch = (scratch_database(admin_url, "mig") if nodes is None
                   else _citus_scratch(admin_url, nodes))
        with scratch as mig_url:
            migrate.upgrade(mig_url, roles, revision)
            _EXPECTED[key] = read_rows(mig_url)
    return _EXPECTED[key]


@contextmanager
def _citus_scratch(admin_url: str, nodes: citus_nodes.Nodes) -> Iterator[str]:
    """A scratch Citus database on every node of ``nodes``, dropped afterwards."""
    name = f"neonpro_scratch_citus_{secrets.token_hex(4)}"
    try:
        coordinator = citus_nodes.create_database(admin_url, nodes, name)
        yield make_url(coordinator).set(drivername=make_url(admin_url).drivername
                                        ).render_as_string(hide_password=False)
    except BaseException:
        # what failed (a worker down, say) is what to report, not the clean-up after it
        with suppress(psycopg.Error):
            citus_nodes.drop_database(admin_url, nodes, name)
        raise
    else:
        citus_nodes.drop_database(admin_url, nodes, name)


def check_drift(admin_url: str, roles: Roles) -> DriftReport:
    """Compare migrations at head with the models; needs CREATEDB on the server."""
    migrated = expected_rows(admin_url, roles)
    with scratch_database(admin_url, "mod") as mod_url:
        build_from_models(mod_url, roles)
        return diff(lines_of(migrated), read_snapshot(mod_url))


# ------------------------------------------------------------- the live database
def _keyed(rows: Rows) -> dict[str, dict[tuple[str, ...], tuple[str, ...]]]:
    out: dict[str, dict[tuple[str, ...], tuple[str, ...]]] = {}
    for kind, found in rows.items():
        width = IDENTITY[kind][0]
        out[kind] = {row[:width]: row[width:] for row in found}
    return out


def _name(kind: str, key: tuple[str, ...]) -> str:
    if kind in ("grant", "column grant"):
        on, grantee, privilege = key
        return f"{privilege} on {on} to {grantee}"
    return ".".join(key)


def _table_of(kind: str, key: tuple[str, ...]) -> str | None:
    if kind not in _TABLE_PARTS:
        return None
    return key[0].split(".", 1)[0] if kind in ("column", "column grant") else key[0]


def diff_live(expected: Rows, live: Rows) -> list[str]:
    """One line per difference of ``live`` from ``expected``: the kind, the object and, when
    it exists on both sides, which of its properties differ (never their values). The
    columns, policies, grants... of a table present on one side only are not listed again.
    Extensions the live database has beyond the expected ones are not differences (an
    operator's ``pg_stat_statements``); their objects are never compared."""
    want, have = _keyed(expected), _keyed(live)
    extra_tables = set(have["table"]) - set(want["table"])
    missing_tables = set(want["table"]) - set(have["table"])
    one_sided = {key[0] for key in extra_tables | missing_tables}
    out: list[str] = []
    for kind, (_width, attributes) in IDENTITY.items():
        a, b = want.get(kind, {}), have.get(kind, {})
        for key in sorted(set(a) | set(b)):
            if _table_of(kind, key) in one_sided:
                continue
            name = f"{kind} {_name(kind, key)}"
            if key not in b:
                out.append(f"{name}: missing from the live database")
            elif key not in a:
                if kind != "extension":
                    out.append(f"{name}: in the live database, not in the migrations")
            elif a[key] != b[key]:
                changed = [attr for attr, x, y in zip(attributes, a[key], b[key], strict=True)
                           if x != y]
                out.append(f"{name}: differs from the migrations ({', '.join(changed)})")
    return out


def check_live(live_url: str, admin_url: str, roles: Roles) -> LiveReport:
    """Compare the live database with what its own revision of the migrations builds.

    Not migrated at all (no ``alembic_version``): nothing to compare. At a revision other
    than head, that is a difference too (the models describe head); at a revision this code
    does not know, nothing else can be compared."""
    current = migrate.current_revisions(live_url)
    if not current:
        return LiveReport(migrated=False)
    head = migrate.head_revision()
    report = LiveReport(revision=current)
    if current != (head,):
        report.differences.append(
            f"revision: the live database is at {', '.join(current)}, the migrations' "
            f"head is {head} (run neonpro db upgrade)")
    known = {rev for rev, _down, _doc in migrate.history()}
    if len(current) != 1 or current[0] not in known:
        report.differences.append("revision: unknown to this code; schema not compared")
        return report
    nodes = citus_nodes.nodes_of(live_url)
    if nodes is not None and not citus_nodes.is_superuser(admin_url):
        report.differences.append(
            "citus: the live database is distributed; comparing it needs a scratch Citus "
            "database on every node, which only a superuser's URL can make (schema not "
            "compared)")
        return report
    report.differences += diff_live(expected_rows(admin_url, roles, current[0], nodes),
                                    read_rows(live_url))
    return report
