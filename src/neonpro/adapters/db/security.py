"""Database roles, row-level security, grants and guard triggers: the expected DDL.

This module is the single statement of what the database must enforce beyond
tables and columns. Migrations carry frozen copies of this SQL (a migration
must not change meaning when this file changes); ``neonpro db check`` builds a
scratch database from the models plus :func:`expected_ddl` and compares its
catalog with a database built by the migrations, so a policy, trigger or grant
changed here without a migration is reported as drift.

Roles (cluster-wide, created idempotently, never dropped by a downgrade), each its own
login (``logins.py``): work connects as the role it needs, never through SET ROLE.

* owner (``neonpro_owner``): owns every object; migrations run as it. Row-level
  security is forced, so the owner sees no tenant rows.
* application (``neonpro_app``): tenant work; no BYPASSRLS, owns nothing, member of no
  role; every row it reads or writes must match ``app.clinic_id`` of the transaction.
* service (``neonpro_service``): BYPASSRLS, for audited cross-clinic work
  (administration, sealing, audit verification).
* legal hold (``neonpro_legal_hold``): reads blocked records of one clinic, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import MetaData, Table

CURRENT_CLINIC = "NULLIF(current_setting('app.clinic_id', true), '')::uuid"
CURRENT_ACTOR = "NULLIF(current_setting('app.actor_id', true), '')::uuid"

# Tables whose rows the application role may never change once written (audit_sql.py).
APPEND_ONLY_TABLES = ("audit_events",)
# Rows an erasure under legal hold blocks: hidden from the application role, readable by
# the legal-hold role only.
BLOCKABLE_TABLES = ("patients", "appointments")
LEGAL_HOLD_TABLES = ("patients", "appointments", "consent_records", "disclosures",
                     "data_subject_requests", "appointment_risk_scores")
# Ledgers: appended, read by the clinic, never changed. No role is granted UPDATE, DELETE
# or TRUNCATE on them, and guard triggers refuse those to everyone, owner included
# (audit_sql.ledger_ddl); the only changes are the sealing of an entry's chain columns and,
# for consent_records, the anonymization of a consent's personal evidence on erasure or
# retention (``neonpro_remove_consent_evidence``, audited). A revocation, an expiry or a
# renewal of a consent is a new row; a retrained no-show model is a new version.
LEDGER_TABLES = ("consent_records", "disclosures", "erasure_ledger", "no_show_models")
# Ledgers the application role reads but does not append to: the erasure engine (service
# role) records every erasure; a restore re-applies what this ledger says.
APP_READ_ONLY_LEDGERS = ("erasure_ledger",)
# Written only by the owner's SECURITY DEFINER functions (and migrations).
SERVICE_READ_ONLY_TABLES = ("audit_chain_cuts", "audit_chain_anchors")
# Every table whose rows never change: guard triggers (audit_sql.py).
GUARDED_TABLES = (*APPEND_ONLY_TABLES, *LEDGER_TABLES, *SERVICE_READ_ONLY_TABLES)
# Written by the application role, never read or changed by it: commit tokens (what a
# transaction proves it committed with; looked up and pruned by the service role).
INSERT_ONLY_TABLES = ("commit_tokens",)
OWNER_ONLY_TABLES = ("audit_ref_keys",)
# Sign-in throttling and API sessions: the service role signs in and out; the application
# role never sees them (a session is checked by neonpro_bind_context, the owner's).
SERVICE_ONLY_TABLES = ("login_throttle", "login_trusted", "staff_sessions")
# Tables that keep their history: rows are inserted and retired (an UPDATE the guard
# trigger of retention_sql.py narrows to that), never deleted.
HISTORY_TABLES = ("retention_policies",)
# Columns of global tables the application role must never read.
SECRET_COLUMNS = {"staff_users": ("password_hash",)}


@dataclass(frozen=True)
class Roles:
    owner: str = "neonpro_owner"
    app: str = "neonpro_app"
    service: str = "neonpro_service"
    legal_hold: str = "neonpro_legal_hold"


def bootstrap_roles_sql(roles: Roles) -> str:
    """Idempotent, race-safe creation of the four logins (one per role; logins.py).

    Each is a LOGIN role with no power over the cluster (no superuser, CREATEDB, CREATEROLE
    or replication); only the service role bypasses row-level security. The application and
    legal-hold logins are members of no role at all (a membership granted by hand is
    revoked): SQL running on their connections can only ever be that role. Creating a
    BYPASSRLS role needs a superuser; when a DBA has created the roles beforehand with the
    right attributes, a non-superuser migrator can run this too (it then changes nothing).
    """
    return f"""
