"""Drift detection: do the migrations build exactly the schema the models describe?

Two scratch databases are made on the same server: one migrated from empty to
head, one built from the models plus :func:`security.expected_ddl`. Their
catalogs (tables and RLS flags, columns and defaults, constraints, indexes,
policies, triggers, functions, table and column grants, extensions) are read
into comparable lines and diffed. Alembic's own autogenerate compare sees
tables, columns and indexes only; policies, triggers, grants and CHECK
constraints would slip through it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Connection, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.db import migrate
from neonpro.adapters.db.models import Base
from neonpro.adapters.db.security import (
    Roles,
    bootstrap_roles_sql,
    expected_ddl,
    schema_privileges_sql,
)

_NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')"
)

CATALOG_QUERIES: dict[str, str] = {
    "table": """
        SELECT c.relname, 'rls=' || c.relrowsecurity, 'force=' || c.relforcerowsecurity,
               'owner=' || pg_get_userbyid(c.relowner)
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname <> 'alembic_version'""",
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
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid),
               'enabled=' || tgenabled::text
        FROM pg_trigger WHERE NOT tgisinternal""",
    "function": f"""
        SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               md5(p.prosrc), 'owner=' || pg_get_userbyid(p.proowner),
               'definer=' || p.prosecdef, 'acl=' || coalesce(p.proacl::text, 'default'),
               'config=' || coalesce(array_to_string(p.proconfig, ','), '')
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND {_NOT_EXTENSION.format(oid="p.oid")}""",
    "grant": """
        SELECT c.relname, CASE WHEN x.grantee = 0 THEN 'PUBLIC'
                               ELSE pg_get_userbyid(x.grantee) END, x.privilege_type
        FROM pg_class c, aclexplode(c.relacl) x
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname <> 'alembic_version'""",
    "column grant": """
        SELECT c.relname || '.' || a.attname,
               CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
               x.privilege_type
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid, aclexplode(a.attacl) x
        WHERE c.relnamespace = 'public'::regnamespace AND a.attacl IS NOT NULL""",
    "extension": "SELECT extname FROM pg_extension",
}


def snapshot(conn: Connection) -> dict[str, set[str]]:
    """The catalog of schema ``public`` as sets of comparable lines per kind."""
    out: dict[str, set[str]] = {}
    for kind, sql in CATALOG_QUERIES.items():
        rows = conn.execute(text(sql)).all()
        out[kind] = {" ".join(str(v) for v in row) for row in rows}
    return out


@dataclass
class DriftReport:
    only_in_migrations: list[str] = field(default_factory=list)
    only_in_models: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.only_in_migrations or self.only_in_models)

    def lines(self) -> list[str]:
        return [f"- migrations only: {x}" for x in self.only_in_migrations] + [
            f"+ models only:     {x}" for x in self.only_in_models
        ]


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


def read_snapshot(url: str) -> dict[str, set[str]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return snapshot(conn)
    finally:
        engine.dispose()


def check_drift(admin_url: str, roles: Roles) -> DriftReport:
    """Compare migrations at head with the models; needs CREATEDB on the server."""
    with scratch_database(admin_url, "mig") as mig_url, scratch_database(
        admin_url, "mod"
    ) as mod_url:
        migrate.upgrade(mig_url, roles)
        build_from_models(mod_url, roles)
        return diff(read_snapshot(mig_url), read_snapshot(mod_url))
