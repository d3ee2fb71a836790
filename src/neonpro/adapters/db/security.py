"""Database roles, row-level security, grants and guard triggers: the expected DDL.

This module is the single statement of what the database must enforce beyond
tables and columns. Migrations carry frozen copies of this SQL (a migration
must not change meaning when this file changes); ``neonpro db check`` builds a
scratch database from the models plus :func:`expected_ddl` and compares its
catalog with a database built by the migrations, so a policy, trigger or grant
changed here without a migration is reported as drift.

Roles (cluster-wide, created idempotently, never dropped by a downgrade):

* owner (``neonpro_owner``): owns every object; migrations run as it. Row-level
  security is forced, so the owner sees no tenant rows.
* application (``neonpro_app``): tenant work; no BYPASSRLS, owns nothing; every
  row it reads or writes must match ``app.clinic_id`` of the transaction.
* service (``neonpro_service``): BYPASSRLS, for audited cross-clinic work
  (administration, backups, audit verification).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import MetaData, Table

CURRENT_CLINIC = "NULLIF(current_setting('app.clinic_id', true), '')::uuid"
CURRENT_ACTOR = "NULLIF(current_setting('app.actor_id', true), '')::uuid"

# Tables whose rows the application role may never change once written.
APPEND_ONLY_TABLES = ("audit_events",)
# Rows an erasure under legal hold blocks: hidden from the application role, readable by
# the legal-hold role only.
BLOCKABLE_TABLES = ("patients", "appointments")
LEGAL_HOLD_TABLES = ("patients", "appointments", "consent_records", "disclosures",
                     "data_subject_requests", "appointment_risk_scores")
# Appended (by the erasure engine; a retrained no-show model is a new row), read by the
# clinic; never changed.
LEDGER_TABLES = ("erasure_ledger", "no_show_models")
# Written by the application role, never read or changed by it: commit tokens (what a
# transaction proves it committed with; looked up and pruned by the service role).
INSERT_ONLY_TABLES = ("commit_tokens",)
# Written only by the owner's SECURITY DEFINER functions.
SERVICE_READ_ONLY_TABLES = ("audit_chain_cuts",)
OWNER_ONLY_TABLES = ("audit_ref_keys",)
# Columns of global tables the application role must never read.
SECRET_COLUMNS = {"staff_users": ("password_hash",)}


@dataclass(frozen=True)
class Roles:
    owner: str = "neonpro_owner"
    app: str = "neonpro_app"
    service: str = "neonpro_service"
    legal_hold: str = "neonpro_legal_hold"


def bootstrap_roles_sql(roles: Roles) -> str:
    """Idempotent, race-safe creation of the three roles, and membership for the caller.

    Creating a BYPASSRLS role needs a superuser; when a DBA has created the roles
    beforehand with the right attributes, a non-superuser migrator can run this too.
    """
    return f"""
DO $bootstrap$
DECLARE
  spec record;
BEGIN
  FOR spec IN SELECT * FROM (VALUES
      ('{roles.owner}', 'NOLOGIN NOBYPASSRLS'),
      ('{roles.app}', 'NOLOGIN NOBYPASSRLS'),
      ('{roles.service}', 'NOLOGIN BYPASSRLS'),
      ('{roles.legal_hold}', 'NOLOGIN NOBYPASSRLS')) AS t(name, attrs)
  LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = spec.name) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I %s', spec.name, spec.attrs);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;  -- another database of this cluster created it at the same moment
      END;
    END IF;
    IF NOT pg_has_role(current_user, spec.name, 'MEMBER') THEN
      EXECUTE format('GRANT %I TO %I', spec.name, current_user);
    END IF;
  END LOOP;
  IF EXISTS (SELECT FROM pg_roles WHERE rolname IN ('{roles.app}', '{roles.legal_hold}')
             AND (rolsuper OR rolbypassrls)) THEN
    RAISE EXCEPTION 'roles {roles.app} and {roles.legal_hold} must not be superuser or BYPASSRLS';
  END IF;
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{roles.service}' AND NOT rolbypassrls) THEN
    ALTER ROLE {roles.service} BYPASSRLS;
  END IF;
END
$bootstrap$;
"""


def schema_privileges_sql(roles: Roles, *, held: bool = False) -> list[str]:
    """What PostgreSQL 15+ needs on schema ``public``, run by the migrator before SET ROLE.

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


def _table_sql(table: Table, roles: Roles) -> list[str]:
    name = table.name
    scope = _scope(table)
    out = [
        f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY",
        f"REVOKE ALL ON {name} FROM PUBLIC",
    ]
    if name in APPEND_ONLY_TABLES:
        # guard triggers and owner policies come from audit_sql.audit_ddl
        out += _tenant_policies(name, roles, ("SELECT", "INSERT"))
        out += [
            f"GRANT SELECT, INSERT ON {name} TO {roles.app}",
            f"GRANT SELECT, INSERT ON {name} TO {roles.service}",
        ]
    elif name in LEDGER_TABLES:
        out += _tenant_policies(name, roles, ("SELECT", "INSERT"))
        out += [
            f"GRANT SELECT, INSERT ON {name} TO {roles.app}",
            f"GRANT SELECT, INSERT ON {name} TO {roles.service}",
        ]
    elif name in INSERT_ONLY_TABLES:
        out += _tenant_policies(name, roles, ("INSERT",))
        out += [
            f"GRANT INSERT ON {name} TO {roles.app}",
            f"GRANT SELECT, INSERT, DELETE ON {name} TO {roles.service}",
        ]
    elif name in SERVICE_READ_ONLY_TABLES:
        out.append(f"GRANT SELECT ON {name} TO {roles.service}")
    elif name in OWNER_ONLY_TABLES:
        pass  # readable by the owner's SECURITY DEFINER functions only
    elif scope == "clinic":
        out += _tenant_policies(name, roles, ("SELECT", "UPDATE"))
        out += [
            f"GRANT SELECT, UPDATE ON {name} TO {roles.app}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO {roles.service}",
        ]
    elif scope == "tenant":
        out += _tenant_policies(name, roles, ("SELECT", "INSERT", "UPDATE", "DELETE"))
        out += [
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO {roles.app}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO {roles.service}",
        ]
    else:  # global: staff accounts; the app sees itself and its clinic's members
        hidden = set(SECRET_COLUMNS.get(name, ()))
        visible = ", ".join(c.name for c in table.columns if c.name not in hidden)
        out += [
            f"CREATE POLICY {name}_member_select ON {name} AS PERMISSIVE FOR SELECT "
            f"TO {roles.app} USING (id = {CURRENT_ACTOR} OR EXISTS ("
            "SELECT 1 FROM clinic_memberships m WHERE m.user_id = "
            f"{name}.id AND m.clinic_id = {CURRENT_CLINIC}))",
            f"GRANT SELECT ({visible}) ON {name} TO {roles.app}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO {roles.service}",
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

    statements = _functions_sql()
    for table in metadata.sorted_tables:
        statements += _table_sql(table, roles)
    return (statements + audit_ddl(roles) + consent_ddl() + feed_ddl() + erasure_ddl()
            + durability_ddl(roles))


def rls_tables(metadata: MetaData) -> list[str]:
    """Names of the tables row-level security must guard: every table of the schema."""
    return sorted(t.name for t in metadata.sorted_tables)