DO $bootstrap$
DECLARE
  spec record;
  m record;
BEGIN
  FOR spec IN SELECT * FROM (VALUES
      ('{roles.owner}', false), ('{roles.app}', false),
      ('{roles.service}', true), ('{roles.legal_hold}', false)) AS t(name, bypass)
  LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = spec.name) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                       'NOREPLICATION %s', spec.name,
                       CASE WHEN spec.bypass THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;  -- another database of this cluster created it at the same moment
      END;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = spec.name AND (NOT rolcanlogin
               OR rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication
               OR rolbypassrls <> spec.bypass)) THEN
      EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                     'NOREPLICATION %s', spec.name,
                     CASE WHEN spec.bypass THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END);
    END IF;
  END LOOP;
  FOR m IN SELECT g.rolname AS grp, u.rolname AS member FROM pg_auth_members a
      JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles u ON u.oid = a.member
      WHERE u.rolname IN ('{roles.app}', '{roles.legal_hold}')
  LOOP
    EXECUTE format('REVOKE %I FROM %I', m.grp, m.member);
  END LOOP;
END
$bootstrap$;
"""


def schema_privileges_sql(roles: Roles, *, held: bool = False) -> list[str]:
    """What PostgreSQL 15+ needs on schema ``public``, run by the bootstrap connection.

    ``held``: the database is a restore on hold (``restore_hold``): the application and
    legal-hold roles stay without usage until the hold is lifted."""
    users = [roles.service] if held else [roles.app, roles.service, roles.legal_hold]
    return [
        f"GRANT USAGE, CREATE ON SCHEMA public TO {roles.owner}",
        f"GRANT USAGE ON SCHEMA public TO {', '.join(users)}",
        "CREATE EXTENSION IF NOT EXISTS btree_gist",
    ]


def _scope(table: Table) -> str:
    return str(table.info.get("scope", ""))


def _functions_sql() -> list[str]:
    return [
        """CREATE FUNCTION neonpro_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$""",
        """CREATE FUNCTION neonpro_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$""",
    ]


def _tenant_policies(name: str, roles: Roles, commands: tuple[str, ...]) -> list[str]:
    key = "id" if name == "clinics" else "clinic_id"
    match = f"{key} = {CURRENT_CLINIC}"
    # blocked rows (erasure under a legal hold) leave every normal query of the app role
    visible = f"{match} AND blocked_at IS NULL" if name in BLOCKABLE_TABLES else match
    clauses = {
        "SELECT": f"USING ({visible})",
        "INSERT": f"WITH CHECK ({match})",
        "UPDATE": f"USING ({visible}) WITH CHECK ({match})",
        "DELETE": f"USING ({visible})",
    }
    return [
        f"CREATE POLICY {name}_tenant_{cmd.lower()} ON {name} "
        f"AS PERMISSIVE FOR {cmd} TO {roles.app} {clauses[cmd]}"
        for cmd in commands
    ]


_ALL = "SELECT, INSERT, UPDATE, DELETE"


# Tables the app reaches through tenant policies, first match wins: (tables, policy
# commands, the app's grant, the service's grant)
_TENANT_KINDS: tuple[tuple[tuple[str, ...], tuple[str, ...], str, str], ...] = (
    # guard triggers and owner policies come from audit_sql.audit_ddl
    (APPEND_ONLY_TABLES, ("SELECT", "INSERT"), "SELECT, INSERT", "SELECT, INSERT"),
    (APP_READ_ONLY_LEDGERS, ("SELECT",), "SELECT", "SELECT, INSERT"),
    (LEDGER_TABLES, ("SELECT", "INSERT"), "SELECT, INSERT", "SELECT, INSERT"),
    (INSERT_ONLY_TABLES, ("INSERT",), "INSERT", "SELECT, INSERT, DELETE"),
    (HISTORY_TABLES, ("SELECT", "INSERT", "UPDATE"), "SELECT, INSERT, UPDATE",
     "SELECT, INSERT, UPDATE"),
)


# by scope, tables of no kind above nor service- or owner-only: (policy commands, grants)
_SCOPE_RIGHTS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "clinic": (("SELECT", "UPDATE"), "SELECT, UPDATE", _ALL),
    "tenant": (("SELECT", "INSERT", "UPDATE", "DELETE"), _ALL, _ALL),
}


def _tenant_rights(table: Table) -> tuple[tuple[str, ...], str, str] | None:
    """Policy commands and grants of a table under tenant policies; None for the others."""
    name = table.name
    for tables, commands, app, service in _TENANT_KINDS:
        if name in tables:
            return commands, app, service
    if name in SERVICE_ONLY_TABLES or name in SERVICE_READ_ONLY_TABLES or (
            name in OWNER_ONLY_TABLES):
        return None
    return _SCOPE_RIGHTS.get(_scope(table))


def _access_sql(table: Table, roles: Roles) -> list[str]:
    """Policies and grants of ``table``, by the kind of table it is."""
    name = table.name
    rights = _tenant_rights(table)
    if rights is not None:
        commands, app, service = rights
        return [*_tenant_policies(name, roles, commands),
                f"GRANT {app} ON {name} TO {roles.app}",
                f"GRANT {service} ON {name} TO {roles.service}"]
    if name in SERVICE_ONLY_TABLES or name in SERVICE_READ_ONLY_TABLES:
        granted = "SELECT" if name in SERVICE_READ_ONLY_TABLES else _ALL
        return [f"GRANT {granted} ON {name} TO {roles.service}"]
    if name in OWNER_ONLY_TABLES:
        return []  # readable by the owner's SECURITY DEFINER functions only
    return _member_sql(table, roles)


def _member_sql(table: Table, roles: Roles) -> list[str]:
    """A global table (staff accounts): the app sees itself and its clinic's members."""
    name = table.name
    hidden = set(SECRET_COLUMNS.get(name, ()))
    visible = ", ".join(c.name for c in table.columns if c.name not in hidden)
    # membership is asked of a function, not a subquery: a policy on a distributed (Citus)
    # table may not hold a subquery, and this one must be the same on every server. PL/pgSQL:
    # Citus does not plan a SQL function's query over a distributed table with parameters
    return [
        f"""CREATE FUNCTION neonpro_member_of_current_clinic(p_user_id uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_clinic uuid := {CURRENT_CLINIC};
BEGIN
  RETURN v_clinic IS NOT NULL AND EXISTS (SELECT 1 FROM clinic_memberships m
    WHERE m.clinic_id = v_clinic AND m.user_id = p_user_id);
END
$$""",
        "REVOKE ALL ON FUNCTION neonpro_member_of_current_clinic(uuid) FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION neonpro_member_of_current_clinic(uuid) TO {roles.app}",
        f"CREATE POLICY {name}_member_select ON {name} AS PERMISSIVE FOR SELECT "
        f"TO {roles.app} USING (id = {CURRENT_ACTOR} OR "
        f"neonpro_member_of_current_clinic({name}.id))",
        f"GRANT SELECT ({visible}) ON {name} TO {roles.app}",
        f"GRANT {_ALL} ON {name} TO {roles.service}",
    ]


def _table_sql(table: Table, roles: Roles) -> list[str]:
    name = table.name
    out = [
        f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY",
        f"REVOKE ALL ON {name} FROM PUBLIC",
        *_access_sql(table, roles),
    ]
    if name in LEGAL_HOLD_TABLES:
        out += [
            f"CREATE POLICY {name}_legal_hold_select ON {name} AS PERMISSIVE FOR SELECT "
            f"TO {roles.legal_hold} USING (clinic_id = {CURRENT_CLINIC})",
            f"GRANT SELECT ON {name} TO {roles.legal_hold}",
        ]
    if "updated_at" in table.columns:
        out.append(
            f"CREATE TRIGGER {name}_touch_updated_at BEFORE UPDATE ON {name} "
            "FOR EACH ROW EXECUTE FUNCTION neonpro_touch_updated_at()"
        )
    return out


def expected_ddl(metadata: MetaData, roles: Roles) -> list[str]:
    """Functions, RLS, policies, grants and triggers for every table of ``metadata``."""
    from neonpro.adapters.db.audit_sql import audit_ddl  # noqa: PLC0415  (imports Roles)
    from neonpro.adapters.db.consent_sql import consent_ddl  # noqa: PLC0415
    from neonpro.adapters.db.durability_sql import durability_ddl  # noqa: PLC0415
    from neonpro.adapters.db.erasure_sql import erasure_ddl  # noqa: PLC0415
    from neonpro.adapters.db.feed_sql import feed_ddl  # noqa: PLC0415
    from neonpro.adapters.db.retention_sql import retention_ddl  # noqa: PLC0415

    statements = _functions_sql()
    for table in metadata.sorted_tables:
        statements += _table_sql(table, roles)
    return (statements + audit_ddl(roles) + consent_ddl() + feed_ddl(roles.service)
            + erasure_ddl() + durability_ddl(roles) + retention_ddl())


def rls_tables(metadata: MetaData) -> list[str]:
    """Names of the tables row-level security must guard: every table of the schema."""
    return sorted(t.name for t in metadata.sorted_tables)
